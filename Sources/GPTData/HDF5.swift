// A small Swift wrapper over the HDF5 C API: files, groups, whole-dataset and
// hyperslab I/O, extendible 1-D datasets for streaming writes, attributes.
// Every negative return from HDF5 becomes a thrown `H5Error` that names the
// file, the object and HDF5's own innermost explanation.
import CHDF5
import Foundation

// MARK: - Errors

/// A failed HDF5 operation; the message names the file and the object.
public struct H5Error: Error, CustomStringConvertible, LocalizedError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// Process-wide HDF5 set-up and error-stack access.
enum H5Library {
    /// Silences HDF5's automatic error printing on the calling thread.
    ///
    /// Thread-safe HDF5 builds keep the error-printing setting per thread, so
    /// every entry point calls this; it is a cheap, idempotent call.
    static func prepare() {
        _ = skipLibraryShutdown
        swiftgpt_h5_silence_errors()
    }

    /// Keeps HDF5 from registering its exit handler, before anything initialises it.
    ///
    /// When a write fails (a full disk), H5Fclose fails too and HDF5 1.10 leaves the
    /// freed file in its table of open objects; the exit handler then closes it again
    /// and crashes. Every file is closed explicitly here, so the handler has nothing to do.
    private static let skipLibraryShutdown: Void = { H5dont_atexit() }()

    /// The innermost description on HDF5's error stack (then clears the stack).
    static func takeErrorDetail() -> String? {
        var detail: String?
        withUnsafeMutablePointer(to: &detail) { pointer in
            _ = H5Ewalk2(swiftgpt_h5e_default(), H5E_WALK_UPWARD, { n, error, clientData in
                guard n == 0, let error, let desc = error.pointee.desc, let clientData else { return 0 }
                clientData.assumingMemoryBound(to: String?.self).pointee = String(cString: desc)
                return 0
            }, pointer)
        }
        H5Eclear2(swiftgpt_h5e_default())
        return detail
    }

    /// An error for `file` saying `what` failed on `object`, with HDF5's explanation.
    static func error(_ file: String, _ what: String, _ object: String? = nil) -> H5Error {
        var message = "\(file): \(what)"
        if let object { message += " '\(object)'" }
        if let detail = takeErrorDetail() { message += " (HDF5: \(detail))" }
        return H5Error(message)
    }
}

// MARK: - Element types

/// The element type of a stored dataset or attribute.
public enum H5ElementType: String, Sendable, CustomStringConvertible {
    case float32, float64, uint8, uint16, int32, uint32, int64, uint64, other

    public var description: String { rawValue }

    /// Classifies an HDF5 datatype.
    init(typeID t: hid_t) {
        let size = H5Tget_size(t)
        switch H5Tget_class(t) {
        case H5T_FLOAT:
            self = size == 4 ? .float32 : size == 8 ? .float64 : .other
        case H5T_INTEGER:
            let signed = H5Tget_sign(t) == H5T_SGN_2
            switch (size, signed) {
            case (1, false): self = .uint8
            case (2, false): self = .uint16
            case (4, true): self = .int32
            case (4, false): self = .uint32
            case (8, true): self = .int64
            case (8, false): self = .uint64
            default: self = .other
            }
        default:
            self = .other
        }
    }

    /// True for the integer types.
    public var isInteger: Bool {
        switch self {
        case .uint8, .uint16, .int32, .uint32, .int64, .uint64: return true
        case .float32, .float64, .other: return false
        }
    }
}

/// A Swift scalar type with a native HDF5 counterpart.
public protocol H5Scalar {
    /// The HDF5 native type identifier used in memory (and in files we write).
    static var h5NativeType: hid_t { get }
    /// The element type a dataset written from this type has.
    static var h5ElementType: H5ElementType { get }
}

