import ArgumentParser
import Foundation
import GPTTrain

/// `gpt supervise --out-dir runs/x [--max-restarts N] -- mpirun -np 4 gpt train cfg.toml`
///
/// Runs a training job and, when it exits with an error (a rank died, the
/// watchdog aborted a hung collective, a node was lost), starts it again from
/// the newest good checkpoint, up to N times.
struct SuperviseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "supervise",
        abstract: "Run a training command and restart it from the newest good checkpoint when it fails.",
        discussion: "Example: gpt supervise --out-dir runs/big --max-restarts 5 -- mpirun -np 8 --hostfile hosts gpt train big.toml")

    @Option(help: "The run's out_dir (where latest.h5 and metrics.jsonl are).") var outDir: String
    @Option(help: "Restarts allowed before giving up.") var maxRestarts = 3
    @Option(help: "Seconds to wait before a restart.") var delay = 2.0
    @Option(help: "Seconds a job may keep running after its watchdog fired before it is killed (mpirun can wait minutes for a lost host).")
    var hangGrace = 10.0
    @Argument(parsing: .captureForPassthrough, help: "The command, after --.") var command: [String] = []

    func validate() throws {
        if command.first == "--" { return }
        guard !command.isEmpty else { throw ValidationError("give the training command after --, e.g. -- mpirun -np 4 gpt train cfg.toml") }
    }

    func run() throws {
        var cmd = command.first == "--" ? Array(command.dropFirst()) : command
        guard !cmd.isEmpty else { throw ValidationError("give the training command after --") }
        var restarts = 0
        while true {
            let status = runChild(cmd)
            if status == 0 {
                say("job finished" + (restarts > 0 ? " after \(restarts) restart(s)" : ""))
                return
            }
            guard restarts < maxRestarts else {
                say("job failed with exit status \(status); giving up after \(restarts) restart(s) (--max-restarts \(maxRestarts))")
                throw ExitCode(status == 0 ? 1 : status)
            }
            restarts += 1
            let latest = outDir + "/latest.h5"
            let hasCheckpoint = FileManager.default.fileExists(atPath: latest)
            if hasCheckpoint && !cmd.contains("--resume") { cmd.append("--resume") }
            say("job failed with exit status \(status); restart \(restarts)/\(maxRestarts) "
                + (hasCheckpoint ? "from the newest good checkpoint in \(outDir)" : "from scratch (no checkpoint yet)"))
            if let log = try? MetricsLog(directory: outDir) {
                try? log.log("restart", step: -1, ["restart": .int(restarts), "exit_status": .int(Int(status)),
                                                   "from_checkpoint": .bool(hasCheckpoint)])
                log.close()
            }
            Thread.sleep(forTimeInterval: delay)
        }
    }

    private func say(_ line: String) {
        let stamp = ISO8601DateFormatter().string(from: Date())
        print("[supervise \(stamp)] \(line)")
        fflush(stdout)
    }

    /// Runs the command in its own process group (so a signal to us reaches all of it) and returns its status.
    private func runChild(_ cmd: [String]) -> Int32 {
        let p = Process()
        let exe = cmd[0] == "gpt" ? CommandLine.arguments[0] : cmd[0]
        p.executableURL = URL(fileURLWithPath: exe.contains("/") ? exe : (findOnPath(exe) ?? exe))
        p.arguments = Array(cmd.dropFirst()).map { $0 == "gpt" ? resolvedSelf() : $0 }
        do { try p.run() } catch {
            say("cannot start \(cmd[0]): \(error)")
            return 127
        }
        let pid = p.processIdentifier
        setpgid(pid, pid)  // its own process group, so a hung job can be killed whole
        SuperviseCommand.child = pid
        signal(SIGINT) { _ in kill(-SuperviseCommand.child, SIGTERM); Foundation.exit(130) }
        signal(SIGTERM) { _ in kill(-SuperviseCommand.child, SIGTERM); Foundation.exit(143) }
        // Watch the run's log: once the watchdog has fired, the job must end soon.
        let metrics = outDir + "/metrics.jsonl"
        let offset = (try? FileManager.default.attributesOfItem(atPath: metrics)[.size] as? Int) ?? 0
        var firedAt: Date?
        while p.isRunning {
            usleep(250_000)
            if firedAt == nil, watchdogFired(metrics, after: offset) { firedAt = Date() }
            if let t = firedAt, Date().timeIntervalSince(t) > hangGrace, p.isRunning {
                say("the job's watchdog fired \(Int(hangGrace)) s ago and the job is still running; killing it")
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                break
            }
        }
        p.waitUntilExit()
        return p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
    }

    nonisolated(unsafe) static var child: pid_t = 0

    /// True when the run's metrics log got a "watchdog" event after byte `offset`.
    private func watchdogFired(_ path: String, after offset: Int) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        guard (try? h.seek(toOffset: UInt64(offset))) != nil, let data = try? h.readToEnd() else { return false }
        return String(decoding: data, as: UTF8.self).contains("\"event\":\"watchdog\"")
    }

    private func resolvedSelf() -> String {
        let a = CommandLine.arguments[0]
        return a.hasPrefix("/") ? a : FileManager.default.currentDirectoryPath + "/" + a
    }

    private func findOnPath(_ name: String) -> String? {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
            .map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
