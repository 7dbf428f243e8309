// One test host loses its network link in the middle of a data-parallel run on
// the network-namespace test cluster: the watchdog ends the job within the
// collective timeout plus a few seconds, and `gpt supervise` restarts it from
// the last checkpoint once the link is back, finishing the run.
import Foundation
import XCTest
import GPTData
import TestSupport

final class LinkCutTests: XCTestCase {
    func testCutLinkTriggersTheWatchdogAndTheSupervisorFinishesTheRun() throws {
        try TestCluster.bringUp(hosts: 2, for: self)
        let tmp = try TemporaryDirectory()
        let corpus = try shakespeareCorpus(in: tmp.path)
        let out = tmp.file("run")
        let timeout = 3.0, grace = 5.0
        let train = ["gpt", "train", "--set", "dataset=\(corpus)", "--set", "out_dir=\(out)", "--set", "max_iters=150",
                     "--set", "n_layer=2", "--set", "n_embd=64", "--set", "n_head=2", "--set", "block_size=64",
                     "--set", "batch_size=8", "--set", "eval_iters=2", "--set", "eval_interval=10", "--set", "sample_tokens=0",
                     "--set", "threads=1", "--set", "collective_timeout=\(timeout)", "--set", "log_interval=10"]
        let sup = try SupervisedRun(["--out-dir", out, "--max-restarts", "3", "--delay", "4", "--hang-grace", "\(grace)", "--",
                                     TestCluster.script, "run", "-np", "4", "--"] + train,
                                    environment: ["SWIFTGPT_BIN": try GPTBinary.path()], logPath: tmp.file("supervise.log"))
        defer { if sup.process.isRunning { sup.process.terminate() } }
        func log() -> String { sup.log }
        func checkpointed(_ step: Int) -> Bool {
            ((try? readMetrics(out)) ?? []).contains { $0["event"] as? String == "checkpoint" && ($0["step"] as? Int ?? 0) >= step }
        }
        let deadline = Date().addingTimeInterval(300)
        while !checkpointed(30) && sup.process.isRunning && Date() < deadline { usleep(100_000) }
        XCTAssertTrue(checkpointed(30), "the run did not reach step 30:\n\(log().suffix(3000))")
        let cut = try TestSupport.run(TestCluster.script, ["cut", "h1"], timeout: 30)
        XCTAssertEqual(cut.status, 0, cut.output)
        let cutAt = Date()
        while !log().contains("job failed") && sup.process.isRunning && Date() < deadline { usleep(100_000) }
        let ended = Date().timeIntervalSince(cutAt)
        print(String(format: "link cut: the job ended %.1f s later (collective_timeout %.0f s, hang grace %.0f s)", ended, timeout, grace))
        let restore = try TestSupport.run(TestCluster.script, ["restore", "h1"], timeout: 30)
        XCTAssertEqual(restore.status, 0, restore.output)
        XCTAssertTrue(log().contains("watchdog: step"), "no watchdog message:\n\(log().suffix(3000))")
        XCTAssertLessThan(ended, timeout + grace + 10, log().suffix(3000).description)
        while sup.process.isRunning && Date() < deadline { usleep(200_000) }
        sup.waitUntilExit()
        XCTAssertEqual(sup.process.terminationStatus, 0, "the supervised run did not finish:\n\(log().suffix(4000))")
        XCTAssertTrue(log().contains("restart 1/3"), log().suffix(3000).description)
        let final = try Checkpoint.read(from: out + "/ckpt_0000150.h5")
        XCTAssertEqual(final.step, 150)
        XCTAssertTrue(final.parameters.allSatisfy(\.isFinite))
    }
}