extension Float: H5Scalar {
    public static var h5NativeType: hid_t { swiftgpt_h5t_native_float() }
    public static var h5ElementType: H5ElementType { .float32 }
}
extension Double: H5Scalar {
    public static var h5NativeType: hid_t { swiftgpt_h5t_native_double() }
    public static var h5ElementType: H5ElementType { .float64 }
}
extension UInt8: H5Scalar {
    public static var h5NativeType: hid_t { swiftgpt_h5t_native_uint8() }
    public static var h5ElementType: H5ElementType { .uint8 }
}
extension UInt16: H5Scalar {
    public static var h5NativeType: hid_t { swiftgpt_h5t_native_uint16() }
    public static var h5ElementType: H5ElementType { .uint16 }
}
extension Int32: H5Scalar {
    public static var h5NativeType: hid_t { swiftgpt_h5t_native_int32() }
    public static var h5ElementType: H5ElementType { .int32 }
}
extension UInt32: H5Scalar {
    public static var h5NativeType: hid_t { swiftgpt_h5t_native_uint32() }
    public static var h5ElementType: H5ElementType { .uint32 }
}
extension Int64: H5Scalar {
    public static var h5NativeType: hid_t { swiftgpt_h5t_native_int64() }
    public static var h5ElementType: H5ElementType { .int64 }
}
extension UInt64: H5Scalar {
    public static var h5NativeType: hid_t { swiftgpt_h5t_native_uint64() }
    public static var h5ElementType: H5ElementType { .uint64 }
}

// MARK: - File

/// An open HDF5 file.
///
/// Files are created in the HDF5 1.8 file format (readable by every HDF5 from
/// 1.8 on, h5py and h5dump included), whose object headers carry checksums.
public final class H5File {
    /// Path the file was opened or created with.
    public let path: String
    /// The HDF5 file identifier; negative once closed.
    private(set) var id: hid_t

    private init(path: String, id: hid_t) {
        self.path = path
        self.id = id
    }

    deinit { close() }

    /// Creates (or truncates) the file at `path`.
    public static func create(_ path: String) throws -> H5File {
        H5Library.prepare()
        let fapl = try fileAccessList(path)
        defer { H5Pclose(fapl) }
        let id = H5Fcreate(path, swiftgpt_h5f_acc_trunc(), swiftgpt_h5p_default(), fapl)
        guard id >= 0 else { throw H5Library.error(path, "cannot create HDF5 file") }
        return H5File(path: path, id: id)
    }

