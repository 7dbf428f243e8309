// The deadline engine behind both watchdogs of a rank: the collective timeout
// (every blocking MPI call) and the trainer's step watchdog (every training
// step). One monitor thread per process ends the job when a watched span of
// work outlasts its limit.
//
// Open MPI notices a rank that dies and ends the job, but not one that hangs
// (a stopped process, a deadlocked or swapping node) or one whose network
// silently stops delivering: the other ranks would wait in their next
// collective forever. A `Deadline` is a clock with a limit: `begin` starts it,
// `end` stops it. The monitor thread sleeps in poll(2) until the earliest
// running deadline is due, or until a watched socket has data (the step
// watchdog's progress datagrams arrive that way, so rank 0 reads them while
// every MPI call is stuck). A deadline that passes stops and reports once:
// `describe` runs with the monitor's lock held, so it sees the state its owner
// keeps under that lock as it stood at expiry; `fire` runs afterwards, outside
// the lock, and normally ends the process.
import Foundation
import GPTSupport
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Deadline

/// A span of work that must end within `limit` seconds of its start, watched by a `DeadlineMonitor`.
package final class Deadline {
    /// Seconds from `begin` to expiry.
    package let limit: Double
    private let monitor: DeadlineMonitor
    fileprivate let describe: (_ what: String, _ elapsed: Double) -> String
    fileprivate let fire: (String) -> Void
    // Guarded by the monitor's lock.
    fileprivate var what = ""
    fileprivate var started: Double?

    /// A stopped clock, watched by `monitor` until `cancel()`.
    ///
    /// When a span outlasts `limit`, the monitor thread stops the clock, calls `describe` with what
    /// the span was doing and the seconds it ran (the monitor's lock held: it must not take the lock
    /// again), then `fire` with the result.
    package init(limit: Double, monitor: DeadlineMonitor = .shared,
                 describe: @escaping (_ what: String, _ elapsed: Double) -> String,
                 fire: @escaping (String) -> Void) {
        self.limit = limit
        self.monitor = monitor
        self.describe = describe
        self.fire = fire
        monitor.add(self)
    }

    /// Starts the clock for a span doing `what`; `update` runs under the monitor's lock at the same instant.
    package func begin(_ what: String, _ update: () -> Void = {}) {
        monitor.withLock {
            update()
            self.what = what
            let now = monotonicSeconds()
            started = now
            monitor.due(at: now + limit)
        }
    }

    /// Stops the clock: the span ended in time.
    package func end() {
        monitor.withLock { started = nil }
    }

    /// Runs `body`, a span doing `what`, under the limit.
    package func guarded<T>(_ what: @autoclosure () -> String, _ body: () -> T) -> T {
        begin(what())
        defer { end() }
        return body()
    }

    /// Stops watching this deadline for good.
    package func cancel() {
        monitor.remove(self)
    }
}

// MARK: - DeadlineMonitor

/// The one thread that watches every `Deadline` of the process and the sockets given to it.
package final class DeadlineMonitor {
    /// The process's monitor; its thread starts with the first deadline or socket.
    package static let shared = DeadlineMonitor()

    private let lock = ConditionLock()
    // Guarded by `lock`.
    private var deadlines: [Deadline] = []
    private var sockets: [(fd: Int32, onReadable: () -> Void)] = []
    private var closing: [Int32] = []
    /// When the monitor thread wakes up by itself; `-infinity` once it has been woken.
    private var wakesAt = -Double.infinity
    private var running = false
    private let wakeRead: Int32
    private let wakeWrite: Int32

    private init() {
        var ends: [Int32] = [-1, -1]
        let rc = pipe(&ends)
        precondition(rc == 0, "cannot create the deadline monitor's pipe: \(String(cString: strerror(errno)))")
        for fd in ends { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        wakeRead = ends[0]
        wakeWrite = ends[1]
    }

    /// Runs `body` under the lock that guards every deadline (and the state their owners keep with them).
    package func withLock<T>(_ body: () throws -> T) rethrows -> T {
        try lock.withLock(body)
    }

    /// Calls `onReadable` on the monitor thread whenever `fd` has data; it must read without blocking.
    package func watch(socket fd: Int32, onReadable: @escaping () -> Void) {
        withLock {
            sockets.append((fd, onReadable))
            startIfNeeded()
            wake()
        }
    }

    /// Stops watching `fd` and closes it (on the monitor thread, once no poll uses it).
    package func unwatch(socket fd: Int32) {
        withLock {
            sockets.removeAll { $0.fd == fd }
            closing.append(fd)
            wake()
        }
    }

    fileprivate func add(_ deadline: Deadline) {
        withLock {
            deadlines.append(deadline)
            startIfNeeded()
        }
    }

    fileprivate func remove(_ deadline: Deadline) {
        withLock { deadlines.removeAll { $0 === deadline } }
    }

    /// A deadline is now due at `time`: wakes the thread if it would sleep past it; call with the lock held.
    fileprivate func due(at time: Double) {
        if time < wakesAt { wake() }
    }

    // MARK: - The monitor thread

    /// Call with the lock held.
    private func wake() {
        wakesAt = -Double.infinity
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    /// Call with the lock held.
    private func startIfNeeded() {
        guard !running else { return }
        running = true
        Thread.detachNewThread { [self] in run() }
    }

    /// Sleeps until a deadline is due or a socket has data; reports expired deadlines; never returns.
    private func run() {
        while true {
            var (fds, handlers, timeout) = prepareSleep()
            _ = poll(&fds, nfds_t(fds.count), timeout)
            if fds[0].revents != 0 { drainWakePipe() }
            for (i, onReadable) in handlers.enumerated() where fds[i + 1].revents != 0 { onReadable() }
            for (deadline, message) in expired() { deadline.fire(message) }
        }
    }

    /// What to poll (the wake pipe first, then the sockets), their handlers and the poll timeout in ms.
    private func prepareSleep() -> ([pollfd], [() -> Void], Int32) {
        withLock {
            for fd in closing { close(fd) }
            closing.removeAll()
            let events = Int16(POLLIN)
            let fds = [pollfd(fd: wakeRead, events: events, revents: 0)]
                + sockets.map { pollfd(fd: $0.fd, events: events, revents: 0) }
            let next = deadlines.compactMap { d in d.started.map { $0 + d.limit } }.min() ?? .infinity
            wakesAt = next
            guard next.isFinite else { return (fds, sockets.map(\.onReadable), -1) }
            let milliseconds = ((next - monotonicSeconds()) * 1000).rounded(.up)
            return (fds, sockets.map(\.onReadable), Int32(Swift.max(0, Swift.min(milliseconds, Double(Int32.max)))))
        }
    }

    /// Stops every deadline that has passed and describes it (under the lock).
    private func expired() -> [(Deadline, String)] {
        withLock {
            let now = monotonicSeconds()
            var result: [(Deadline, String)] = []
            for deadline in deadlines {
                guard let started = deadline.started, now - started >= deadline.limit else { continue }
                deadline.started = nil
                result.append((deadline, deadline.describe(deadline.what, now - started)))
            }
            return result
        }
    }

    private func drainWakePipe() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakeRead, &buffer, buffer.count) > 0 {}
    }
}
