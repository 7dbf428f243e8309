// Bringing the Slurm test cluster (launch/slurmcluster.sh: munge, slurmctld
// and one slurmd per network-namespace test host) up and down around a test,
// submitting launch/slurm.sbatch to it, and failing its nodes.
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

// MARK: - SlurmCluster

enum SlurmCluster {
    static var script: String { MPIHarness.packageRoot.appendingPathComponent("launch/slurmcluster.sh").path }
    static var sbatchScript: String { MPIHarness.packageRoot.appendingPathComponent("launch/slurm.sbatch").path }
    /// The slurm.conf that `slurmcluster.sh up` writes (SWGPT_SLURM_STATE, as the script reads it).
    static var conf: String {
        (ProcessInfo.processInfo.environment["SWGPT_SLURM_STATE"] ?? "/run/\(TestCluster.name)-slurm") + "/slurm.conf"
    }

    /// Installs Slurm and munge when missing (launch/install-deps.sh --slurm), brings up `nodes` nodes and
    /// registers the teardown on `test`. Skips only where network namespaces cannot be made.
    static func bringUp(nodes: Int, for test: XCTestCase) throws {
        guard getuid() == 0 else { throw XCTSkip("the Slurm test cluster needs root (network namespaces and daemons)") }
        try TestCluster.skipUnlessNamespacesWork()
        if (try? MPIHarness.run(["sh", "-c", "command -v slurmd && command -v munged"], timeout: 30))?.exitCode != 0 {
            let install = try MPIHarness.run([MPIHarness.packageRoot.appendingPathComponent("launch/install-deps.sh").path,
                                              "--slurm"], timeout: 900)
            XCTAssertEqual(install.exitCode, 0, "launch/install-deps.sh --slurm failed:\n\(install.transcript)")
            guard install.exitCode == 0 else { throw XCTSkip("Slurm is not installed (failure recorded above)") }
        }
        try TestCluster.cycle(script, up: nodes, for: test)
    }

    /// Runs a Slurm command (sbatch, scontrol, ...) against the test cluster.
    static func command(_ argv: [String], environment: [String: String] = [:]) throws -> ProcessResult {
        try MPIHarness.run(argv, timeout: 60, environment: ["SLURM_CONF": conf].merging(environment) { $1 })
    }

    /// Submits launch/slurm.sbatch with `sbatchOptions` and the script's `arguments`; returns the job id.
    static func submit(_ sbatchOptions: [String], _ arguments: [String], environment: [String: String]) throws -> Int {
        let env = ["OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "SWIFTGPT_CPU_BIND": "none"]
            .merging(environment) { $1 }
        let result = try command(["sbatch", "--parsable"] + sbatchOptions + [sbatchScript] + arguments, environment: env)
        XCTAssertEqual(result.exitCode, 0, "sbatch failed:\n\(result.transcript)")
        return try XCTUnwrap(Int(result.stdout.split(separator: ";").first?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""),
                             "sbatch printed no job id:\n\(result.transcript)")
    }

    /// `scontrol show job`'s fields (JobState, Reason, Restarts, NodeList, ...), empty once Slurm forgot the job.
    static func job(_ id: Int) -> [String: String] {
        guard let show = try? command(["scontrol", "-o", "show", "job", String(id)]), show.exitCode == 0 else { return [:] }
        var fields: [String: String] = [:]
        for word in show.stdout.split(whereSeparator: \.isWhitespace) {
            let kv = word.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
        }
        return fields
    }

    /// Waits until job `id` ended (its final state), at most `timeout` seconds (nil then). A job Slurm
    /// requeued is held for two minutes (BeginTime); `releaseRequeued` starts it at once instead.
    static func waitForEnd(of id: Int, timeout: Double, releaseRequeued: Bool = false) throws -> [String: String]? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let fields = job(id)
            switch fields["JobState"] ?? "" {
            case "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE":
                return fields
            case "PENDING" where releaseRequeued && fields["Reason"] == "BeginTime":
                _ = try command(["scontrol", "update", "JobId=\(id)", "StartTime=now"])
            default: break
            }
            usleep(500_000)
        }
        return nil
    }

    /// SIGKILLs the processes in test host `host`'s namespace whose command line contains `matching`
    /// (every process, slurmd included, when nil: the node fails); returns how many.
    @discardableResult
    static func kill(onHost host: Int, matching: String?) throws -> Int {
        let pids = try MPIHarness.run(["ip", "netns", "pids", "\(TestCluster.name)-h\(host)"], timeout: 30).stdout
            .split(separator: "\n").compactMap { pid_t($0) }
        var killed = 0
        for pid in pids {
            if let matching {
                let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") ?? Data()
                guard String(decoding: cmdline, as: UTF8.self).replacingOccurrences(of: "\0", with: " ").contains(matching)
                else { continue }
            }
            if Glibc.kill(pid, SIGKILL) == 0 { killed += 1 }
        }
        return killed
    }
}
