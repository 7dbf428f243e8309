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
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()

    init(limit: Double, onTimeout: @escaping (String, Double) -> Void) {
        self.limit = limit
        self.onTimeout = onTimeout
        pthread_mutex_init(&mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        pthread_cond_init(&condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    func begin(_ what: String) {
        pthread_mutex_lock(&mutex)
        current = (what, WatchdogState.now())
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    func end() {
        pthread_mutex_lock(&mutex)
        current = nil
        pthread_mutex_unlock(&mutex)
    }

    func stop() {
        pthread_mutex_lock(&mutex)
        stopped = true
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    /// Sleeps until a call is in progress, then checks it a few times per limit (at least once a second).
    func run() {
        pthread_mutex_lock(&mutex)
        while !stopped {
            guard let call = current else {
                pthread_cond_wait(&condition, &mutex)
                continue
            }
            let elapsed = WatchdogState.now() - call.started
            if elapsed >= limit {
                pthread_mutex_unlock(&mutex)
                onTimeout(call.what, elapsed)
                return
            }
            sleep(seconds: min(limit - elapsed, max(0.05, min(1, limit / 4))))
        }
        pthread_mutex_unlock(&mutex)
    }

    /// Waits up to `seconds` (or until signalled); call with the mutex held.
    private func sleep(seconds: Double) {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let total = Double(now.tv_sec) + Double(now.tv_nsec) * 1e-9 + seconds
        var deadline = timespec()
        deadline.tv_sec = Int(total)
        deadline.tv_nsec = Int((total - Double(Int(total))) * 1e9)
        pthread_cond_timedwait(&condition, &mutex, &deadline)
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }
}
