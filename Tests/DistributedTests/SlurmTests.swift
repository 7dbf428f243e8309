// launch/slurm.sbatch on a real Slurm cluster (launch/slurmcluster.sh: three
// nodes in network namespaces): ranks started by srun with PMIx, or by
// mpirun inside the allocation, train across two nodes and finish; a node's
// ranks killed mid-job are restarted inside the allocation by `gpt
// supervise`; a node that fails outright makes Slurm requeue the job, which
// resumes on the two nodes left from the newest good checkpoint.
import Foundation
import GPTData
import TestSupport
import XCTest

final class SlurmTests: XCTestCase {
    /// srun --mpi=pmix, 2 nodes x 2 ranks; rank processes on node 1 SIGKILLed after step 20.
    func testSrunJobRestartsInsideTheAllocationWhenANodesRanksAreKilled() throws {
        let run = try Job(self, "srun", iters: 40, environment: ["SWIFTGPT_RESTARTS": "2", "SWIFTGPT_RESTART_DELAY": "1"])
        try run.waitForCheckpoint(20)
        let killed = try SlurmCluster.kill(onHost: 1, matching: " train ")
        XCTAssertEqual(killed, 2, "expected node 1's two ranks")
        let end = try run.waitForEnd(timeout: 240)
        XCTAssertEqual(end["JobState"], "COMPLETED", run.output)
        XCTAssertEqual(end["Restarts"], "0", "Slurm requeued the job although no node failed")
        XCTAssertTrue(run.output.contains("restart 1/2 from the newest good checkpoint"), run.output)
        XCTAssertTrue(run.output.contains("resuming from"), run.output)
        try run.assertFinished(at: 40)
    }

    /// mpirun inside the allocation (Open MPI's Slurm support starts its daemons through srun).
    func testMpirunInsideTheAllocationTrainsAcrossTwoNodes() throws {
        let run = try Job(self, "mpirun", iters: 10, environment: ["SWIFTGPT_LAUNCHER": "mpirun"])
        let end = try run.waitForEnd(timeout: 180)
        XCTAssertEqual(end["JobState"], "COMPLETED", run.output)
        try run.assertFinished(at: 10)
    }

    /// Node 1 dies (slurmd and all): Slurm marks it down, requeues the job (--requeue), and the job resumes
    /// from the newest good checkpoint on nodes 0 and 2.
    func testJobIsRequeuedAfterANodeFailureAndResumesOnTheNodesLeft() throws {
        let run = try Job(self, "requeue", iters: 40, environment: ["SWIFTGPT_RESTARTS": "3", "SWIFTGPT_RESTART_DELAY": "5"])
        try run.waitForCheckpoint(20)
        let failedAt = Date()
        XCTAssertGreaterThan(try SlurmCluster.kill(onHost: 1, matching: nil), 2, "node 1 ran no slurmd and ranks")
        let end = try run.waitForEnd(timeout: 300, releaseRequeued: true)
        print(String(format: "node failure: the requeued job finished %.0f s later on %@", Date().timeIntervalSince(failedAt),
                     end["NodeList"] ?? "?"))
        XCTAssertEqual(end["JobState"], "COMPLETED", run.output)
        XCTAssertEqual(end["Restarts"], "1", "Slurm did not requeue the job")
        XCTAssertEqual(end["NodeList"], "\(TestCluster.name)-h[0,2]", "the requeued job ran on the failed node")
        XCTAssertTrue(run.output.contains("(restart 1) on 2 node(s)"), run.output)
        XCTAssertTrue(run.output.contains("resuming from"), run.output)
        try run.assertFinished(at: 40)
    }

    // MARK: - A job

    /// One `sbatch launch/slurm.sbatch` of a tiny model on a fresh three-node cluster: 2 nodes x 2 ranks,
    /// evaluation and a checkpoint every 10 steps, a 5 s step watchdog.
    private final class Job {
        let id: Int
        let outDir: String
        let outputPath: String
        private let dir: TemporaryDirectory

        init(_ test: XCTestCase, _ name: String, iters: Int, environment: [String: String]) throws {
            try SlurmCluster.bringUp(nodes: 3, for: test)
            dir = try TemporaryDirectory(prefix: "swiftgpt-slurm")
            outDir = dir.file(name)
            outputPath = dir.file("\(name).out")
            let corpus = try shakespeareCorpus(in: dir.path)
            let settings = ["dataset=\(corpus)", "max_iters=\(iters)", "eval_interval=10", "eval_iters=2", "n_layer=2",
                            "n_head=2", "n_embd=48", "block_size=32", "batch_size=4", "sample_tokens=0", "log_interval=5",
                            "collective_timeout=5"]
            id = try SlurmCluster.submit(["--nodes=2", "--ntasks-per-node=2", "--cpus-per-task=1", "--time=10",
                                          "--output=\(outputPath)"],
                                         [MPIHarness.packageRoot.appendingPathComponent("configs/shakespeare_char_cpu.toml").path,
                                          "--set"] + settings,
                                         environment: ["OUT_DIR": outDir, "SWIFTGPT_BIN": try MPIHarness.gptBinary()]
                                             .merging(environment) { $1 })
        }

        /// The job's output so far.
        var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

        func waitForCheckpoint(_ step: Int, timeout: Double = 180) throws {
            let deadline = Date().addingTimeInterval(timeout)
            let path = outDir + String(format: "/ckpt_%07d.h5", step)
            while !FileManager.default.fileExists(atPath: path) && Date() < deadline { usleep(200_000) }
            XCTAssertTrue(FileManager.default.fileExists(atPath: path), "no checkpoint at step \(step):\n\(output.suffix(3000))")
            guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("the job did not get going") }
        }

        func waitForEnd(timeout: Double, releaseRequeued: Bool = false) throws -> [String: String] {
            let end = try SlurmCluster.waitForEnd(of: id, timeout: timeout, releaseRequeued: releaseRequeued)
            if end == nil { _ = try? SlurmCluster.command(["scancel", String(id)]) }
            return try XCTUnwrap(end, "job \(id) did not end within \(timeout) s:\n\(output.suffix(3000))")
        }

        /// The job trained `iters` steps on 4 ranks over 2 nodes and wrote a finite final checkpoint.
        func assertFinished(at iters: Int, file: StaticString = #filePath, line: UInt = #line) throws {
            XCTAssertTrue(output.contains("world: 4 rank(s) on 2 node(s)"), output, file: file, line: line)
            let final = try Checkpoint.read(from: outDir + String(format: "/ckpt_%07d.h5", iters))
            XCTAssertEqual(final.step, iters, file: file, line: line)
            XCTAssertTrue(final.parameters.allSatisfy(\.isFinite), file: file, line: line)
        }
    }
}
