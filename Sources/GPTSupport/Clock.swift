// The one clock for measuring durations: seconds on the system's monotonic
// clock, the same CLOCK_MONOTONIC that `ConditionLock.wait(seconds:)` counts in.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Monotonic clock

/// Seconds on the system's monotonic clock (not affected by changes to the wall clock).
///
/// Only differences mean anything; the origin is arbitrary (boot, on Linux).
@inlinable
public func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
