import Foundation
import XCTest
import GPTCore
import GPTData
import GPTTrain
import TestSupport

/// Damaged checkpoints on --resume, pruning to keep_checkpoints, and never
/// writing a checkpoint from non-finite parameters.
final class CheckpointFallbackTests: XCTestCase {
    override class func tearDown() {
        Fixture.release()
        super.tearDown()
    }

    // MARK: - Resume past damaged checkpoints

    /// A truncated latest checkpoint: --resume names it, falls back to the one before,
    /// and the run finishes exactly as a run that was never interrupted.
    func testResumeFallsBackPastTruncatedLatest() throws {
        try checkFallback(expectedStep: 10) { run in
            try truncate(run + "/ckpt_0000015.h5", to: 0.7)
            return ["ckpt_0000015.h5"]
        }
    }

    /// One flipped byte inside a parameter tensor of the latest checkpoint, and the one
    /// before it truncated: both are named, and the run resumes from the third.
    func testResumeFallsBackPastCorruptTensorByte() throws {
        try checkFallback(expectedStep: 5) { run in
            try flipByteInParameters(run + "/ckpt_0000015.h5")
            try truncate(run + "/ckpt_0000010.h5", to: 0.5)
            return ["ckpt_0000015.h5", "ckpt_0000010.h5"]
        }
    }

    /// Trains to step 15 (checkpoints at 5, 10, 15), damages some with `damage` (which
    /// returns the names of the damaged files), resumes to step 20, and compares the
    /// result with a straight run to step 20.
    private func checkFallback(expectedStep: Int, damage: (String) throws -> [String],
                               file: StaticString = #filePath, line: UInt = #line) throws {
        let tmp = try TemporaryDirectory()
        let corpus = try Fixture.get().directory.file("corpus.h5")
        func args(_ out: String, _ maxIters: Int) -> [String] {
            ["train", "--set", "dataset=\(corpus)", "--set", "out_dir=\(out)", "--set", "max_iters=\(maxIters)",
             "--set", "keep_checkpoints=3", "--set", "lr_decay_iters=20"]
                + (Fixture.model + Fixture.quick.filter { !$0.hasPrefix("max_iters") && !$0.hasPrefix("lr_decay") })
                    .flatMap { ["--set", $0] }
        }
        let straight = tmp.file("straight"), run = tmp.file("run")
        try gpt(args(straight, 20))
        try gpt(args(run, 15))
        let damaged = try damage(run)
        let r = try gpt(args(run, 20) + ["--resume"])
        for name in damaged {
            XCTAssertTrue(r.output.contains("checkpoint \(run)/\(name) is unreadable"), r.output, file: file, line: line)
        }
        XCTAssertTrue(r.output.contains("falling back to the next newest checkpoint"), r.output, file: file, line: line)
        let from = String(format: "%@/ckpt_%07d.h5", run, expectedStep)
        XCTAssertTrue(r.output.contains("resuming from \(from) at step \(expectedStep)"), r.output, file: file, line: line)

        // The resumed run ends where the straight one does, bit for bit.
        let a = try Checkpoint.read(from: straight + "/latest.h5"), b = try Checkpoint.read(from: run + "/latest.h5")
        XCTAssertEqual(b.step, 20, file: file, line: line)
        XCTAssertEqual(a.parameters.map(\.bitPattern), b.parameters.map(\.bitPattern),
                       "parameters after the fallback and resume", file: file, line: line)
        XCTAssertEqual(a.adamV!.map(\.bitPattern), b.adamV!.map(\.bitPattern), file: file, line: line)

        // keep_checkpoints = 3: the last three step files, plus the one best.h5 points at.
        let store = CheckpointStore(directory: run, keep: 3)
        let best = try FileManager.default.destinationOfSymbolicLink(atPath: run + "/best.h5")
        let expected = Set(["ckpt_0000020.h5", "ckpt_0000015.h5", "ckpt_0000010.h5", best])
        XCTAssertEqual(Set(store.stepFiles().map { ($0.path as NSString).lastPathComponent }), expected,
                       file: file, line: line)
        for f in store.stepFiles() { XCTAssertNoThrow(try Checkpoint.read(from: f.path), f.path, file: file, line: line) }
    }

