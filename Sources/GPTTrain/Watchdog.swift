// The step watchdog: a training step (or evaluation, or checkpoint) that outlasts
// `collective_timeout` ends the job, with a message that names the ranks that
// did not arrive.
import Foundation
import GPTComm
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Watchdog

/// Aborts a rank whose step (a hung collective, a lost peer, a stuck disk) takes
/// longer than a timeout, with a message that names the step, what this rank
/// was doing, and, on rank 0, the ranks that did not arrive.
///
/// It uses no MPI: the step is a `Deadline` of the process's `DeadlineMonitor`
/// (the thread that also guards every blocking MPI call), and every rank reports
/// "entered phase P of step S" to rank 0 in a UDP datagram (fire and forget),
/// which rank 0's monitor thread reads, so rank 0 knows who reached the gradient
/// allreduce even while every MPI call is stuck. When the timeout passes, the
/// rank prints one line and exits with status 124; mpirun then ends the job and
/// a supervisor (`gpt supervise`) can restart it from the last checkpoint.
public final class Watchdog {
    public let timeout: Double
    public let rank: Int
    public let size: Int
    /// Called on the monitor thread with the message, before the process exits
    /// (rank 0 records it in metrics.jsonl, where `gpt supervise` looks for it).
    public var onFire: ((String) -> Void)?
    /// Exit with status 124 after firing (tests turn this off).
    public var exitOnFire = true

    private let monitor = DeadlineMonitor.shared
    /// The clock of the current step; nil until `start()`.
    private var deadline: Deadline?
    // Guarded by the monitor's lock.
    private var step = -1
    private var phase = "starting"
    /// Rank 0: the last (step, phase) heard from every rank.
    private var heard: [(step: Int, phase: String)]
    private let socket: Int32
    private var listening = false
    private var targets: [sockaddr_in] = []

    /// A watchdog for `rank` of `size`; wire it with `listen` (rank 0) or
    /// `connect` (the others), then `start` it.
    public init(timeout: Double, rank: Int, size: Int) {
        self.timeout = timeout
        self.rank = rank
        self.size = size
        heard = Array(repeating: (-1, "not started"), count: size)
        socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    }

    deinit {
        stop()
        if listening {
            monitor.unwatch(socket: socket)
        } else if socket >= 0 {
            close(socket)
        }
    }

    // MARK: - Wiring (rank 0 listens, the others send)

    /// Rank 0: binds a UDP port and returns "ip,ip,...:port" for the other ranks.
    public func listen() -> String {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = INADDR_ANY
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &len) } }
        let port = UInt16(bigEndian: addr.sin_port)
        listening = true
        monitor.watch(socket: socket) { [weak self] in self?.receive() }
        return Watchdog.localIPv4Addresses().joined(separator: ",") + ":\(port)"
    }

    /// Other ranks: where to send heartbeats (every address rank 0 listed; the reachable one delivers).
    public func connect(to root: String) {
        let parts = root.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { return }
        for ip in parts[0].split(separator: ",") {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            guard inet_pton(AF_INET, String(ip), &a.sin_addr) == 1 else { continue }
            targets.append(a)
        }
    }

    /// Starts watching the steps.
    public func start() {
        // Rank 0 fires first, so the job ends with its report of who is missing;
        // the others only if rank 0 itself is lost.
        let limit = rank == 0 ? timeout : timeout + max(2, timeout / 10)
        deadline?.cancel()
        deadline = Deadline(limit: limit,
                            describe: { [weak self] _, _ in self?.report() ?? "" },
                            fire: { [weak self] message in self?.fire(message) })
    }

    /// Stops watching; the watchdog never fires afterwards.
    public func stop() {
        deadline?.cancel()
    }

    // MARK: - Reporting progress

    /// A new step begins: its clock starts now.
    public func beginStep(_ s: Int, phase p: String) {
        let record = { self.record(step: s, phase: p) }
        if let deadline { deadline.begin(p, record) } else { monitor.withLock(record) }
        announce(s, p)
    }

    /// The current step moves on to phase `p` (e.g. "gradient allreduce").
    public func enter(_ p: String) {
        let s = monitor.withLock { () -> Int in
            record(step: step, phase: p)
            return step
        }
        announce(s, p)
    }

    /// Outside any step (e.g. finished): the clock is off.
    public func idle() {
        deadline?.end()
    }

    /// Call with the monitor's lock held.
    private func record(step s: Int, phase p: String) {
        step = s
        phase = p
        if rank == 0 { heard[0] = (s, p) }
    }

    /// Other ranks: tells rank 0 where this rank is now.
    private func announce(_ s: Int, _ p: String) {
        guard rank != 0 else { return }
        let msg = Array("\(rank) \(s) \(p)".utf8)
        for var t in targets {
            _ = withUnsafePointer(to: &t) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(socket, msg, msg.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    /// Rank 0, on the monitor thread: reads every progress datagram waiting on the socket.
    private func receive() {
        var buf = [UInt8](repeating: 0, count: 512)
        while true {
            let n = recv(socket, &buf, buf.count, Int32(MSG_DONTWAIT))
            guard n >= 0 else { return }
            let parts = String(decoding: buf[0..<n], as: UTF8.self).split(separator: " ", maxSplits: 2)
            guard parts.count == 3, let r = Int(parts[0]), let s = Int(parts[1]), (0..<size).contains(r) else { continue }
            monitor.withLock {
                if s >= heard[r].step { heard[r] = (s, String(parts[2])) }
            }
        }
    }

    // MARK: - Firing

    /// The message for a step that outlasted the timeout; runs with the monitor's lock held.
    private func report() -> String {
        var message = "watchdog: step \(step) did not finish within \(Int(timeout)) s (collective_timeout); rank \(rank) is stuck in \(phase)"
        if rank == 0 {
            let missing = (0..<size).filter { !(heard[$0].step == step && heard[$0].phase == phase) }.map { r in
                heard[r].step < 0 ? "\(r) (never heard from)" : "\(r) (last seen in \(heard[r].phase) of step \(heard[r].step))"
            }
            message += missing.isEmpty ? "; every rank reached it, so a rank or a link failed inside the collective"
                : "; ranks that did not arrive: " + missing.joined(separator: ", ")
        }
        return message + "; aborting so the job can be restarted from the last checkpoint"
    }

    private func fire(_ message: String) {
        FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
        onFire?(message)
        if exitOnFire { _exit(124) }
    }

    /// Non-loopback IPv4 addresses of this host, loopback last (for ranks on the same host).
    public static func localIPv4Addresses() -> [String] {
        var result: [String] = []
        var loopback: [String] = []
        var ifap: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&ifap) == 0 else { return ["127.0.0.1"] }
        defer { freeifaddrs(ifap) }
        var p = ifap
        while let ifa = p {
            defer { p = ifa.pointee.ifa_next }
            guard let sa = ifa.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            guard getnameinfo(sa, socklen_t(MemoryLayout<sockaddr_in>.size), &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else { continue }
            let ip = String(cString: host)
            if ip.hasPrefix("127.") { loopback.append(ip) } else { result.append(ip) }
        }
        return result + loopback
    }
}
