// Open HDF5 datasets: read whole or by 1-D slice (hyperslab), and extendible
// 1-D datasets written by appending.
import CHDF5
import Foundation

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
        try withSlice(of: did, in: file, path: path, offset: offset, count: n, "read") { memSpace, fileSpace in
            try file.check(H5Dread(did, T.h5NativeType, memSpace, fileSpace, swiftgpt_h5p_default(), destination),
                           "cannot read dataset", path)
        }
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
        try withSlice(of: id, in: file, path: path, offset: count, count: data.count, "extend") { memSpace, fileSpace in
            try file.check(H5Dwrite(id, T.h5NativeType, memSpace, fileSpace, swiftgpt_h5p_default(), data.baseAddress),
                           "cannot append to dataset", path)
        }
        count += data.count
    }

    /// Appends `data` at the end of the dataset.
    public func append(_ data: [T]) throws {
        try data.withUnsafeBufferPointer { try append($0) }
    }
}

// MARK: - Slices

/// Runs `body` with a memory space of `count` elements and the space of dataset `did` with
/// `offset..<offset+count` selected; `verb` ("read", "extend") names the operation in errors.
@discardableResult
private func withSlice<R>(of did: hid_t, in file: H5File, path: String, offset: Int, count: Int, _ verb: String,
                          _ body: (_ memSpace: hid_t, _ fileSpace: hid_t) throws -> R) throws -> R {
    let fileSpace = try file.check(H5Dget_space(did), "cannot \(verb) dataset", path)
    defer { H5Sclose(fileSpace) }
    var start = [hsize_t(offset)]
    var size = [hsize_t(count)]
    try file.check(H5Sselect_hyperslab(fileSpace, H5S_SELECT_SET, &start, nil, &size, nil),
                   verb == "read" ? "cannot select a slice of" : "cannot select the end of", path)
    let memSpace = try file.check(H5Screate_simple(1, &size, nil), "cannot \(verb) dataset", path)
    defer { H5Sclose(memSpace) }
    return try body(memSpace, fileSpace)
}