    // MARK: - CheckpointStore

    /// keep_checkpoints keeps the newest K step files and the one best.h5 points at.
    func testKeepCheckpointsKeepsLastKAndBest() throws {
        let tmp = try TemporaryDirectory()
        let store = CheckpointStore(directory: tmp.path, keep: 3)
        for step in 1...6 { try store.save(Self.checkpoint(step: step), isBest: step == 2) }
        XCTAssertEqual(store.stepFiles().map(\.step), [6, 5, 4, 2])
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: store.latestPath), "ckpt_0000006.h5")
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: store.bestPath), "ckpt_0000002.h5")
        XCTAssertEqual(try Checkpoint.read(from: store.bestPath).step, 2)

        let all = CheckpointStore(directory: tmp.path, keep: 0)
        for step in 7...9 { try all.save(Self.checkpoint(step: step), isBest: false) }
        XCTAssertEqual(all.stepFiles().map(\.step), [9, 8, 7, 6, 5, 4, 2], "keep_checkpoints = 0 keeps every one")
    }

    /// A checkpoint is never written from non-finite parameters: save throws, names the
    /// parameter, writes nothing, and latest.h5 still points at the previous checkpoint.
    func testSaveRefusesNonFiniteParameters() throws {
        let tmp = try TemporaryDirectory()
        let store = CheckpointStore(directory: tmp.path, keep: 3)
        try store.save(Self.checkpoint(step: 1), isBest: true)
        let before = try FileSnapshot(tmp.path)
        for bad in [Float.nan, .infinity, -.infinity] {
            var c = Self.checkpoint(step: 2)
            c.parameters[17] = bad
            XCTAssertThrowsError(try store.save(c, isBest: true)) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("refusing to write a checkpoint at step 2"), text)
                XCTAssertTrue(text.contains("parameter 17 is \(bad)"), text)
            }
        }
        XCTAssertEqual(try FileSnapshot(tmp.path).changes(since: before), [])
        XCTAssertEqual(try Checkpoint.read(from: store.latestPath).step, 1)
        XCTAssertEqual(try store.loadNewestGood().1, tmp.path + "/ckpt_0000001.h5")
    }

    /// A write that fails part-way leaves neither a partial file nor a changed latest.h5.
    func testFailedWriteKeepsPreviousCheckpoint() throws {
        let tmp = try TemporaryDirectory()
        let store = CheckpointStore(directory: tmp.path, keep: 3)
        try store.save(Self.checkpoint(step: 1), isBest: true)
        // A directory where the step file would go makes the write fail.
        try FileManager.default.createDirectory(atPath: store.path(step: 2), withIntermediateDirectories: false)
        let before = try FileSnapshot(tmp.path)
        XCTAssertThrowsError(try store.save(Self.checkpoint(step: 2), isBest: true)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("cannot write checkpoint \(store.path(step: 2))"), text)
            XCTAssertTrue(text.contains("latest.h5 still points at ckpt_0000001.h5"), text)
        }
        XCTAssertEqual(try FileSnapshot(tmp.path).changes(since: before), [])
        XCTAssertEqual(try Checkpoint.read(from: store.latestPath).step, 1)
    }

    // MARK: - Helpers

    /// A small valid checkpoint whose parameters depend on `step`.
    static func checkpoint(step: Int) -> Checkpoint {
        let config = GPTConfig(vocabSize: 11, blockSize: 8, nLayer: 1, nHead: 1, nEmbd: 8, dropout: 0, bias: true,
                               tieWeights: true)
        let n = ParameterLayout(config: config).count
        let p = (0..<n).map { Float($0 % 13) * 0.01 + Float(step) }
        return Checkpoint(modelConfig: config, parameters: p, adamM: p, adamV: p.map { $0 * $0 }, step: step,
                          tokenizerKind: CharTokenizer.kindName,
                          tokenizer: CharTokenizer(training: "abcdefghijk").serialized())
    }
}

/// Cuts the file at `path` to `fraction` of its length.
private func truncate(_ path: String, to fraction: Double) throws {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    try data.prefix(Int(Double(data.count) * fraction)).write(to: URL(fileURLWithPath: path))
}
