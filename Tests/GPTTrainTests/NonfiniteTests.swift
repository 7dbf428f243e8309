import Foundation
import XCTest
import GPTData
import TestSupport

/// A non-finite loss or gradient norm never updates the weights: the step is
/// skipped (up to max_nonfinite_skips in a row) or the run stops, and no
/// checkpoint is written from the damaged state.
final class NonfiniteTests: XCTestCase {
    private func args(_ corpus: String, _ out: String, _ extra: [String]) -> [String] {
        ["train", "--set", "dataset=\(corpus)", "--set", "out_dir=\(out)", "--set", "max_iters=40", "--set", "n_layer=1",
         "--set", "n_embd=32", "--set", "n_head=2", "--set", "block_size=16", "--set", "batch_size=4",
         "--set", "eval_iters=1", "--set", "eval_interval=20", "--set", "sample_tokens=0", "--set", "log_interval=1",
         // A learning rate that blows the weights up within a few steps.
         "--set", "learning_rate=1e6", "--set", "warmup_iters=0", "--set", "decay_lr=false"] + extra
    }

    func testSkipThenStopAfterTooManyInARow() throws {
        let tmp = try TemporaryDirectory()
        let corpus = try shakespeareCorpus(in: tmp.path)
        let r = try gpt(args(corpus, tmp.file("run"), ["--set", "nonfinite=skip", "--set", "max_nonfinite_skips=3"]),
                        expectSuccess: false)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("update skipped (3 in a row)"), r.output)
        XCTAssertTrue(r.output.contains("error: non-finite loss"), r.output)
        let events = try readMetrics(tmp.file("run")).filter { $0["event"] as? String == "nonfinite" }
        XCTAssertEqual(events.count, 4)
        // Nothing after the blow-up was checkpointed.
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.file("run/ckpt_0000020.h5")))
    }

    func testStopAtTheFirstOne() throws {
        let tmp = try TemporaryDirectory()
        let corpus = try shakespeareCorpus(in: tmp.path)
        let r = try gpt(args(corpus, tmp.file("run"), ["--set", "nonfinite=stop"]), expectSuccess: false)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertFalse(r.output.contains("update skipped"), r.output)
        XCTAssertTrue(r.output.contains("error: non-finite loss"), r.output)
    }
}
