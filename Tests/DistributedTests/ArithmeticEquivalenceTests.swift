// The arithmetic task under real mpirun: 2 ranks with batch B train the same model as one rank
// with batch 2B (every problem is a function of (seed, step, sample), the sample counted over
// the ranks; the loss is the mean over every target of the step), and the accuracy evaluation,
// which spreads the test problems over the ranks, gives the same numbers.
import Foundation
import GPTCore
import GPTData
import GPTTrain
import TestSupport
import XCTest

final class ArithmeticEquivalenceTests: XCTestCase {
    func testTwoRanksEqualOneRankWithTwiceTheBatch() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-arith-dp")
        let settings = ArithmeticRuns.oneDigit + ["max_iters=20", "eval_interval=10", "task_test_problems=50"]
        func train(_ name: String, ranks: Int, batch: Int, accumulation: Int = 1) throws -> (Checkpoint, [[String: Any]]) {
            let out = dir.file(name)
            let args = ["train"] + (settings + ["batch_size=\(batch)", "out_dir=\(out)",
                                                "gradient_accumulation_steps=\(accumulation)"]).flatMap { ["--set", $0] }
            let binary = try MPIHarness.gptBinary()
            let argv = ranks == 1 ? [binary] + args
                : ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", String(ranks), binary] + args
            let result = try MPIHarness.run(argv, timeout: 120)
            XCTAssertEqual(result.exitCode, 0, "\(name) failed:\n\(result.transcript)")
            guard result.exitCode == 0 else { throw XCTSkip("run \(name) failed (recorded above)") }
            let evals = try readMetrics(out).filter { $0["event"] as? String == "eval" }
            return (try Checkpoint.read(from: out + "/latest.h5"), evals)
        }
        let (one, oneEvals) = try train("one", ranks: 1, batch: 32)
        let (two, twoEvals) = try train("two", ranks: 2, batch: 16)
        XCTAssertEqual(one.step, 20)
        let d = try TrainingEquivalenceTests.difference(two, one)
        print("arithmetic task, 2 ranks x batch 16 vs 1 rank x batch 32: max relative difference \(d.description)")
        XCTAssertLessThan(d.relative, TrainingEquivalenceTests.tolerance)
        // Rows of one-digit sums hold 2 or 3 targets: the step's loss is the mean over all of them,
        // not the mean of the micro-batches' means.
        let (accumulated, _) = try train("two-accumulated", ranks: 2, batch: 8, accumulation: 2)
        let da = try TrainingEquivalenceTests.difference(accumulated, one)
        print("2 ranks x 2 micro-steps x batch 8 vs 1 rank x batch 32: max relative difference \(da.description)")
        XCTAssertLessThan(da.relative, TrainingEquivalenceTests.tolerance)
        XCTAssertEqual(oneEvals.count, 3)
        for (a, b) in zip(oneEvals, twoEvals) {
            XCTAssertEqual(a["test_problems"] as? Int, 50)
            XCTAssertEqual(b["test_problems"] as? Int, 50, "every test problem answered once over the ranks")
            XCTAssertEqual(a["accuracy"] as? Double, b["accuracy"] as? Double, "the same answers at step \(a["step"] ?? "?")")
        }
    }
}
