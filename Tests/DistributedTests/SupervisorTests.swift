import Foundation
import XCTest
import GPTData
import TestSupport

/// `gpt supervise` restarts a data-parallel job whose ranks are killed, and the
/// run still ends bit-identical to one that was never interrupted.
final class SupervisorTests: XCTestCase {
    /// PIDs of processes whose command line contains every one of `needles`.
    private func pids(matching needles: [String]) -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { e -> pid_t? in
            guard let pid = pid_t(e), pid != getpid(),
                  let data = FileManager.default.contents(atPath: "/proc/\(e)/cmdline") else { return nil }
            let cmd = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return needles.allSatisfy { cmd.contains($0) } && !cmd.contains("mpirun") && !cmd.contains(" supervise --out-dir") ? pid : nil
        }
    }

    private func checkpointSteps(_ dir: String) -> [Int] {
        guard let log = try? String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8) else { return [] }
        return log.split(separator: "\n").compactMap { line -> Int? in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  o["event"] as? String == "checkpoint" else { return nil }
            return o["step"] as? Int
        }
    }

    func testKilledRanksAreRestartedAndTheRunEndsBitIdentical() throws {
        let tmp = try TemporaryDirectory()
        let corpus = try shakespeareCorpus(in: tmp.path)
        let bin = try GPTBinary.path()
        let mpirun = ["mpirun", "-np", "2", "--oversubscribe", "--allow-run-as-root", "--bind-to", "none"]
        func trainArgs(_ out: String) -> [String] {
            [bin, "train", "--set", "dataset=\(corpus)", "--set", "out_dir=\(out)", "--set", "max_iters=200",
             "--set", "eval_interval=10", "--set", "eval_iters=2", "--set", "keep_checkpoints=0", "--set", "n_layer=4",
             "--set", "n_head=4", "--set", "n_embd=128", "--set", "block_size=64", "--set", "batch_size=16",
             "--set", "dropout=0.1", "--set", "sample_tokens=0", "--set", "threads=1", "--set", "log_interval=10",
             "--set", "lr_decay_iters=200", "--set", "warmup_iters=10"]
        }
        let straight = tmp.file("straight"), supervised = tmp.file("supervised")
        let a = try TestSupport.run(findExecutable("mpirun")!, Array(mpirun.dropFirst()) + trainArgs(straight), timeout: 240)
        XCTAssertEqual(a.status, 0, a.output)

        // The supervised run, with a killer that SIGKILLs a random rank three times,
        // each time after the run has written a new checkpoint since the last kill.
        let sup = try SupervisedRun(["--out-dir", supervised, "--max-restarts", "6", "--delay", "0.5", "--"] + mpirun + trainArgs(supervised),
                                    environment: ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"],
                                    logPath: tmp.file("supervise.log"))
        let deadline = Date().addingTimeInterval(400)
        let kills = killRanks(of: sup.process, bin: bin, outDir: supervised, until: deadline)
        while sup.process.isRunning && Date() < deadline { usleep(100_000) }
        if sup.process.isRunning { sup.process.terminate(); XCTFail("supervised run did not finish in time") }
        sup.waitUntilExit()
        let log = sup.log
        print("kills after checkpoints at steps \(kills.map(\.step)); supervisor:\n" + log.split(separator: "\n")
            .filter { $0.contains("[supervise") }.joined(separator: "\n"))
        XCTAssertEqual(kills.count, 3, log.suffix(3000).description)
        XCTAssertEqual(sup.process.terminationStatus, 0, log.suffix(3000).description)
        XCTAssertTrue(log.contains("restart 3/6"), "three restarts expected:\n\(log.suffix(3000))")
        let x = try Checkpoint.read(from: straight + "/ckpt_0000200.h5")
        let y = try Checkpoint.read(from: supervised + "/ckpt_0000200.h5")
        XCTAssertEqual(x.parameters.map(\.bitPattern), y.parameters.map(\.bitPattern),
                       "parameters after a run killed 3 times differ from the uninterrupted run")
        // The logged losses, including those after every resume point, are the same too.
        let la = try losses(straight), lb = try losses(supervised)
        XCTAssertEqual(la.count, 20)
        XCTAssertEqual(la, lb)
    }

    /// SIGKILLs a random rank of the supervised run three times, each after a new checkpoint since the last kill.
    private func killRanks(of sup: Process, bin: String, outDir: String, until deadline: Date) -> [(step: Int, pid: pid_t)] {
        var rng = SystemRandomNumberGenerator()
        var kills: [(step: Int, pid: pid_t)] = []
        var nextKillAfter = 10 * Int.random(in: 1...3, using: &rng)
        while kills.count < 3 && sup.isRunning && Date() < deadline {
            usleep(50_000)
            guard let step = checkpointSteps(outDir).last, step >= nextKillAfter, step < 170 else { continue }
            usleep(UInt32.random(in: 0...300_000, using: &rng))
            let ranks = pids(matching: [bin, "out_dir=\(outDir)"])
            guard let victim = ranks.randomElement(using: &rng) else { continue }
            kill(victim, SIGKILL)
            kills.append((step, victim))
            nextKillAfter = step + 10 * Int.random(in: 1...4, using: &rng)
        }
        return kills
    }

    /// The logged training loss of every step of a run.
    private func losses(_ dir: String) throws -> [Int: Double] {
        var out: [Int: Double] = [:]
        for m in try readMetrics(dir) where m["event"] as? String == "train" { out[m["step"] as! Int] = m["loss"] as? Double }
        return out
    }
}
