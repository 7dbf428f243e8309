// ZeRO-1 under `gpt supervise`: a rank killed mid-run, the job restarted from the
// last checkpoint (whose moments were gathered from both ranks' shards and are
// split again on resume), and the run still ends bit-identical to one that was
// never interrupted.
import Foundation
import XCTest
import GPTData
import TestSupport

final class ZeroResumeTests: XCTestCase {
    func testKilledZeroStage1RunResumesBitIdentically() throws {
        let tmp = try TemporaryDirectory(prefix: "swiftgpt-zero")
        let corpus = try shakespeareCorpus(in: tmp.path)
        let bin = try GPTBinary.path()
        let mpirun = ["mpirun", "-np", "2", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none"]
        func trainArgs(_ out: String) -> [String] {
            [bin, "train"] + TrainingEquivalenceTests.baseSettings(corpus: corpus, outDir: out)
                + ["max_iters=12", "eval_interval=3", "always_save_checkpoint=true", "keep_checkpoints=0", "zero_stage=1",
                   "gradient_accumulation_steps=2", "grad_clip=0.5"].flatMap { ["--set", $0] }
        }
        let straight = tmp.file("straight"), supervised = tmp.file("supervised")
        let a = try TestSupport.run(findExecutable("mpirun")!, Array(mpirun.dropFirst()) + trainArgs(straight), timeout: 120)
        XCTAssertEqual(a.status, 0, a.output)

        // The first job's rank 1 SIGKILLs itself as step 8 starts; the restarted job (the
        // supervisor adds --resume) runs without the kill switch from the checkpoint of step 6.
        let marker = tmp.file("killed-once")
        let once = "if [ ! -e \(marker) ]; then touch \(marker); export SWIFTGPT_TEST_KILL_RANK=1 SWIFTGPT_TEST_KILL_STEP=7; fi; "
            + "exec \"$@\""
        let sup = try SupervisedRun(["--out-dir", supervised, "--max-restarts", "2", "--delay", "0.2", "--", "sh", "-c", once, "sh"]
                                        + mpirun + trainArgs(supervised),
                                    environment: ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"],
                                    logPath: tmp.file("supervise.log"))
        let deadline = Date().addingTimeInterval(180)
        while sup.process.isRunning && Date() < deadline { usleep(100_000) }
        if sup.process.isRunning { sup.process.terminate(); XCTFail("supervised run did not finish in time") }
        sup.waitUntilExit()
        let log = sup.log
        XCTAssertEqual(sup.process.terminationStatus, 0, log.suffix(3000).description)
        XCTAssertTrue(log.contains("rank 1 of 2 kills itself (SIGKILL) at step 7"), log.suffix(3000).description)
        XCTAssertTrue(log.contains("restart 1/2"), "one restart expected:\n\(log.suffix(3000))")
        XCTAssertFalse(log.contains("restart 2/2"), "one restart expected:\n\(log.suffix(3000))")

        let x = try Checkpoint.read(from: straight + "/ckpt_0000012.h5")
        let y = try Checkpoint.read(from: supervised + "/ckpt_0000012.h5")
        XCTAssertEqual(x.parameters.map(\.bitPattern), y.parameters.map(\.bitPattern), "parameters after kill + resume")
        XCTAssertEqual(x.adamM!.map(\.bitPattern), y.adamM!.map(\.bitPattern), "first moments after kill + resume")
        XCTAssertEqual(x.adamV!.map(\.bitPattern), y.adamV!.map(\.bitPattern), "second moments after kill + resume")
        let la = try losses(straight), lb = try losses(supervised)
        XCTAssertEqual(la.count, 12)
        XCTAssertEqual(la, lb, "logged losses and gradient norms")
    }

    /// The logged training loss and gradient norm of every step of a run.
    private func losses(_ dir: String) throws -> [Int: [Double]] {
        var out: [Int: [Double]] = [:]
        for m in try readMetrics(dir) where m["event"] as? String == "train" {
            out[m["step"] as? Int ?? -1] = [m["loss"] as? Double ?? .nan, m["grad_norm"] as? Double ?? .nan]
        }
        return out
    }
}
