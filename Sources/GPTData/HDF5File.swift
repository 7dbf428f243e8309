// HDF5 files: create and open (HDF5 1.8 format), groups and links, and
// datasets written or read whole.
import CHDF5
import Foundation

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
}
