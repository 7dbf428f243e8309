import XCTest
import GPTCore
import TestSupport
import GPTData

final class CheckpointTests: XCTestCase {
    private var dir: TemporaryDirectory!

    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir = nil }

    private static let config = GPTConfig(vocabSize: 11, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 8,
                                          dropout: 0.1, bias: true, tieWeights: false)
    private static let layout = ParameterLayout(config: config)

    /// A checkpoint whose floats have arbitrary bit patterns (NaN payloads, subnormals, -0, infinities).
    private func makeCheckpoint(optimizer: Bool = true) -> Checkpoint {
        let n = Self.layout.count
        func floats(_ seed: UInt32) -> [Float] {
            (0..<n).map { Float(bitPattern: (UInt32($0) &+ seed) &* 2_654_435_761) }
        }
        var parameters = floats(1)
        parameters[0] = -0.0
        parameters[1] = .infinity
        parameters[2] = Float(bitPattern: 0x7FC0_1234) // NaN with a payload
        parameters[3] = .leastNonzeroMagnitude
        return Checkpoint(
            modelConfig: Self.config, parameters: parameters,
            adamM: optimizer ? floats(2) : nil, adamV: optimizer ? floats(3) : nil,
            step: 5000, tokenizerKind: "char", tokenizer: "\n !$&',-.3:;?ABCxyz",
            runConfig: "[model]\nn_layer = 2\nname = \"shakespeare \\\"char\\\"\" # comment\n",
            bestValLoss: 1.4697,
            state: ["rng.rank0": [1, UInt64.max, 0, 1 << 63], "loader.positions": [], "loader.epoch": [3]],
            scalars: ["lr": 6e-4, "tokens_seen": 123_456_789, "nan": .nan])
    }

    private func assertBitIdentical(_ a: [Float]?, _ b: [Float]?, _ name: String, line: UInt = #line) {
        XCTAssertEqual(a?.map(\.bitPattern), b?.map(\.bitPattern), name, line: line)
    }

    private func assertSame(_ read: Checkpoint, _ written: Checkpoint, line: UInt = #line) {
        XCTAssertEqual(read.modelConfig, written.modelConfig, line: line)
        assertBitIdentical(read.parameters, written.parameters, "parameters", line: line)
        assertBitIdentical(read.adamM, written.adamM, "adamM", line: line)
        assertBitIdentical(read.adamV, written.adamV, "adamV", line: line)
        XCTAssertEqual(read.step, written.step, line: line)
        XCTAssertEqual(read.tokenizerKind, written.tokenizerKind, line: line)
        XCTAssertEqual(read.tokenizer, written.tokenizer, line: line)
        XCTAssertEqual(read.runConfig, written.runConfig, line: line)
        XCTAssertEqual(read.bestValLoss, written.bestValLoss, line: line)
        XCTAssertEqual(read.state, written.state, line: line)
        XCTAssertEqual(read.scalars.mapValues(\.bitPattern), written.scalars.mapValues(\.bitPattern), line: line)
    }

    // MARK: - Round trips

    func testRoundTripIsBitIdentical() throws {
        let path = dir.file("ckpt.h5")
        let checkpoint = makeCheckpoint()
        try checkpoint.write(to: path)
        assertSame(try Checkpoint.read(from: path), checkpoint)
        XCTAssertEqual(try dir.contents(), ["ckpt.h5"], "no temporary file is left")

        let withoutMoments = try Checkpoint.read(from: path, includeOptimizer: false)
        XCTAssertNil(withoutMoments.adamM)
        XCTAssertNil(withoutMoments.adamV)
        assertBitIdentical(withoutMoments.parameters, checkpoint.parameters, "parameters")

        // Overwriting replaces the whole file.
        var next = makeCheckpoint(optimizer: false)
        next.step = 6000
        next.bestValLoss = nil
        next.state = [:]
        next.scalars = [:]
        try next.write(to: path)
        assertSame(try Checkpoint.read(from: path), next)
        XCTAssertFalse(try H5File.open(path).exists("/optimizer"))
    }

    func testTensorsAreNamedDatasetsWithTheirShapes() throws {
        let path = dir.file("named.h5")
        try makeCheckpoint().write(to: path)
        let file = try H5File.open(path)
        XCTAssertEqual(try file.stringAttribute("format"), "swiftgpt-checkpoint")
        XCTAssertEqual(try file.intAttribute("format_version"), 1)
        XCTAssertEqual(try file.intAttribute("step"), 5000)
        XCTAssertEqual(try file.intAttribute("parameter_count"), Self.layout.count)
        let json = try file.stringAttribute("model_config")
        XCTAssertEqual(try JSONDecoder().decode(GPTConfig.self, from: Data(json.utf8)), Self.config)
        XCTAssertTrue(json.contains("\"n_layer\":2"), json)
        XCTAssertEqual(try file.childNames(of: "/model").count, Self.layout.tensors.count)
        for group in ["/model", "/optimizer/m", "/optimizer/v"] {
            for tensor in Self.layout.tensors {
                XCTAssertEqual(try file.shape(of: "\(group)/\(tensor.name)"), tensor.shape)
                XCTAssertEqual(try file.elementType(of: "\(group)/\(tensor.name)"), .float32)
            }
        }
        XCTAssertEqual(try file.shape(of: "/model/h.0.attn.c_attn.weight"), [24, 8])
        XCTAssertEqual(try file.shape(of: "/model/lm_head.weight"), [11, 8])
        XCTAssertEqual(try file.elementType(of: "/state/rng.rank0"), .uint64)
        XCTAssertEqual(try file.doubleAttribute("lr", on: "/state"), 6e-4)
        XCTAssertEqual(try file.doubleAttribute("best_val_loss"), 1.4697)
    }

    // MARK: - Writing safely

    func testAWriteThatFailsMidwayLeavesTheOldFileUnchanged() throws {
        struct Interrupted: Error {}
        let path = dir.file("ckpt.h5")
        let old = makeCheckpoint()
        try old.write(to: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))

        var new = makeCheckpoint()
        new.step = 9999
        new.parameters = new.parameters.map { _ in 0 }
        var written: [String] = []
        XCTAssertThrowsError(try new.write(to: path) { name in
            written.append(name)
            if name == "/model/h.1.mlp.c_fc.weight" { throw Interrupted() }
        }) { XCTAssertTrue($0 is Interrupted) }
        XCTAssertEqual(written.count, Self.layout.tensors.firstIndex { $0.name == "h.1.mlp.c_fc.weight" }! + 1)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: path)), before)
        XCTAssertEqual(try dir.contents(), ["ckpt.h5"])
        assertSame(try Checkpoint.read(from: path), old)
    }

    func testInvalidCheckpointsAreRefusedBeforeWriting() throws {
        let path = dir.file("ckpt.h5")
        var short = makeCheckpoint()
        short.parameters.removeLast()
        var oneMoment = makeCheckpoint()
        oneMoment.adamV = nil
        var badKey = makeCheckpoint()
        badKey.state["loader/rank0"] = [1]
        var clash = makeCheckpoint()
        clash.scalars["rng.rank0"] = 1
        var badConfig = makeCheckpoint()
        badConfig.modelConfig.nHead = 3
        let n = Self.layout.count
        let cases: [(Checkpoint, String, String)] = [
            (short, path, "\(path): cannot write checkpoint: parameters holds \(n - 1) floats, the model_config "
                + "needs \(n)"),
            (oneMoment, path, "\(path): cannot write checkpoint: give both AdamW moments (adamM and adamV) or neither"),
            (badKey, path, "\(path): cannot write checkpoint: state key 'loader/rank0' must be non-empty, not '.', "
                + "and contain no '/'"),
            (clash, path, "\(path): cannot write checkpoint: 'rng.rank0' is both a state array and a scalar"),
            (badConfig, path, "\(path): cannot write checkpoint: n_embd (8) must be divisible by n_head (3)"),
            (makeCheckpoint(), dir.file("no/ckpt.h5"),
             "\(dir.file("no/ckpt.h5")): directory '\(dir.file("no"))' does not exist; create it first"),
        ]
        for (checkpoint, target, message) in cases {
            XCTAssertThrowsError(try checkpoint.write(to: target)) { XCTAssertEqual("\($0)", message) }
        }
        XCTAssertEqual(try dir.contents(), [])
    }

    // MARK: - Damaged files

    func testAFlippedByteIsDetected() throws {
        let path = dir.file("ckpt.h5")
        var checkpoint = makeCheckpoint(optimizer: false)
        checkpoint.parameters = (0..<Self.layout.count).map { Float($0) * 0.25 }
        let marker: Float = 1234.5678
        let index = Self.layout["h.1.attn.c_proj.weight"]!.offset + 17
        checkpoint.parameters[index] = marker
        try checkpoint.write(to: path)

        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let pattern = withUnsafeBytes(of: marker.bitPattern.littleEndian) { Array($0) }
        let at = try XCTUnwrap((0...(bytes.count - 4)).first { Array(bytes[$0 ..< $0 + 4]) == pattern })
        bytes[at + 1] ^= 0x04
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try Checkpoint.read(from: path)) {
            XCTAssertEqual("\($0)", "\(path): the checkpoint is damaged: cannot read dataset "
                           + "'/model/h.1.attn.c_proj.weight' (HDF5: data error detected by Fletcher32 checksum)")
        }
    }

    func testTruncatedAndForeignFilesNameTheFile() throws {
        let path = dir.file("ckpt.h5")
        try makeCheckpoint().write(to: path)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let truncated = dir.file("truncated.h5")
        try bytes.prefix(bytes.count - 100).write(to: URL(fileURLWithPath: truncated))
        XCTAssertThrowsError(try Checkpoint.read(from: truncated)) {
            XCTAssertTrue("\($0)".hasPrefix("\(truncated): cannot open HDF5 file (truncated or damaged?) "
                                            + "(HDF5: truncated file"), "\($0)")
        }
        let text = dir.file("notes.h5")
        try "step = 5000\n".write(toFile: text, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try Checkpoint.read(from: text)) {
            XCTAssertEqual("\($0)", "\(text): not an HDF5 file (no HDF5 signature found)")
        }
        let missing = dir.file("missing.h5")
        XCTAssertThrowsError(try Checkpoint.read(from: missing)) { XCTAssertEqual("\($0)", "\(missing): no such file") }

        let corpus = dir.file("corpus.h5")
        try prepareCharCorpus(inputs: [try write("some text to split\n", "t.txt")], output: corpus)
        XCTAssertThrowsError(try Checkpoint.read(from: corpus)) {
            XCTAssertEqual("\($0)", "\(corpus): not a swiftgpt checkpoint (its format is 'swiftgpt-corpus')")
        }
    }

    private func write(_ text: String, _ name: String) throws -> String {
        let path = dir.file(name)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    /// Writes a good checkpoint, lets `damage` edit it in place, and checks that reading fails with `message`.
    private func assertDamage(_ message: (String) -> String, line: UInt = #line, _ damage: (H5File) throws -> Void) throws {
        let path = dir.file("damaged-\(line).h5")
        try makeCheckpoint().write(to: path)
        try damage(try H5File.open(path, writable: true))
        XCTAssertThrowsError(try Checkpoint.read(from: path), line: line) {
            XCTAssertEqual("\($0)", message(path), line: line)
        }
    }

    func testMissingWrongAndExtraTensorsAreNamed() throws {
        try assertDamage({ "\($0): missing tensor '/model/h.1.ln_2.bias'" }) { try $0.delete("/model/h.1.ln_2.bias") }
        try assertDamage({ "\($0): missing tensor '/optimizer/v/wte.weight'" }) { try $0.delete("/optimizer/v/wte.weight") }
        try assertDamage({ "\($0): tensor '/model/wpe.weight' has shape [64], but model_config needs [8, 8]" }) { file in
            try file.delete("/model/wpe.weight")
            try file.write([Float](repeating: 0, count: 64), shape: [64], to: "/model/wpe.weight")
        }
        try assertDamage({ "\($0): tensor '/model/ln_f.weight' holds int32, expected float32" }) { file in
            try file.delete("/model/ln_f.weight")
            try file.write([Int32](repeating: 0, count: 8), shape: [8], to: "/model/ln_f.weight")
        }
        try assertDamage({ "\($0): tensor '/model/h.2.ln_1.weight' is not part of the model its model_config "
                           + "describes; the file is inconsistent" }) { file in
            try file.write([Float](repeating: 0, count: 8), shape: [8], to: "/model/h.2.ln_1.weight")
        }
        try assertDamage({ "\($0): checkpoint has no group '/model'" }) { try $0.delete("/model") }
        try assertDamage({ "\($0): checkpoint is missing the 'model_config' attribute" }) { file in
            try file.deleteAttribute("model_config")
        }
        try assertDamage({ "\($0): model_config is invalid: n_layer must be at least 1 (got 0)" }) { file in
            try file.setAttribute("model_config", #"{"vocab_size":11,"block_size":8,"n_layer":0,"n_head":2,"#
                                  + #""n_embd":8,"dropout":0,"bias":true,"tie_weights":false}"#)
        }
        try assertDamage({ "\($0): state entry '/state/rng' must be a 1-D integer array (it is float32 of shape [2])" }) {
            try $0.write([Float(1), 2], shape: [2], to: "/state/rng")
        }
    }
}
