// TensorBoard event files: tensorboard's own reader gives back metrics.jsonl's scalars and
// samples, also for a run that was killed and resumed.
import Foundation
import GPTData
import GPTInterop
import TestSupport
import XCTest

final class TensorBoardTests: XCTestCase {
    static let tiny = ["n_layer=2", "n_head=2", "n_embd=48", "block_size=32", "batch_size=8", "eval_iters=4",
                       "eval_interval=10", "log_interval=5", "sample_tokens=40", "warmup_iters=5", "max_iters=40",
                       "lr_decay_iters=40", "keep_checkpoints=0", "threads=1"]

    func testTensorBoardReadsTheScalarsAndSamplesOfAKilledAndResumedRun() throws {
        try Python.require(["tensorboard", "numpy"])
        let tmp = try TemporaryDirectory()
        let corpus = try shakespeareCorpus(in: tmp.path)
        let runDir = tmp.file("run")
        let args = ["train", "--set"] + Self.tiny + ["dataset=\(corpus)", "out_dir=\(runDir)"]
        // Killed (SIGKILL) as it starts step 27: its last checkpoint is step 20, its event file holds steps up to 25.
        let killed = try TestSupport.run(try GPTBinary.path(), args,
                             environment: ["SWIFTGPT_TEST_KILL_RANK": "0", "SWIFTGPT_TEST_KILL_STEP": "27"], timeout: 120)
        XCTAssertNotEqual(killed.status, 0, "the run was not killed:\n\(killed.output)")
        try gpt(args + ["--resume"])
        let files = try FileManager.default.contentsOfDirectory(atPath: runDir).filter { $0.hasPrefix("events.out.tfevents.") }.sorted()
        XCTAssertEqual(files.count, 2, "one event file per start: \(files)")
        let result = try Python.check("tensorboard", runDir)
        let summary = try XCTUnwrap(result.first as? [String: Any])
        XCTAssertEqual(summary["steps"] as? [Int], [5, 10, 15, 20, 25, 30, 35, 40], "each logged step once, the killed run's 25 replaced")
    }

    /// A task's accuracies reach TensorBoard as eval/accuracy* scalars, equal to metrics.jsonl's.
    func testTaskAccuracyScalars() throws {
        try Python.require(["tensorboard", "numpy"])
        let tmp = try TemporaryDirectory()
        let runDir = tmp.file("run")
        try gpt(["train", "--set"] + ArithmeticRuns.oneDigit + ["max_iters=150", "lr_decay_iters=150", "eval_interval=75",
                                                              "out_dir=\(runDir)"])
        let result = try Python.check("tensorboard", runDir)
        let summary = try XCTUnwrap(result.first as? [String: Any])
        let tags = try XCTUnwrap(summary["tags"] as? [String])
        XCTAssertTrue(tags.contains("eval/accuracy") && tags.contains("eval/accuracy_digits_1") && tags.contains("eval/accuracy_add"),
                      "\(tags)")
    }

    func testTensorboardFalseWritesNoEventFiles() throws {
        let tmp = try TemporaryDirectory()
        let corpus = try shakespeareCorpus(in: tmp.path)
        try gpt(["train", "--set"] + Self.tiny + ["dataset=\(corpus)", "out_dir=\(tmp.file("run"))", "max_iters=2",
                                                  "tensorboard=false"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.file("run")).filter { $0.contains("tfevents") }, [])
    }

    /// The records tile the file: u64 length, 4-byte CRC, the event, 4-byte CRC; a second writer in
    /// the directory names its file later than the first, even within the same second.
    func testRecordsTileTheFileAndLaterFilesSortLater() throws {
        let tmp = try TemporaryDirectory()
        let first = try TensorBoardWriter(directory: tmp.path, resumeStep: nil, clock: { 1_700_000_000 })
        try first.write(step: 1, [.scalar(tag: "train/loss", value: 2.5), .text(tag: "sample", value: "ROMEO: é")])
        first.close()
        let second = try TensorBoardWriter(directory: tmp.path, resumeStep: 2, clock: { 1_700_000_000 })
        second.close()
        XCTAssertLessThan(first.path, second.path)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: first.path)))
        var offset = 0, records = 0
        while offset < bytes.count {
            let length = bytes[offset..<offset + 8].reversed().reduce(0) { $0 << 8 | Int($1) }
            offset += 8 + 4 + length + 4
            records += 1
        }
        XCTAssertEqual(offset, bytes.count)
        XCTAssertEqual(records, 2, "file_version, then one summary")
    }
}
