// A pthread mutex with one condition variable, for the few places where two
// threads hand work to each other (the communication thread, the collective
// watchdog). Waits with a timeout count on CLOCK_MONOTONIC, like `monotonicSeconds()`.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - ConditionLock

/// A mutex and a condition variable guarding the same state.
///
/// `lock`/`unlock` (or `withLock`) guard the state; `wait` must be called with
/// the mutex held, releases it while waiting and holds it again on return.
public final class ConditionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let condition: UnsafeMutablePointer<pthread_cond_t>

    /// A new unlocked mutex and its condition variable (timed waits on the monotonic clock).
    public init() {
        mutex = .allocate(capacity: 1)
        condition = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if canImport(Glibc)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    // MARK: Locking

    /// Takes the mutex.
    public func lock() { pthread_mutex_lock(mutex) }

    /// Releases the mutex.
    public func unlock() { pthread_mutex_unlock(mutex) }

    /// Runs `body` with the mutex held.
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    // MARK: Waiting

    /// Wakes one waiting thread; call with the mutex held.
    public func signal() { pthread_cond_signal(condition) }

    /// Wakes every waiting thread; call with the mutex held.
    public func broadcast() { pthread_cond_broadcast(condition) }

    /// Waits for a signal; call with the mutex held.
    public func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits for a signal or `seconds` on the monotonic clock, whichever comes first; call with the mutex held.
    public func wait(seconds: Double) {
        let total = monotonicSeconds() + seconds
        var deadline = timespec()
        deadline.tv_sec = Int(total)
        deadline.tv_nsec = Int((total - Double(Int(total))) * 1e9)
        pthread_cond_timedwait(condition, mutex, &deadline)
    }
}
