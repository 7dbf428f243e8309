// `gpt eval` is the training loop's evaluator on a checkpoint: no trainer, no run directory,
// the batches spread over the ranks under mpirun with the same result as one rank.
import Foundation
import TestSupport
import XCTest

final class EvaluatorTests: XCTestCase {
    func testEvalOnTwoRanksEqualsOneRankAndWritesNothing() throws {
        let tmp = try TemporaryDirectory(prefix: "swiftgpt-eval")
        let corpus = try shakespeareCorpus(in: tmp.path)
        let run = tmp.file("run")
        try gpt(["train", "--set", "dataset=\(corpus)", "--set", "out_dir=\(run)", "--set", "max_iters=10",
                 "--set", "eval_interval=10", "--set", "eval_iters=2", "--set", "n_layer=1", "--set", "n_head=2",
                 "--set", "n_embd=32", "--set", "block_size=16", "--set", "batch_size=8", "--set", "sample_tokens=0",
                 "--set", "threads=1"])
        let before = try FileManager.default.contentsOfDirectory(atPath: run).sorted()
        let scratch = tmp.file("tmpdir")
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        let args = ["eval", run + "/ckpt_0000010.h5", "--iters", "6", "--batch-size", "4", "--seed", "7"]
        let one = try TestSupport.run(try GPTBinary.path(), args, environment: ["TMPDIR": scratch, "SWIFTGPT_THREADS": "1"])
        XCTAssertEqual(one.status, 0, one.output)
        let two = try TestSupport.run("/usr/bin/env", ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2",
                                                      "-x", "TMPDIR", "-x", "SWIFTGPT_THREADS", try GPTBinary.path()] + args,
                                      environment: ["TMPDIR": scratch, "SWIFTGPT_THREADS": "1"])
        XCTAssertEqual(two.status, 0, two.output)
        func losses(_ r: RunResult) -> String? {
            r.output.split(separator: "\n").first { $0.contains("train loss") }.map(String.init)
        }
        let line = try XCTUnwrap(losses(one), one.output)
        XCTAssertTrue(line.contains("(6 batches of 4 x 16 per split)"), line)
        XCTAssertEqual(losses(two), line, "2 ranks share the 6 batches and add their sums: the same losses as 1 rank")
        XCTAssertEqual(two.output.components(separatedBy: "train loss").count, 2, "rank 0 alone prints: \(two.output)")
        // A different seed draws other windows (the check can fail).
        let other = try gpt(["eval", run + "/ckpt_0000010.h5", "--iters", "6", "--batch-size", "4", "--seed", "8"])
        XCTAssertNotEqual(losses(other), line)
        // (Open MPI keeps its session directory, ompi.*, in TMPDIR; nothing else may be there.)
        let stray = try FileManager.default.contentsOfDirectory(atPath: scratch).filter { !$0.hasPrefix("ompi.") }
        XCTAssertEqual(stray, [], "nothing of ours in TMPDIR")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run).sorted(), before, "nothing in the run")
    }
}