    /// Opens an existing file, read-only unless `writable`.
    public static func open(_ path: String, writable: Bool = false) throws -> H5File {
        H5Library.prepare()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw H5Error("\(path): no such file")
        }
        if isDirectory.boolValue { throw H5Error("\(path): is a directory, not an HDF5 file") }
        let isHDF5 = H5Fis_hdf5(path)
        if isHDF5 < 0 { throw H5Library.error(path, "cannot read file") }
        if isHDF5 == 0 { throw H5Error("\(path): not an HDF5 file (no HDF5 signature found)") }
        let fapl = try fileAccessList(path)
        defer { H5Pclose(fapl) }
        let flags = writable ? swiftgpt_h5f_acc_rdwr() : swiftgpt_h5f_acc_rdonly()
        let id = H5Fopen(path, flags, fapl)
        guard id >= 0 else {
            throw H5Library.error(path, "cannot open HDF5 file (truncated or damaged?)")
        }
        return H5File(path: path, id: id)
    }

    private static func fileAccessList(_ path: String) throws -> hid_t {
        let fapl = H5Pcreate(swiftgpt_h5p_file_access())
        guard fapl >= 0, H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V18) >= 0 else {
            throw H5Library.error(path, "cannot set up file access")
        }
        return fapl
    }

    /// Closes the file; further use throws. Safe to call more than once.
    public func close() {
        guard id >= 0 else { return }
        H5Fclose(id)
        id = -1
    }

    /// Writes every buffered change of the file to the operating system.
    public func flush() throws {
        H5Library.prepare()
        try check(H5Fflush(try openID(), H5F_SCOPE_GLOBAL), "cannot flush file")
    }

    // MARK: - Internal helpers

    /// The file identifier, or an error if the file was closed.
    func openID() throws -> hid_t {
        guard id >= 0 else { throw H5Error("\(path): file is closed") }
        return id
    }

    /// Throws an error naming this file and `object` when `status` is negative.
    @discardableResult
    func check<I: BinaryInteger>(_ status: I, _ what: @autoclosure () -> String, _ object: String? = nil) throws -> I {
        if status < 0 { throw H5Library.error(path, what(), object) }
        return status
    }

    /// A link-creation property list that creates missing intermediate groups.
    func intermediateGroupsList() throws -> hid_t {
        let lcpl = H5Pcreate(swiftgpt_h5p_link_create())
        try check(lcpl, "cannot create a link property list")
        if H5Pset_create_intermediate_group(lcpl, 1) < 0 {
            H5Pclose(lcpl)
            throw H5Library.error(path, "cannot set up intermediate group creation")
        }
        return lcpl
    }

    /// Runs `body` with the object (group or dataset) at `objectPath` opened.
    func withObject<R>(_ objectPath: String, _ body: (hid_t) throws -> R) throws -> R {
        H5Library.prepare()
        let fid = try openID()
        guard exists(objectPath) else { throw H5Error("\(path): no object '\(objectPath)'") }
        let oid = try check(H5Oopen(fid, objectPath, swiftgpt_h5p_default()), "cannot open object", objectPath)
        defer { H5Oclose(oid) }
        return try body(oid)
    }

    // MARK: - Objects

    /// Whether a group or dataset exists at `objectPath` ("/" always exists).
    public func exists(_ objectPath: String) -> Bool {
        H5Library.prepare()
        guard id >= 0 else { return false }
        var prefix = ""
        for component in objectPath.split(separator: "/") {
            prefix += "/" + component
            if H5Lexists(id, prefix, swiftgpt_h5p_default()) <= 0 {
                H5Eclear2(swiftgpt_h5e_default())
                return false
            }
        }
        return true
    }

    /// Creates the group at `groupPath` and any missing parents; existing groups are kept.
    public func createGroup(_ groupPath: String) throws {
        H5Library.prepare()
        let fid = try openID()
        if exists(groupPath) { return }
        let lcpl = try intermediateGroupsList()
        defer { H5Pclose(lcpl) }
        let gid = try check(H5Gcreate2(fid, groupPath, lcpl, swiftgpt_h5p_default(), swiftgpt_h5p_default()),
                            "cannot create group", groupPath)
        H5Gclose(gid)
    }

    /// Removes the link to the group or dataset at `objectPath` (its space is not reclaimed).
    public func delete(_ objectPath: String) throws {
        H5Library.prepare()
        let fid = try openID()
        guard exists(objectPath) else { throw H5Error("\(path): no object '\(objectPath)' to delete") }
        try check(H5Ldelete(fid, objectPath, swiftgpt_h5p_default()), "cannot delete", objectPath)
    }

    /// Names of the links (groups, datasets) directly inside `groupPath`, in name order.
    public func childNames(of groupPath: String = "/") throws -> [String] {
        try withObject(groupPath) { gid in
            var info = H5G_info_t()
            try check(H5Gget_info(gid, &info), "cannot list group", groupPath)
            var names: [String] = []
            for i in 0..<info.nlinks {
                let length = try check(H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, i, nil, 0,
                                                          swiftgpt_h5p_default()), "cannot list group", groupPath)
                var buffer = [CChar](repeating: 0, count: Int(length) + 1)
                try check(H5Lget_name_by_idx(gid, ".", H5_INDEX_NAME, H5_ITER_INC, i, &buffer, buffer.count,
                                             swiftgpt_h5p_default()), "cannot list group", groupPath)
                names.append(String(cString: buffer))
            }
            return names
        }
    }

    /// Opens the dataset at `datasetPath` for repeated reads.
    ///
    /// `chunkCacheBytes` sizes HDF5's per-dataset chunk cache (see `H5Dataset`).
    public func openDataset(_ datasetPath: String,
                            chunkCacheBytes: Int = H5Dataset.defaultChunkCacheBytes) throws -> H5Dataset {
        try H5Dataset(file: self, path: datasetPath, chunkCacheBytes: chunkCacheBytes)
    }

    /// The shape of the dataset at `datasetPath` (`[]` for a scalar).
    public func shape(of datasetPath: String) throws -> [Int] {
        try openDataset(datasetPath).shape
    }

    /// The stored element type of the dataset at `datasetPath`.
    public func elementType(of datasetPath: String) throws -> H5ElementType {
        try openDataset(datasetPath).elementType
    }

    // MARK: - Whole-dataset I/O

    /// Chunk size used when a checksum is asked for without an explicit chunk size.
    public static let defaultChunkElements = 1 << 20

    /// Writes `data` as a new dataset of `shape` at `datasetPath`, creating parent groups.
    ///
    /// `chunk` (elements per chunk, approximately) stores the dataset chunked;
    /// `fletcher32` adds a per-chunk Fletcher-32 checksum that reads verify.
    /// Empty and scalar datasets cannot be chunked: they are stored
    /// contiguously, without a checksum.
    public func write<T: H5Scalar>(_ data: UnsafeBufferPointer<T>, shape: [Int], to datasetPath: String,
                                   chunk: Int? = nil, fletcher32: Bool = false) throws {
        H5Library.prepare()
        let fid = try openID()
        let count = shape.reduce(1, *)
        guard shape.allSatisfy({ $0 >= 0 }), count == data.count else {
            throw H5Error("\(path): cannot write dataset '\(datasetPath)': shape \(shape) holds \(count) elements, "
                          + "but \(data.count) were given")
        }
        if let chunk, chunk < 1 {
            throw H5Error("\(path): cannot write dataset '\(datasetPath)': chunk must be at least 1 (got \(chunk))")
        }
        if exists(datasetPath) { throw H5Error("\(path): cannot write dataset '\(datasetPath)': it already exists") }
        let space = try makeSpace(shape, datasetPath)
        defer { H5Sclose(space) }
        let dcpl = try check(H5Pcreate(swiftgpt_h5p_dataset_create()), "cannot create dataset properties", datasetPath)
        defer { H5Pclose(dcpl) }
        if (chunk != nil || fletcher32) && count > 0 && !shape.isEmpty {
            var dims = Self.chunkDims(shape, target: chunk ?? Self.defaultChunkElements)
            try check(H5Pset_chunk(dcpl, Int32(dims.count), &dims), "cannot set chunking of", datasetPath)
            if fletcher32 { try check(H5Pset_fletcher32(dcpl), "cannot add a checksum to", datasetPath) }
        }
        let lcpl = try intermediateGroupsList()
        defer { H5Pclose(lcpl) }
        let did = try check(H5Dcreate2(fid, datasetPath, T.h5NativeType, space, lcpl, dcpl, swiftgpt_h5p_default()),
                            "cannot create dataset", datasetPath)
        defer { H5Dclose(did) }
        if count > 0 {
            try check(H5Dwrite(did, T.h5NativeType, swiftgpt_h5s_all(), swiftgpt_h5s_all(), swiftgpt_h5p_default(),
                               data.baseAddress), "cannot write dataset", datasetPath)
        }
    }

    /// Writes `data` as a new dataset (see the buffer-pointer overload).
    public func write<T: H5Scalar>(_ data: [T], shape: [Int], to datasetPath: String,
                                   chunk: Int? = nil, fletcher32: Bool = false) throws {
        try data.withUnsafeBufferPointer {
            try write($0, shape: shape, to: datasetPath, chunk: chunk, fletcher32: fletcher32)
        }
    }

    /// Reads a whole dataset, converting from the stored type as HDF5 does.
    public func read<T: H5Scalar>(_ datasetPath: String, as type: T.Type) throws -> [T] {
        let dataset = try openDataset(datasetPath)
        return try [T](unsafeUninitializedCapacity: dataset.count) { buffer, initialized in
            try dataset.read(into: buffer)
            initialized = dataset.count
        }
    }

    /// Reads a whole dataset into `buffer`, whose count must equal the dataset's.
    public func read<T: H5Scalar>(_ datasetPath: String, into buffer: UnsafeMutableBufferPointer<T>) throws {
        try openDataset(datasetPath).read(into: buffer)
    }

    /// Creates an empty 1-D dataset that grows by `append`, stored in chunks of `chunk` elements.
    ///
    /// `compression` is a deflate level 1...9 (nil: none); `fletcher32` adds per-chunk checksums.
    public func createExtendible<T: H5Scalar>(_ datasetPath: String, type: T.Type, chunk: Int,
                                              compression: Int? = nil,
                                              fletcher32: Bool = false) throws -> H5AppendableDataset<T> {
        try H5AppendableDataset(file: self, path: datasetPath, chunk: chunk, compression: compression,
                                fletcher32: fletcher32)
    }

    /// A dataspace of `shape` (rank 0: scalar).
    func makeSpace(_ shape: [Int], _ object: String, maxShape: [hsize_t]? = nil) throws -> hid_t {
        if shape.isEmpty { return try check(H5Screate(H5S_SCALAR), "cannot create dataspace for", object) }
        var dims = shape.map { hsize_t($0) }
        var maxDims = maxShape ?? dims
        return try check(H5Screate_simple(Int32(dims.count), &dims, &maxDims), "cannot create dataspace for", object)
    }

    /// Chunk dimensions of about `target` elements: whole trailing dimensions first.
    public static func chunkDims(_ shape: [Int], target: Int) -> [hsize_t] {
        var remaining = max(1, target)
        var dims = [hsize_t](repeating: 1, count: shape.count)
        for i in shape.indices.reversed() {
            let d = max(1, min(shape[i], remaining))
            dims[i] = hsize_t(d)
            remaining = max(1, remaining / d)
        }
        return dims
    }

    // MARK: - Attributes

    /// Sets a string attribute (variable-length UTF-8, any length) on the object at `object`.
    public func setAttribute(_ name: String, _ value: String, on object: String = "/") throws {
        if value.utf8.contains(0) {
            throw H5Error("\(path): attribute '\(name)' on '\(object)': strings with NUL characters cannot be stored")
        }
        let type = try stringType(variable: true, object)
        defer { H5Tclose(type) }
        try value.withCString { cString in
            var pointer: UnsafePointer<CChar>? = cString
            try writeAttribute(name, on: object, type: type, shape: []) { attribute in
                H5Awrite(attribute, type, &pointer)
            }
        }
    }

    /// Sets a 64-bit integer attribute.
    public func setAttribute(_ name: String, _ value: Int, on object: String = "/") throws {
        var v = Int64(value)
        try writeAttribute(name, on: object, type: Int64.h5NativeType, shape: []) {
            H5Awrite($0, Int64.h5NativeType, &v)
        }
    }

    /// Sets a 64-bit floating-point attribute.
    public func setAttribute(_ name: String, _ value: Double, on object: String = "/") throws {
        var v = value
        try writeAttribute(name, on: object, type: Double.h5NativeType, shape: []) {
            H5Awrite($0, Double.h5NativeType, &v)
        }
    }

    /// Sets a 1-D 64-bit integer array attribute.
    public func setAttribute(_ name: String, _ value: [Int], on object: String = "/") throws {
        let v = value.map { Int64($0) }
        try writeAttribute(name, on: object, type: Int64.h5NativeType, shape: [v.count]) { attribute in
            v.isEmpty ? 0 : v.withUnsafeBufferPointer { H5Awrite(attribute, Int64.h5NativeType, $0.baseAddress) }
        }
    }

    /// Sets a 1-D 64-bit floating-point array attribute.
    public func setAttribute(_ name: String, _ value: [Double], on object: String = "/") throws {
        try writeAttribute(name, on: object, type: Double.h5NativeType, shape: [value.count]) { attribute in
            value.isEmpty ? 0 : value.withUnsafeBufferPointer { H5Awrite(attribute, Double.h5NativeType, $0.baseAddress) }
        }
    }

    /// Removes attribute `name` from the object at `object`.
    public func deleteAttribute(_ name: String, on object: String = "/") throws {
        try withObject(object) { oid in
            guard try check(H5Aexists(oid, name), "cannot check attribute", name) > 0 else {
                throw H5Error("\(path): no attribute '\(name)' on '\(object)'")
            }
            try check(H5Adelete(oid, name), "cannot delete attribute", name)
        }
    }

    /// Whether the object at `object` has an attribute `name`.
    public func hasAttribute(_ name: String, on object: String = "/") -> Bool {
        (try? withObject(object) { H5Aexists($0, name) > 0 }) ?? false
    }

    /// Names of the attributes of the object at `object`, in name order.
    public func attributeNames(on object: String = "/") throws -> [String] {
        try withObject(object) { oid in
            var names: [String] = []
            _ = try withUnsafeMutablePointer(to: &names) { pointer in
                try check(H5Aiterate2(oid, H5_INDEX_NAME, H5_ITER_INC, nil, { _, name, _, data in
                    guard let name, let data else { return -1 }
                    data.assumingMemoryBound(to: [String].self).pointee.append(String(cString: name))
                    return 0
                }, pointer), "cannot list attributes of", object)
            }
            return names
        }
    }

    /// Reads a string attribute (variable- or fixed-length).
    public func stringAttribute(_ name: String, on object: String = "/") throws -> String {
        try withAttribute(name, on: object) { attribute, fileType, points in
            guard H5Tget_class(fileType) == H5T_STRING, points == 1 else {
                throw H5Error("\(path): attribute '\(name)' on '\(object)' is not a string")
            }
            let isVariable = try check(H5Tis_variable_str(fileType), "cannot read attribute", name)
            if isVariable > 0 {
                let memType = try stringType(variable: true, object)
                defer { H5Tclose(memType) }
                var pointer: UnsafeMutablePointer<CChar>?
                try check(H5Aread(attribute, memType, &pointer), "cannot read attribute", name)
                guard let pointer else { return "" }
                defer { H5free_memory(pointer) }
                return String(cString: pointer)
            }
            let size = H5Tget_size(fileType)
            let memType = try stringType(variable: false, object)
            defer { H5Tclose(memType) }
            try check(H5Tset_size(memType, size + 1), "cannot read attribute", name)
            var buffer = [CChar](repeating: 0, count: size + 1)
            try check(H5Aread(attribute, memType, &buffer), "cannot read attribute", name)
            return String(cString: buffer)
        }
    }

    /// Reads an integer attribute holding one value.
    public func intAttribute(_ name: String, on object: String = "/") throws -> Int {
        let values = try integerValues(name, on: object)
        guard values.count == 1 else {
            throw H5Error("\(path): attribute '\(name)' on '\(object)' holds \(values.count) values, not one")
        }
        return values[0]
    }

    /// Reads an integer array attribute.
    public func intArrayAttribute(_ name: String, on object: String = "/") throws -> [Int] {
        try integerValues(name, on: object)
    }

    /// Reads a numeric attribute holding one value as a Double.
    public func doubleAttribute(_ name: String, on object: String = "/") throws -> Double {
        let values = try doubleArrayAttribute(name, on: object)
        guard values.count == 1 else {
            throw H5Error("\(path): attribute '\(name)' on '\(object)' holds \(values.count) values, not one")
        }
        return values[0]
    }

    /// Reads a numeric array attribute as Doubles.
    public func doubleArrayAttribute(_ name: String, on object: String = "/") throws -> [Double] {
        try withAttribute(name, on: object) { attribute, fileType, points in
            let typeClass = H5Tget_class(fileType)
            guard typeClass == H5T_FLOAT || typeClass == H5T_INTEGER else {
                throw H5Error("\(path): attribute '\(name)' on '\(object)' is not numeric")
            }
            var values = [Double](repeating: 0, count: points)
            try check(H5Aread(attribute, Double.h5NativeType, &values), "cannot read attribute", name)
            return values
        }
    }

    private func integerValues(_ name: String, on object: String) throws -> [Int] {
        try withAttribute(name, on: object) { attribute, fileType, points in
            guard H5Tget_class(fileType) == H5T_INTEGER else {
                throw H5Error("\(path): attribute '\(name)' on '\(object)' is not an integer")
            }
            var values = [Int64](repeating: 0, count: points)
            try check(H5Aread(attribute, Int64.h5NativeType, &values), "cannot read attribute", name)
            return values.map { Int($0) }
        }
    }

    /// A C string type, variable-length UTF-8 or fixed-length (size set by the caller).
    private func stringType(variable: Bool, _ object: String) throws -> hid_t {
        let type = try check(H5Tcopy(swiftgpt_h5t_c_s1()), "cannot create string type for", object)
        if variable {
            guard H5Tset_size(type, swiftgpt_h5t_variable()) >= 0, H5Tset_cset(type, H5T_CSET_UTF8) >= 0 else {
                H5Tclose(type)
                throw H5Library.error(path, "cannot create string type for", object)
            }
        }
        return type
    }

    /// Replaces attribute `name` on `object` with a new one of `type` and `shape`, filled by `write`.
    private func writeAttribute(_ name: String, on object: String, type: hid_t, shape: [Int],
                                _ write: (hid_t) -> herr_t) throws {
        try withObject(object) { oid in
            if try check(H5Aexists(oid, name), "cannot check attribute", name) > 0 {
                try check(H5Adelete(oid, name), "cannot replace attribute", name)
            }
            let space = try makeSpace(shape, name)
            defer { H5Sclose(space) }
            let attribute = try check(H5Acreate2(oid, name, type, space, swiftgpt_h5p_default(),
                                                 swiftgpt_h5p_default()), "cannot create attribute", name)
            defer { H5Aclose(attribute) }
            try check(write(attribute), "cannot write attribute", name)
        }
    }

    /// Runs `body` with attribute `name` open, its file type and its number of elements.
    private func withAttribute<R>(_ name: String, on object: String,
                                  _ body: (hid_t, hid_t, Int) throws -> R) throws -> R {
        try withObject(object) { oid in
            guard try check(H5Aexists(oid, name), "cannot check attribute", name) > 0 else {
                throw H5Error("\(path): no attribute '\(name)' on '\(object)'")
            }
            let attribute = try check(H5Aopen(oid, name, swiftgpt_h5p_default()), "cannot open attribute", name)
            defer { H5Aclose(attribute) }
            let fileType = try check(H5Aget_type(attribute), "cannot read the type of attribute", name)
            defer { H5Tclose(fileType) }
            let space = try check(H5Aget_space(attribute), "cannot read the shape of attribute", name)
            defer { H5Sclose(space) }
            let points = try check(H5Sget_simple_extent_npoints(space), "cannot read the shape of attribute", name)
            return try body(attribute, fileType, Int(points))
        }
    }
}

