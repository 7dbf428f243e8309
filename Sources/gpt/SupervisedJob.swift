import Foundation
import GPTTrain

// MARK: - One supervised job

/// One run of a job under `gpt supervise`: started in its own process group (so a signal to the
/// supervisor reaches all of it), killed when its watchdog fired and it outlasts the grace time,
/// and stopped on request (a change of world at a checkpoint boundary).
struct SupervisedJob {
    /// The run's out_dir, whose metrics.jsonl is watched.
    let outDir: String
    let hangGrace: Double
    let say: (String) -> Void

    /// How a job ended.
    struct Outcome {
        var status: Int32
        /// True when `stop` asked for it to end (it did not fail).
        var stopped: Bool
        /// metrics.jsonl's size when the job started: its records follow.
        var metricsOffset: Int
    }

    var metricsPath: String { outDir + "/metrics.jsonl" }

    /// Runs `cmd` (`gpt` is this binary) to its end; `stop` is asked every quarter second
    /// whether to end it now, with the metrics log offset of this job's records.
    func run(_ cmd: [String], stop: (Int) -> Bool = { _ in false }) -> Outcome {
        let offset = (try? FileManager.default.attributesOfItem(atPath: metricsPath)[.size] as? Int) ?? 0
        let p = Process()
        let exe = cmd[0] == "gpt" ? CommandLine.arguments[0] : cmd[0]
        p.executableURL = URL(fileURLWithPath: exe.contains("/") ? exe : (BoundedCommand.findOnPath(exe) ?? exe))
        p.arguments = Array(cmd.dropFirst()).map { $0 == "gpt" ? Self.resolvedSelf() : $0 }
        do { try p.run() } catch {
            say("cannot start \(cmd[0]): \(error)")
            return Outcome(status: 127, stopped: false, metricsOffset: offset)
        }
        let pid = p.processIdentifier
        setpgid(pid, pid)  // its own process group, so a hung job can be killed whole
        SupervisedJob.child = pid
        signal(SIGINT) { _ in kill(-SupervisedJob.child, SIGTERM); Foundation.exit(130) }
        signal(SIGTERM) { _ in kill(-SupervisedJob.child, SIGTERM); Foundation.exit(143) }
        var firedAt: Date?, stoppedAt: Date?
        while p.isRunning {
            usleep(250_000)
            if stoppedAt == nil && firedAt == nil {
                if watchdogFired(after: offset) {
                    firedAt = Date()
                } else if stop(offset) {
                    stoppedAt = Date()
                    kill(pid, SIGTERM)  // mpirun passes it on to every rank
                }
            }
            if let t = firedAt ?? stoppedAt, Date().timeIntervalSince(t) > hangGrace, p.isRunning {
                say(firedAt != nil ? "the job's watchdog fired \(Int(hangGrace)) s ago and the job is still running; killing it"
                    : "the job did not stop within \(Int(hangGrace)) s of SIGTERM; killing it")
                kill(-pid, SIGKILL)
                kill(pid, SIGKILL)
                break
            }
        }
        p.waitUntilExit()
        let status = p.terminationReason == .uncaughtSignal ? 128 + p.terminationStatus : p.terminationStatus
        return Outcome(status: status, stopped: stoppedAt != nil && firedAt == nil, metricsOffset: offset)
    }

    nonisolated(unsafe) static var child: pid_t = 0

    /// True when the run's metrics log got a "watchdog" event after byte `offset`.
    private func watchdogFired(after offset: Int) -> Bool {
        !WatchdogReport.messages(metrics: metricsPath, after: offset).isEmpty
    }

    private static func resolvedSelf() -> String {
        let a = CommandLine.arguments[0]
        return a.hasPrefix("/") ? a : FileManager.default.currentDirectoryPath + "/" + a
    }
}
