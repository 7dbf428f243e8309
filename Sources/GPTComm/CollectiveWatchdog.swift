// The collective timeout: a rank that waits too long in one blocking MPI call
// ends the whole job instead of hanging.
//
// Open MPI notices a rank that dies and ends the job, but not one that hangs
// (a stopped process, a deadlocked or swapping node) or one whose network
// silently stops delivering: the other ranks would wait in their next
// collective forever. With a limit set, a watchdog thread checks the call in
// progress on this rank and, when it has run longer than the limit, prints
// one line naming the call and aborts the job.
import CMPI
import Foundation
import GPTSupport
#if canImport(Glibc)
import Glibc
#endif

// MARK: - CollectiveWatchdog

/// Aborts the job when one guarded call of this rank outlasts `limit` seconds.
final class CollectiveWatchdog {
    let limit: Double
    private let state: WatchdogState
    private var thread = pthread_t()

    /// Starts the watchdog thread; `onTimeout` runs on it with the name of the call that hung.
    init(limit: Double, onTimeout: @escaping (String, Double) -> Void) {
        self.limit = limit
        state = WatchdogState(limit: limit, onTimeout: onTimeout)
        let box = Unmanaged.passRetained(state).toOpaque()
        let rc = pthread_create(&thread, nil, { argument in
            let state = Unmanaged<WatchdogState>.fromOpaque(argument!).takeRetainedValue()
            state.run()
            return nil
        }, box)
        precondition(rc == 0, "cannot start the collective watchdog thread: \(String(cString: strerror(rc)))")
    }

    deinit {
        state.stop()
        pthread_join(thread, nil)
    }

    /// Runs `body` (a blocking call named `what`) under the limit.
    func guarded<T>(_ what: @autoclosure () -> String, _ body: () -> T) -> T {
        state.begin(what())
        defer { state.end() }
        return body()
    }
}

// MARK: - The watchdog thread

private final class WatchdogState {
    let limit: Double
    let onTimeout: (String, Double) -> Void
    private var current: (what: String, started: Double)?
    private var stopped = false
    private let lock = ConditionLock()

    init(limit: Double, onTimeout: @escaping (String, Double) -> Void) {
        self.limit = limit
        self.onTimeout = onTimeout
    }

    func begin(_ what: String) {
        lock.lock()
        current = (what, WatchdogState.now())
        lock.signal()
        lock.unlock()
    }

    func end() {
        lock.lock()
        current = nil
        lock.unlock()
    }

    func stop() {
        lock.lock()
        stopped = true
        lock.signal()
        lock.unlock()
    }

    /// Sleeps until a call is in progress, then checks it a few times per limit (at least once a second).
    func run() {
        lock.lock()
        while !stopped {
            guard let call = current else {
                lock.wait()
                continue
            }
            let elapsed = WatchdogState.now() - call.started
            if elapsed >= limit {
                lock.unlock()
                onTimeout(call.what, elapsed)
                return
            }
            sleep(seconds: min(limit - elapsed, max(0.05, min(1, limit / 4))))
        }
        lock.unlock()
    }

    /// Waits up to `seconds` (or until signalled); call with the mutex held.
    private func sleep(seconds: Double) { lock.wait(seconds: seconds) }

    static func now() -> Double { monotonicSeconds() }
}