// MARK: - Dataset handle

/// An open dataset, kept open for repeated (hyperslab) reads.
public final class H5Dataset {
    /// Default size of the chunk cache: room for several corpus chunks.
    public static let defaultChunkCacheBytes = 8 << 20

    public let file: H5File
    public let path: String
    public let shape: [Int]
    public let elementType: H5ElementType
    /// Number of elements.
    public let count: Int
    private var id: hid_t

    /// Opens `path` in `file` with a chunk cache of `chunkCacheBytes`.
    ///
    /// The cache keeps recently read chunks so that nearby windows do not
    /// re-read (and re-verify) the same chunk; its slot count is a prime well
    /// above the number of chunks that fit, as the HDF5 guide recommends.
    init(file: H5File, path: String, chunkCacheBytes: Int) throws {
        H5Library.prepare()
        let fid = try file.openID()
        guard file.exists(path) else { throw H5Error("\(file.path): no dataset '\(path)'") }
        let dapl = try file.check(H5Pcreate(swiftgpt_h5p_dataset_access()), "cannot open dataset", path)
        defer { H5Pclose(dapl) }
        try file.check(H5Pset_chunk_cache(dapl, 10_007, max(0, chunkCacheBytes), 0.75),
                       "cannot set the chunk cache of", path)
        let id = try file.check(H5Dopen2(fid, path, dapl), "cannot open dataset", path)
        let space = H5Dget_space(id)
        let type = H5Dget_type(id)
        defer {
            if space >= 0 { H5Sclose(space) }
            if type >= 0 { H5Tclose(type) }
        }
        let rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1
        guard rank >= 0, type >= 0 else {
            H5Dclose(id)
            throw H5Library.error(file.path, "cannot read the shape of dataset", path)
        }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        H5Sget_simple_extent_dims(space, &dims, nil)
        self.file = file
        self.path = path
        self.id = id
        self.shape = dims.map { Int($0) }
        self.count = shape.reduce(1, *)
        self.elementType = H5ElementType(typeID: type)
    }

