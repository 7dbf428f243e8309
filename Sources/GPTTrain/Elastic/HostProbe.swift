// Running a short outside command with a deadline (a discovery script, a probe
// of a host through the remote shell mpirun uses), and the reachability probe.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Bounded command

/// A command run to completion or killed at a deadline.
public struct BoundedCommand {
    public var started: Bool, timedOut: Bool, status: Int32
    /// Its standard output (or, when it did not start, why); standard error is kept apart in `errors`.
    public var output: String, errors: String

    /// Runs `command` (a path or a name on PATH), with stdin closed; kills it after `timeout` s.
    public static func run(_ command: [String], timeout: Double) -> BoundedCommand {
        let p = Process()
        let exe = command[0]
        p.executableURL = URL(fileURLWithPath: exe.contains("/") ? exe : (findOnPath(exe) ?? exe))
        p.arguments = Array(command.dropFirst())
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch {
            return BoundedCommand(started: false, timedOut: false, status: 127, output: "\(error)", errors: "")
        }
        setpgid(p.processIdentifier, p.processIdentifier)  // its own group: a timeout kills its children too
        // Read both pipes while it runs, so a chatty command cannot block on a full pipe.
        let outData = Collected(), errData = Collected()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { outData.data = out.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { errData.data = err.fileHandleForReading.readDataToEndOfFile() }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        let timedOut = p.isRunning
        if timedOut { kill(-p.processIdentifier, SIGKILL); kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        _ = group.wait(timeout: .now() + 2)
        return BoundedCommand(started: true, timedOut: timedOut, status: p.terminationStatus,
                              output: String(decoding: outData.data, as: UTF8.self), errors: String(decoding: errData.data, as: UTF8.self))
    }

    /// One pipe's bytes, written by its reader thread and read after `group.wait`.
    private final class Collected: @unchecked Sendable { var data = Data() }

    /// The first executable `name` on PATH.
    public static func findOnPath(_ name: String) -> String? {
        (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
            .map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

// MARK: - Probe

/// Whether a host answers through the remote shell mpirun starts its daemons with
/// (`ssh` unless `plm_rsh_agent` says otherwise): `AGENT HOST true`, within a short timeout.
public struct HostProbe: Sendable {
    /// The remote shell and its options, e.g. ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"].
    public var agent: [String]
    public var timeout: Double

    /// A probe through `agent` (a command line, split at spaces); ssh gets batch mode and a connect timeout.
    public init(agent: String, timeout: Double) {
        var words = agent.split(separator: " ").map(String.init)
        if (words.first.map { ($0 as NSString).lastPathComponent }) == "ssh" {
            words += ["-o", "BatchMode=yes", "-o", "ConnectTimeout=\(max(1, Int(timeout)))"]
        }
        self.agent = words
        self.timeout = timeout
    }

    /// Why `host` is unreachable, or nil when it answered.
    public func failure(_ host: ElasticHost) -> String? {
        let r = BoundedCommand.run(agent + [host.name, "true"], timeout: timeout)
        if !r.started { return "\(agent[0]) cannot start: \(r.output)" }
        if r.timedOut { return "no answer through \(agent[0]) within \(Int(timeout)) s" }
        if r.status != 0 {
            let why = TrainError.oneLine(r.errors.trimmingCharacters(in: .whitespacesAndNewlines))
            return "\(agent[0]) exited with status \(r.status)" + (why.isEmpty ? "" : ": \(why)")
        }
        return nil
    }

    /// Every host's probe at once; the hosts that failed and why.
    public func failures(_ hosts: [ElasticHost]) -> [ElasticHost: String] {
        var results = [String?](repeating: nil, count: hosts.count)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: hosts.count) { i in
            let f = failure(hosts[i])
            lock.lock(); results[i] = f; lock.unlock()
        }
        var out: [ElasticHost: String] = [:]
        for (h, f) in zip(hosts, results) { if let f { out[h] = f } }
        return out
    }
}
