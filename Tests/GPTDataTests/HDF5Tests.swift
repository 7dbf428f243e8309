import XCTest
import TestSupport
import GPTData

final class HDF5Tests: XCTestCase {
    private var dir: TemporaryDirectory!

    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir = nil }

    // MARK: - Datasets

    private func roundTrip<T: H5Scalar & Equatable>(_ values: [T], _ file: H5File, line: UInt = #line) throws {
        let name = "/types/\(T.self)"
        try file.write(values, shape: [2, 3], to: name)
        XCTAssertEqual(try file.read(name, as: T.self), values, line: line)
        XCTAssertEqual(try file.shape(of: name), [2, 3], line: line)
        XCTAssertEqual(try file.elementType(of: name), T.h5ElementType, line: line)
    }

    func testEveryScalarTypeRoundTrips() throws {
        let path = dir.file("types.h5")
        do {
            let file = try H5File.create(path)
            try roundTrip([Float(-1.5), 0, .pi, .infinity, -.greatestFiniteMagnitude, .leastNonzeroMagnitude], file)
            try roundTrip([Double(-1.5), 0, .pi, -.infinity, .greatestFiniteMagnitude, 1e-300], file)
            try roundTrip([UInt8(0), 1, 127, 128, 254, 255], file)
            try roundTrip([UInt16(0), 1, 255, 256, 65534, 65535], file)
            try roundTrip([Int32.min, -1, 0, 1, 1 << 20, Int32.max], file)
            try roundTrip([UInt32(0), 1, 1 << 16, 1 << 31, UInt32.max - 1, UInt32.max], file)
            try roundTrip([Int64.min, -1, 0, 1, 1 << 40, Int64.max], file)
            try roundTrip([UInt64(0), 1, 1 << 32, 1 << 63, UInt64.max - 1, UInt64.max], file)
        }
        // Reopened read-only, values and types are what was written.
        let file = try H5File.open(path)
        XCTAssertEqual(try file.read("/types/UInt64", as: UInt64.self).last, UInt64.max)
        XCTAssertEqual(try file.childNames(of: "/types"),
                       ["Double", "Float", "Int32", "Int64", "UInt16", "UInt32", "UInt64", "UInt8"])
        XCTAssertEqual(try file.elementType(of: "/types/Int64"), .int64)
    }

    func testReadConvertsFromTheStoredType() throws {
        let file = try H5File.create(dir.file("convert.h5"))
        try file.write([UInt16(0), 7, 65535], shape: [3], to: "t")
        XCTAssertEqual(try file.read("t", as: Int32.self), [0, 7, 65535])
        XCTAssertEqual(try file.read("t", as: Float.self), [0, 7, 65535])
        try file.write([Float(0.5), 2], shape: [2], to: "f")
        XCTAssertEqual(try file.read("f", as: Double.self), [0.5, 2])
    }

    func testScalarEmptyAndChunkedShapes() throws {
        let file = try H5File.create(dir.file("shapes.h5"))
        try file.write([Double(42)], shape: [], to: "scalar", fletcher32: true)
        XCTAssertEqual(try file.shape(of: "scalar"), [])
        XCTAssertEqual(try file.read("scalar", as: Double.self), [42])
        try file.write([Float](), shape: [0], to: "empty", fletcher32: true)
        XCTAssertEqual(try file.shape(of: "empty"), [0])
        XCTAssertEqual(try file.read("empty", as: Float.self), [])
        try file.write([Int32](), shape: [3, 0], to: "empty2")
        XCTAssertEqual(try file.shape(of: "empty2"), [3, 0])
        let values = (0..<(5 * 7 * 3)).map { Float($0) }
        try file.write(values, shape: [5, 7, 3], to: "/deep/er/chunked", chunk: 10, fletcher32: true)
        XCTAssertTrue(file.exists("/deep/er"))
        XCTAssertTrue(file.exists("deep/er/chunked"))
        XCTAssertFalse(file.exists("/deep/nothing"))
        XCTAssertFalse(file.exists("/nothing/at/all"))
        XCTAssertTrue(file.exists("/"))
        XCTAssertEqual(try file.shape(of: "/deep/er/chunked"), [5, 7, 3])
        XCTAssertEqual(try file.read("/deep/er/chunked", as: Float.self), values)
        var into = [Float](repeating: -1, count: values.count)
        try into.withUnsafeMutableBufferPointer { try file.read("/deep/er/chunked", into: $0) }
        XCTAssertEqual(into, values)
    }

    func testChunkDimsStayNearTheTarget() {
        XCTAssertEqual(H5File.chunkDims([100], target: 10), [10])
        XCTAssertEqual(H5File.chunkDims([5, 7, 3], target: 10), [1, 3, 3])
        XCTAssertEqual(H5File.chunkDims([4, 6], target: 1 << 20), [4, 6])
        XCTAssertEqual(H5File.chunkDims([50257, 768], target: 1 << 20), [1365, 768])
    }

    func testWriteAndReadMistakesAreErrors() throws {
        let path = dir.file("mistakes.h5")
        let file = try H5File.create(path)
        XCTAssertThrowsError(try file.write([Float](repeating: 0, count: 5), shape: [2, 3], to: "x")) {
            XCTAssertTrue("\($0)".contains("shape [2, 3] holds 6 elements, but 5 were given"), "\($0)")
        }
        try file.write([Float](repeating: 0, count: 6), shape: [2, 3], to: "x")
        XCTAssertThrowsError(try file.write([Float](repeating: 0, count: 6), shape: [6], to: "x")) {
            XCTAssertTrue("\($0)".contains("already exists"), "\($0)")
        }
        var small = [Float](repeating: 0, count: 5)
        XCTAssertThrowsError(try small.withUnsafeMutableBufferPointer { try file.read("x", into: $0) }) {
            XCTAssertTrue("\($0)".contains("has 6 elements"), "\($0)")
        }
        XCTAssertThrowsError(try file.read("/missing", as: Float.self)) {
            XCTAssertEqual("\($0)", "\(path): no dataset '/missing'")
        }
        XCTAssertThrowsError(try file.openDataset("x").readSlice(offset: 0, count: 1, into: &small)) {
            XCTAssertTrue("\($0)".contains("need a 1-D dataset"), "\($0)")
        }
        try file.delete("x")
        XCTAssertFalse(file.exists("x"))
        file.close()
        XCTAssertThrowsError(try file.write([Float(1)], shape: [1], to: "y")) {
            XCTAssertEqual("\($0)", "\(path): file is closed")
        }
    }

    // MARK: - Streaming and slices

    func testAppendThenSliceReads() throws {
        let path = dir.file("append.h5")
        let values = (0..<25).map { UInt16($0 * 1000) }
        do {
            let file = try H5File.create(path)
            let dataset = try file.createExtendible("/tokens", type: UInt16.self, chunk: 10, compression: 4,
                                                    fletcher32: true)
            try dataset.append(Array(values[0..<3]))
            try dataset.append([])
            try dataset.append(Array(values[3..<21]))
            try dataset.append(Array(values[21...]))
            XCTAssertEqual(dataset.count, 25)
            XCTAssertThrowsError(try file.createExtendible("/tokens", type: UInt16.self, chunk: 10))
            XCTAssertThrowsError(try file.createExtendible("/bad", type: UInt16.self, chunk: 10, compression: 12))
        }
        let file = try H5File.open(path)
        XCTAssertEqual(try file.read("/tokens", as: UInt16.self), values)
        let dataset = try file.openDataset("/tokens", chunkCacheBytes: 64)
        XCTAssertEqual(dataset.shape, [25])
        var window = [Int32](repeating: -1, count: 12)
        try dataset.readSlice(offset: 7, count: 11, into: &window)
        XCTAssertEqual(window[..<11].map { UInt16($0) }, Array(values[7..<18]))
        XCTAssertEqual(window[11], -1, "reads exactly count elements")
        try dataset.readSlice(offset: 25, count: 0, into: &window)
        try dataset.readSlice(offset: 24, count: 1, into: &window)
        XCTAssertEqual(window[0], 24000)
        for (offset, count) in [(-1, 2), (20, 6), (26, 0), (0, -1)] {
            XCTAssertThrowsError(try dataset.readSlice(offset: offset, count: count, into: &window)) {
                XCTAssertEqual("\($0)", "\(path): slice [\(offset), \(offset + count)) is outside dataset "
                               + "'/tokens' of 25 elements")
            }
        }
        dataset.close()
        XCTAssertThrowsError(try dataset.readSlice(offset: 0, count: 1, into: &window))
    }

    // MARK: - Attributes

    func testAttributesOfEveryKind() throws {
        let path = dir.file("attributes.h5")
        let long = String(repeating: "{\"merges\": [\"é ü\", \"Ġt he\"]}\n", count: 2000) // ~60 KB
        XCTAssertGreaterThan(long.utf8.count, 64 * 1024 - 8000)
        do {
            let file = try H5File.create(path)
            try file.setAttribute("name", "first")
            try file.setAttribute("name", "replaced")
            try file.setAttribute("long", long)
            try file.setAttribute("empty", "")
            try file.setAttribute("count", 1_003_854)
            try file.setAttribute("negative", -3)
            try file.setAttribute("loss", 1.4697)
            try file.setAttribute("shape", [6, 6, 384])
            try file.setAttribute("betas", [0.9, 0.95])
            try file.setAttribute("no_ints", [Int]())
            try file.setAttribute("no_reals", [Double]())
            try file.write([Float(1)], shape: [1], to: "/group/data")
            try file.setAttribute("unit", "nats", on: "/group/data")
            try file.setAttribute("depth", 2, on: "/group")
            try file.setAttribute("gone", 2, on: "/group")
            try file.deleteAttribute("gone", on: "/group")
            XCTAssertThrowsError(try file.setAttribute("nul", "a\u{0}b")) {
                XCTAssertTrue("\($0)".contains("NUL"), "\($0)")
            }
            XCTAssertThrowsError(try file.setAttribute("x", 1, on: "/nowhere")) {
                XCTAssertEqual("\($0)", "\(path): no object '/nowhere'")
            }
        }
        let file = try H5File.open(path)
        XCTAssertEqual(try file.stringAttribute("name"), "replaced")
        XCTAssertEqual(try file.stringAttribute("long"), long)
        XCTAssertEqual(try file.stringAttribute("empty"), "")
        XCTAssertEqual(try file.intAttribute("count"), 1_003_854)
        XCTAssertEqual(try file.intAttribute("negative"), -3)
        XCTAssertEqual(try file.doubleAttribute("loss"), 1.4697)
        XCTAssertEqual(try file.doubleAttribute("count"), 1_003_854, "integers read as Double")
        XCTAssertEqual(try file.intArrayAttribute("shape"), [6, 6, 384])
        XCTAssertEqual(try file.doubleArrayAttribute("betas"), [0.9, 0.95])
        XCTAssertEqual(try file.intArrayAttribute("no_ints"), [])
        XCTAssertEqual(try file.doubleArrayAttribute("no_reals"), [])
        XCTAssertEqual(try file.stringAttribute("unit", on: "/group/data"), "nats")
        XCTAssertEqual(try file.intAttribute("depth", on: "/group"), 2)
        XCTAssertEqual(try file.attributeNames(),
                       ["betas", "count", "empty", "long", "loss", "name", "negative", "no_ints", "no_reals", "shape"])
        XCTAssertEqual(try file.attributeNames(on: "/group/data"), ["unit"])
        XCTAssertTrue(file.hasAttribute("loss"))
        XCTAssertFalse(file.hasAttribute("nothing"))
        XCTAssertFalse(file.hasAttribute("unit", on: "/missing"))
        try checkAttributeErrors(file, path)
    }

    /// The errors of `testAttributesOfEveryKind`'s file: missing attributes, wrong kinds, a read-only file.
    private func checkAttributeErrors(_ file: H5File, _ path: String) throws {
        XCTAssertThrowsError(try file.deleteAttribute("nothing")) {
            XCTAssertEqual("\($0)", "\(path): no attribute 'nothing' on '/'")
        }
        XCTAssertThrowsError(try file.stringAttribute("nothing")) {
            XCTAssertEqual("\($0)", "\(path): no attribute 'nothing' on '/'")
        }
        XCTAssertThrowsError(try file.intAttribute("loss")) {
            XCTAssertEqual("\($0)", "\(path): attribute 'loss' on '/' is not an integer")
        }
        XCTAssertThrowsError(try file.intAttribute("shape")) {
            XCTAssertTrue("\($0)".contains("holds 3 values"), "\($0)")
        }
        XCTAssertThrowsError(try file.stringAttribute("count")) {
            XCTAssertTrue("\($0)".contains("is not a string"), "\($0)")
        }
        XCTAssertThrowsError(try file.doubleAttribute("name")) {
            XCTAssertTrue("\($0)".contains("is not numeric"), "\($0)")
        }
        XCTAssertThrowsError(try file.setAttribute("x", 1)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(path): "), "read-only file: \(error)")
        }
    }

    func testH5dumpShowsStringAttributesAsPlainText() throws {
        guard let h5dump = findExecutable("h5dump") else { throw XCTSkip("h5dump is not installed") }
        let path = dir.file("dump.h5")
        do {
            let file = try H5File.create(path)
            try file.setAttribute("tokenizer", "!$&',-.3:;?ABCXYZabcxyz")
            try file.setAttribute("vocab_size", 65)
        }
        let (status, output) = try runProcess(h5dump, ["-A", path])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("\"!$&',-.3:;?ABCXYZabcxyz\""), output)
        XCTAssertTrue(output.contains("STRSIZE H5T_VARIABLE") && output.contains("CSET H5T_CSET_UTF8"), output)
        XCTAssertTrue(output.contains("(0): 65"), output)
    }

    func testH5pyReadsWhatWeWrite() throws {
        guard let python = findExecutable("python3"),
              try runProcess(python, ["-c", "import h5py"]).status == 0 else {
            throw XCTSkip("python3 with h5py is not installed")
        }
        let path = dir.file("py.h5")
        do {
            let file = try H5File.create(path)
            try file.setAttribute("tokenizer", "\nab")
            try file.setAttribute("step", 5)
            try file.write([Float(1), 2, 3, 4, 5, 6], shape: [2, 3], to: "/model/h.0.attn.c_attn.weight",
                           fletcher32: true)
            let tokens = try file.createExtendible("/train", type: UInt16.self, chunk: 4)
            try tokens.append([1, 2, 3, 4, 5])
        }
        let script = """
            import h5py, sys
            f = h5py.File(sys.argv[1], "r")
            w = f["model/h.0.attn.c_attn.weight"]
            print(repr(f.attrs["tokenizer"]), int(f.attrs["step"]), w.shape, w.dtype, float(w[1, 2]),
                  f["train"].dtype, [int(t) for t in f["train"][1:4]])
            """
        let (status, output) = try runProcess(python, ["-c", script, path])
        XCTAssertEqual(status, 0, output)
        XCTAssertEqual(output.trimmingCharacters(in: .whitespacesAndNewlines),
                       "'\\nab' 5 (2, 3) float32 6.0 uint16 [2, 3, 4]")
    }

    // MARK: - Opening files

    func testOpeningBadFilesNamesTheFile() throws {
        let missing = dir.file("missing.h5")
        XCTAssertThrowsError(try H5File.open(missing)) { XCTAssertEqual("\($0)", "\(missing): no such file") }
        XCTAssertThrowsError(try H5File.open(dir.path)) {
            XCTAssertEqual("\($0)", "\(dir.path): is a directory, not an HDF5 file")
        }
        let text = dir.file("text.h5")
        try "not HDF5 at all\n".write(toFile: text, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try H5File.open(text)) {
            XCTAssertEqual("\($0)", "\(text): not an HDF5 file (no HDF5 signature found)")
        }
        let empty = dir.file("empty.h5")
        XCTAssertTrue(FileManager.default.createFile(atPath: empty, contents: Data()))
        XCTAssertThrowsError(try H5File.open(empty)) { XCTAssertTrue("\($0)".hasPrefix("\(empty): "), "\($0)") }

        let truncated = dir.file("truncated.h5")
        do {
            let file = try H5File.create(truncated)
            try file.write([Float](repeating: 1, count: 10_000), shape: [10_000], to: "x")
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: truncated))
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        XCTAssertThrowsError(try H5File.open(truncated)) {
            XCTAssertTrue("\($0)".hasPrefix("\(truncated): cannot open HDF5 file (truncated or damaged?)"), "\($0)")
        }
        XCTAssertThrowsError(try H5File.create(dir.file("no/such/dir.h5"))) {
            XCTAssertTrue("\($0)".hasPrefix(self.dir.file("no/such/dir.h5") + ": cannot create HDF5 file"), "\($0)")
        }
    }
}