    deinit { close() }

    /// Closes the dataset. Safe to call more than once.
    public func close() {
        guard id >= 0 else { return }
        H5Dclose(id)
        id = -1
    }

    private func openID() throws -> hid_t {
        guard id >= 0 else { throw H5Error("\(file.path): dataset '\(path)' is closed") }
        return id
    }

    /// Reads the whole dataset into `buffer`, converting from the stored type.
    public func read<T: H5Scalar>(into buffer: UnsafeMutableBufferPointer<T>) throws {
        H5Library.prepare()
        let did = try openID()
        guard buffer.count == count else {
            throw H5Error("\(file.path): dataset '\(path)' has \(count) elements (shape \(shape)), "
                          + "but the destination holds \(buffer.count)")
        }
        guard count > 0 else { return }
        try file.check(H5Dread(did, T.h5NativeType, swiftgpt_h5s_all(), swiftgpt_h5s_all(), swiftgpt_h5p_default(),
                               buffer.baseAddress), "cannot read dataset", path)
    }

    /// Reads elements `offset..<offset+count` of a 1-D dataset into `destination`.
    public func readSlice<T: H5Scalar>(offset: Int, count n: Int, into destination: UnsafeMutablePointer<T>) throws {
        H5Library.prepare()
        let did = try openID()
        guard shape.count == 1 else {
            throw H5Error("\(file.path): slice reads need a 1-D dataset, '\(path)' has shape \(shape)")
        }
        guard offset >= 0, n >= 0, offset <= count - n else {
            throw H5Error("\(file.path): slice [\(offset), \(offset + n)) is outside dataset '\(path)' "
                          + "of \(count) elements")
        }
        guard n > 0 else { return }
        let fileSpace = try file.check(H5Dget_space(did), "cannot read dataset", path)
        defer { H5Sclose(fileSpace) }
        var start = [hsize_t(offset)]
        var size = [hsize_t(n)]
        try file.check(H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, &start, nil, &size, nil),
                       "cannot select a slice of", path)
        let memSpace = try file.check(H5Screate_simple(1, &size, nil), "cannot read dataset", path)
        defer { H5Sclose(memSpace) }
        try file.check(H5Dread(did, T.h5NativeType, memSpace, fileSpace, swiftgpt_h5p_default(), destination),
                       "cannot read dataset", path)
    }
}

