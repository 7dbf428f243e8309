// The step watchdog: a training step (or evaluation, or checkpoint) that outlasts
// `collective_timeout` ends the job, with a message that names the ranks that
// did not arrive.
import Foundation
import GPTComm
import GPTSupport
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Watchdog

/// Aborts a rank whose step (a hung collective, a lost peer, a stuck disk) takes
/// longer than a timeout, with a message that names the step, what this rank
/// was doing, and, on rank 0, the ranks that did not arrive.
///
/// Once wired (`wire(over:)`, WatchdogWiring.swift) it uses no MPI: the step is a
/// `Deadline` of the process's `DeadlineMonitor` (the thread that also guards
/// every blocking MPI call), and every rank reports "entered phase P of step S"
/// to rank 0 in an authenticated UDP datagram (fire and forget; WatchdogDatagram.swift),
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

    let monitor = DeadlineMonitor.shared
    /// The clock of the current step; nil until `start()`.
    private var deadline: Deadline?
    // Guarded by the monitor's lock.
    private var step = -1
    private var phase = "starting"
    /// Rank 0: the last (step, phase) heard from every rank, and the counter of that rank's last datagram.
    private var heard: [(step: Int, phase: String)]
    private var lastCounter: [UInt64]
    /// Rank 0: when (monotonicSeconds) each rank's last good datagram arrived.
    private var heardAt: [Double]
    /// Rank 0: datagrams thrown away (wrong MAC, malformed, replayed, or naming no other rank).
    private(set) var dropped = 0

    // Set once by `wire(over:)`, before `start()`.
    /// The job's key; nil until wired (a world of one never is).
    var seal: ProgressSeal?
    /// Rank 0: one UDP socket per address it listens on; the others: one socket connected to rank 0.
    var sockets: [Int32] = []
    /// The others: the counter of the last datagram sent (guarded by the monitor's lock).
    private var sent: UInt64 = 0
    /// The others: repeats the current (step, phase) every `heartbeat` seconds, so that rank 0 can tell
    /// a rank that went silent (a lost host, a cut link) from one that is merely waiting in a collective.
    private var heartbeatTimer: DispatchSourceTimer?
    var heartbeat: Double { max(0.25, timeout / 6) }

    /// A watchdog for `rank` of `size`; wire it with `wire(over:)` (every rank), then `start` it.
    public init(timeout: Double, rank: Int, size: Int) {
        self.timeout = timeout
        self.rank = rank
        self.size = size
        heard = Array(repeating: (-1, "not started"), count: size)
        lastCounter = Array(repeating: 0, count: size)
        heardAt = Array(repeating: monotonicSeconds(), count: size)
    }

    deinit {
        stop()
        for fd in sockets {
            if rank == 0 { monitor.unwatch(socket: fd) } else { close(fd) }
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
        if rank != 0 && heartbeatTimer == nil && !sockets.isEmpty {
            let timer = DispatchSource.makeTimerSource(queue: .global())
            timer.schedule(deadline: .now() + heartbeat, repeating: heartbeat)
            timer.setEventHandler { [weak self] in
                guard let self else { return }
                let (s, p) = monitor.withLock { (self.step, self.phase) }
                announce(s, p)
            }
            timer.resume()
            heartbeatTimer = timer
        }
    }

    /// Stops watching; the watchdog never fires afterwards.
    public func stop() {
        deadline?.cancel()
        heartbeatTimer?.cancel()
        heartbeatTimer = nil
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

    /// Other ranks: tells rank 0 where this rank is now (one sealed datagram; fire and forget).
    private func announce(_ s: Int, _ p: String) {
        guard rank != 0, let seal, let fd = sockets.first else { return }
        let counter = monitor.withLock { () -> UInt64 in
            sent += 1
            return sent
        }
        let datagram = seal.seal(rank: rank, counter: counter, step: s, phase: p)
        _ = send(fd, datagram, datagram.count, Int32(MSG_DONTWAIT))
    }

    /// Rank 0, on the monitor thread: reads every datagram waiting on `fd`, keeping those that open under
    /// the job's key, come from another rank of the job and are newer than that rank's last.
    func receive(_ fd: Int32) {
        guard let seal else { return }
        var buf = [UInt8](repeating: 0, count: ProgressSeal.maxBytes + 1)
        while true {
            let n = recv(fd, &buf, buf.count, Int32(MSG_DONTWAIT))
            guard n >= 0 else { return }
            let progress = seal.open(buf[0..<n])
            monitor.withLock {
                guard let p = progress, (1..<size).contains(p.rank), p.counter > lastCounter[p.rank] else {
                    dropped += 1
                    return
                }
                lastCounter[p.rank] = p.counter
                heardAt[p.rank] = monotonicSeconds()
                if p.step >= heard[p.rank].step { heard[p.rank] = (p.step, p.phase) }
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
            // Every rank repeats its progress every `heartbeat` s, even while blocked: silence means a lost rank or link.
            let now = monotonicSeconds()
            let silent = (1..<size).filter { now - heardAt[$0] > 3 * heartbeat }
            if !silent.isEmpty {
                message += "; silent for more than \(String(format: "%.1f", 3 * heartbeat)) s (host or link lost?): ranks "
                    + silent.map(String.init).joined(separator: ", ")
            }
            if dropped > 0 { message += "; \(dropped) datagram(s) that failed authentication were ignored" }
        }
        return message + "; aborting so the job can be restarted from the last checkpoint"
    }

    private func fire(_ message: String) {
        FileHandle.standardError.write(Data(("error: " + message + "\n").utf8))
        onFire?(message)
        if exitOnFire { _exit(124) }
    }
}
