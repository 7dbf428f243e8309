// Round-robin work over threads, for loops whose items are of similar cost
// and each thread keeps its own state (a cache, a table of counts).
import Dispatch

// MARK: - Strided loop

/// Runs `body(thread, item)` for every item in `0..<count` on `threads` threads at once.
///
/// Thread `t` takes items `t`, `t + threads`, `t + 2 threads`, ... in order, so
/// `body` may use per-thread state indexed by `thread` without locking.
public func concurrentStrided(count: Int, threads: Int, _ body: (_ thread: Int, _ item: Int) -> Void) {
    let threads = max(1, threads)
    DispatchQueue.concurrentPerform(iterations: threads) { t in
        var i = t
        while i < count {
            body(t, i)
            i += threads
        }
    }
}