// MARK: - Appendable dataset

/// A 1-D dataset with an unlimited dimension, written by appending.
public final class H5AppendableDataset<T: H5Scalar> {
    public let file: H5File
    public let path: String
    /// Elements written so far.
    public private(set) var count = 0
    private var id: hid_t

    init(file: H5File, path: String, chunk: Int, compression: Int?, fletcher32: Bool) throws {
        H5Library.prepare()
        let fid = try file.openID()
        guard chunk >= 1 else { throw H5Error("\(file.path): dataset '\(path)': chunk must be at least 1") }
        if let level = compression, !(1...9).contains(level) {
            throw H5Error("\(file.path): dataset '\(path)': compression level must be 1...9 (got \(level))")
        }
        if file.exists(path) { throw H5Error("\(file.path): cannot create dataset '\(path)': it already exists") }
        let space = try file.makeSpace([0], path, maxShape: [swiftgpt_h5s_unlimited()])
        defer { H5Sclose(space) }
        let dcpl = try file.check(H5Pcreate(swiftgpt_h5p_dataset_create()), "cannot create dataset", path)
        defer { H5Pclose(dcpl) }
        var chunkDims = [hsize_t(chunk)]
        try file.check(H5Pset_chunk(dcpl, 1, &chunkDims), "cannot set chunking of", path)
        if let level = compression { try file.check(H5Pset_deflate(dcpl, UInt32(level)), "cannot compress", path) }
        if fletcher32 { try file.check(H5Pset_fletcher32(dcpl), "cannot add a checksum to", path) }
        // Room for a few chunks, so a chunk filled by several appends stays in memory until full.
        let dapl = try file.check(H5Pcreate(swiftgpt_h5p_dataset_access()), "cannot create dataset", path)
        defer { H5Pclose(dapl) }
        let chunkBytes = chunk * MemoryLayout<T>.stride
        try file.check(H5Pset_chunk_cache(dapl, 10_007, max(1 << 20, 4 * chunkBytes), 1.0),
                       "cannot set the chunk cache of", path)
        let lcpl = try file.intermediateGroupsList()
        defer { H5Pclose(lcpl) }
        self.id = try file.check(H5Dcreate2(fid, path, T.h5NativeType, space, lcpl, dcpl, dapl),
                                 "cannot create dataset", path)
        self.file = file
        self.path = path
    }

