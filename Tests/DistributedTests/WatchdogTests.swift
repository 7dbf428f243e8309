import Foundation
import XCTest
import TestSupport

/// A rank that stops responding makes the job end, within the collective
/// timeout plus a few seconds, with a message naming the step and the rank.
final class WatchdogTests: XCTestCase {
    func testAHungRankEndsTheJobWithTheWatchdogMessage() throws {
        let tmp = try TemporaryDirectory()
        let corpus = try shakespeareCorpus(in: tmp.path)
        let timeout = 4.0
        let r = try TestSupport.run(findExecutable("mpirun")!, [
            "-np", "3", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none",
            "-x", "SWIFTGPT_TEST_HANG_RANK=2", "-x", "SWIFTGPT_TEST_HANG_STEP=6",
            try GPTBinary.path(), "train", "--set", "dataset=\(corpus)", "--set", "out_dir=\(tmp.file("run"))",
            "--set", "max_iters=50", "--set", "n_layer=1", "--set", "n_embd=32", "--set", "n_head=2",
            "--set", "block_size=16", "--set", "batch_size=4", "--set", "eval_iters=1", "--set", "eval_interval=1000",
            "--set", "sample_tokens=0", "--set", "threads=1", "--set", "collective_timeout=\(timeout)",
        ], timeout: 120)
        XCTAssertFalse(r.timedOut, "the job hung instead of being aborted by the watchdog:\n\(r.output)")
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("watchdog: step 6 did not finish within 4 s"), r.output)
        XCTAssertTrue(r.output.contains("ranks that did not arrive: 2"), r.output)
        // Start-up (MPI, corpus, sgemm calibration) plus 5 quick steps plus the timeout and a margin.
        print(String(format: "job ended %.1f s after launch (collective_timeout %.0f s)", r.seconds, timeout))
        XCTAssertLessThan(r.seconds, timeout + 15)
    }
}
