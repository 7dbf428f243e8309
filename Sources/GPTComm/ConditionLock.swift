// A mutex with one condition variable on the monotonic clock, and that clock.
//
// GPTComm's threads (the communication thread of a `BackgroundAllreducer`,
// the deadline monitor) share state with the thread that owns MPI through
// this one type, instead of each setting up its own mutex and condition.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - ConditionLock

/// A pthread mutex and a condition variable whose timed waits use CLOCK_MONOTONIC.
///
/// `signal`, `wait` and `wait(seconds:)` must be called with the mutex held (inside `withLock`).
package final class ConditionLock {
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()

    package init() {
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

    /// Runs `body` with the mutex held.
    package func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }

    /// Wakes every waiter; call with the mutex held.
    func signal() { pthread_cond_broadcast(&condition) }

    /// Waits for a signal; call with the mutex held.
    func wait() { pthread_cond_wait(&condition, &mutex) }

    /// Waits for a signal or `seconds`; call with the mutex held.
    func wait(seconds: Double) {
        let total = monotonicSeconds() + seconds
        var deadline = timespec()
        deadline.tv_sec = Int(total)
        deadline.tv_nsec = Int((total - Double(Int(total))) * 1e9)
        pthread_cond_timedwait(&condition, &mutex, &deadline)
    }
}

// MARK: - Clock

/// Seconds on CLOCK_MONOTONIC: unaffected by changes of the wall clock, usable on any thread.
package func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