    deinit { close() }

    /// Closes the dataset. Safe to call more than once.
    public func close() {
        guard id >= 0 else { return }
        H5Dclose(id)
        id = -1
    }

    /// Appends `data` at the end of the dataset.
    public func append(_ data: UnsafeBufferPointer<T>) throws {
        H5Library.prepare()
        guard id >= 0 else { throw H5Error("\(file.path): dataset '\(path)' is closed") }
        guard data.count > 0 else { return }
        var newSize = [hsize_t(count + data.count)]
        try file.check(H5Dset_extent(id, &newSize), "cannot extend dataset", path)
        let fileSpace = try file.check(H5Dget_space(id), "cannot extend dataset", path)
        defer { H5Sclose(fileSpace) }
        var start = [hsize_t(count)]
        var size = [hsize_t(data.count)]
        try file.check(H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, &start, nil, &size, nil),
                       "cannot select the end of", path)
        let memSpace = try file.check(H5Screate_simple(1, &size, nil), "cannot extend dataset", path)
        defer { H5Sclose(memSpace) }
        try file.check(H5Dwrite(id, T.h5NativeType, memSpace, fileSpace, swiftgpt_h5p_default(), data.baseAddress),
                       "cannot append to dataset", path)
        count += data.count
    }

    /// Appends `data` at the end of the dataset.
    public func append(_ data: [T]) throws {
        try data.withUnsafeBufferPointer { try append($0) }
    }
}
