// Eight ranks on four network-namespace test hosts (two per host, every
// host's link shaped to 1 Gbit/s; oversubscribed, so a protocol test, not a
// speed test): the run equals one rank with the same global batch, step by
// step; a host whose link is cut mid-run ends the job with the watchdog
// naming the ranks on it, while forged datagrams flood rank 0's watchdog.
import Foundation
import GPTData
import TestSupport
import XCTest

final class EightRankTests: XCTestCase {
    /// 8 ranks x batch 2 on 4 hosts = 1 rank x batch 16: parameters after 5 steps, and every step's loss and grad norm.
    func testEightRanksOnFourHostsEqualOneRankWithTheSameGlobalBatch() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-8")
        let corpus = try shakespeareCorpus(in: dir.path)
        let gpt = try MPIHarness.gptBinary()
        _ = try train([gpt], TrainingEquivalenceTests.baseSettings(corpus: corpus, outDir: dir.file("one"))
                                + ["--set", "batch_size=16", "--set", "data_shards=8"])
        try TestCluster.bringUp(hosts: 4, for: self)
        try shape("1gbit")
        let eight = try train([TestCluster.script, "run", "-np", "8", "--", gpt],
                              TrainingEquivalenceTests.baseSettings(corpus: corpus, outDir: dir.file("eight"))
                                  + ["--set", "batch_size=2", "--set", "data_shards=8"])
        XCTAssertTrue(eight.stdout.contains("world: 8 rank(s) on 4 node(s)"), eight.transcript)
        let a = try Checkpoint.read(from: dir.file("eight") + "/latest.h5"), b = try Checkpoint.read(from: dir.file("one") + "/latest.h5")
        let d = try TrainingEquivalenceTests.difference(a, b)
        print("8 ranks on 4 hosts vs 1 rank: parameters differ by \(d)")
        XCTAssertLessThan(d.relative, TrainingEquivalenceTests.tolerance, "\(d)")
        let steps = try trainEvents(dir.file("eight")), reference = try trainEvents(dir.file("one"))
        XCTAssertEqual(steps.map(\.step), reference.map(\.step))
        XCTAssertEqual(steps.count, 5)
        for (x, y) in zip(steps, reference) {
            print(String(format: "step %d: loss %.7f vs %.7f, grad norm %.7f vs %.7f", x.step, x.loss, y.loss, x.norm, y.norm))
            XCTAssertEqual(x.loss, y.loss, accuracy: 1e-5 * abs(y.loss), "loss at step \(x.step)")
            XCTAssertEqual(x.norm, y.norm, accuracy: 1e-4 * abs(y.norm), "grad norm at step \(x.step)")
        }
    }

    /// Host 3 (ranks 6 and 7) loses its link after step 20: rank 0's watchdog names ranks 6 and 7 as silent
    /// and the job ends; a forger floods the watchdog's port all the while, to no effect.
    func testLinkCutEndsTheJobWithTheWatchdogNamingTheRanksOnThatHost() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-8cut")
        let corpus = try shakespeareCorpus(in: dir.path)
        let out = dir.file("cut")
        try TestCluster.bringUp(hosts: 4, for: self)
        try shape("1gbit")
        let forger = DatagramForger(marker: out, ranks: 8)
        forger.start()
        let cutter = DispatchSemaphore(value: 0)
        var cutAt: Date?
        DispatchQueue.global().async {
            defer { cutter.signal() }
            let deadline = Date().addingTimeInterval(150)
            while ((try? self.trainEvents(out)) ?? []).last.map({ $0.step < 20 }) ?? true, Date() < deadline { usleep(100_000) }
            _ = try? TestSupport.run(TestCluster.script, ["cut", "h3"], timeout: 30)
            cutAt = Date()
            sleep(12)
            _ = try? TestSupport.run(TestCluster.script, ["restore", "h3"], timeout: 30)
        }
        let settings = TrainingEquivalenceTests.baseSettings(corpus: corpus, outDir: out)
            + ["--set", "batch_size=2", "--set", "max_iters=3000", "--set", "eval_interval=5000", "--set", "log_interval=10",
               "--set", "collective_timeout=3"]
        let result = try MPIHarness.run([TestCluster.script, "run", "-np", "8", "--", try MPIHarness.gptBinary(), "train"] + settings,
                                        timeout: 200)
        forger.stop()
        cutter.wait()
        let ended = cutAt.map { result.endTime - $0.timeIntervalSince1970 } ?? -1
        print(String(format: "link of host 3 cut: the job ended %.1f s later; forger sent %d datagrams to %@", ended,
                     forger.sent, forger.endpoints.description))
        print(result.stderr.split(separator: "\n").first { $0.contains("watchdog: step") } ?? "no watchdog message")
        XCTAssertNotNil(cutAt, "the run never reached step 20:\n\(result.transcript)")
        XCTAssertFalse(result.timedOut, result.transcript)
        XCTAssertNotEqual(result.exitCode, 0, result.transcript)
        XCTAssertTrue(result.stderr.contains("watchdog: step"), result.transcript)
        XCTAssertTrue(result.stderr.contains("(host or link lost?): ranks 6, 7;"), result.transcript)
        XCTAssertTrue(result.stderr.contains("failed authentication were ignored"), result.transcript)
        XCTAssertTrue(forger.endpoints.contains { $0.ip.hasPrefix(TestCluster.prefix) }, "\(forger.endpoints)")
        XCTAssertFalse(forger.endpoints.contains { $0.ip == "0.0.0.0" }, "\(forger.endpoints)")
    }

    // MARK: - Helpers

    private func shape(_ rate: String) throws {
        let shaped = try TestSupport.run(TestCluster.script, ["shape", rate], timeout: 30)
        XCTAssertEqual(shaped.status, 0, shaped.output)
    }

    private func train(_ launcher: [String], _ settings: [String]) throws -> ProcessResult {
        let result = try MPIHarness.run(launcher + ["train"] + settings, timeout: 240)
        XCTAssertFalse(result.timedOut, result.transcript)
        XCTAssertEqual(result.exitCode, 0, result.transcript)
        guard result.exitCode == 0 else { throw XCTSkip("training failed (recorded above)") }
        return result
    }

    /// Every "train" event of a run: step, loss, grad norm.
    private func trainEvents(_ outDir: String) throws -> [(step: Int, loss: Double, norm: Double)] {
        try readMetrics(outDir).filter { $0["event"] as? String == "train" }.map {
            (($0["step"] as? Int) ?? -1, ($0["loss"] as? Double) ?? .nan, ($0["grad_norm"] as? Double) ?? .nan)
        }
    }
}
