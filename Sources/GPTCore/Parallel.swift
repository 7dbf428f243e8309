import CBLAS
import Dispatch
#if os(Linux)
import Glibc
import Synchronization
#endif

/// The one thread knob: threads per rank for the BLAS (OpenBLAS or BLIS) and for our row loops.
///
/// Our kernels run their chunks on one pool of `threads - 1` workers plus the calling
/// thread (`WorkerPool`, on Linux): a step calls a parallel loop a few hundred times, some
/// of them 50 microseconds long, so workers wait for the next loop spinning for a short
/// while (`WorkerPool.spinSeconds`) before they sleep, as OpenMP's do, instead of being
/// woken from sleep for every loop.
public enum Parallel {
    /// Threads used by `forChunks` and by the BLAS. Set with `setThreads`.
    nonisolated(unsafe) public private(set) static var threads: Int = 1

    /// Sets the number of threads for the BLAS and for the element-wise kernels.
    public static func setThreads(_ n: Int) {
        threads = max(1, n)
        swiftgpt_blas_set_threads(Int32(threads))
        #if os(Linux)
        WorkerPool.shared.resize(workers: threads - 1)
        #endif
    }

    /// Runs `body(start, end)` over `0..<count` split into at most `threads`
    /// contiguous chunks of at least `grain` items; inline when one chunk.
    @inline(__always)
    public static func forChunks(_ count: Int, grain: Int = 1, _ body: (Int, Int) -> Void) {
        forIndexedChunks(count, grain: grain) { _, start, end in body(start, end) }
    }

    /// `forChunks` that also passes the chunk's index, `0..<chunkCount(count, grain:)`,
    /// for callers that give each chunk its own scratch.
    @inline(__always)
    public static func forIndexedChunks(_ count: Int, grain: Int = 1, _ body: (Int, Int, Int) -> Void) {
        let chunks = chunkCount(count, grain: grain)
        if chunks <= 1 {
            if count > 0 { body(0, 0, count) }
            return
        }
        let per = (count + chunks - 1) / chunks
        let chunk: (Int) -> Void = { i in
            let start = i * per
            let end = min(count, start + per)
            if start < end { body(i, start, end) }
        }
        #if os(Linux)
        WorkerPool.shared.run(chunks, chunk)
        #else
        DispatchQueue.concurrentPerform(iterations: chunks, execute: chunk)
        #endif
    }

    /// Number of chunks `forChunks(count, grain:)` will use (for per-chunk scratch).
    @inline(__always)
    public static func chunkCount(_ count: Int, grain: Int = 1) -> Int {
        max(1, min(threads, count / max(1, grain)))
    }
}

#if os(Linux)
/// Worker threads that run the chunks of one parallel loop at a time, with the caller.
///
/// A loop is published by bumping `generation` and opening `entry`. A worker that sees it
/// joins (counts itself into `inside`, then checks the loop is still open), takes chunk
/// indices from `next` until none is left, and leaves (counts itself out). The caller takes
/// chunks too; when every chunk has finished (`done`) it closes the loop and waits for
/// `inside` to be 0, so no worker can be in a loop, or hold its closure, after `run`
/// returns. A worker that wakes too late finds the loop closed and does nothing: the
/// caller never waits for a worker that is not running. Between loops a worker spins on
/// `generation` for `spinSeconds`, then sleeps on a condition variable. A loop started
/// while another runs (a nested call, or one from a second thread) runs inline.
/// `resize` must not be called while a loop runs (`Parallel.setThreads` is called between steps).
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool()

    /// How long an idle worker spins before it sleeps: long enough to span the serial gaps
    /// between the kernels of a step, short enough to give the cores back soon after. Not at
    /// all when the GEMMs run in the BLAS: its own threads spin between its calls, and ours
    /// would take their cores.
    static var spinSeconds: Double { GEMMKernel.current == .blas ? 0 : 0.002 }

    private let generation = Atomic<Int>(0)
    /// 1 while the current loop takes workers, 0 once the caller has closed it.
    private let entry = Atomic<Int>(0)
    private let inside = Atomic<Int>(0)
    private let next = Atomic<Int>(0)
    private let done = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    /// Workers with an index below this take part in loops; the others sleep.
    private let inUse = Atomic<Int>(0)
    /// The loop being run; written only while `busy` is held and no worker is inside.
    nonisolated(unsafe) private var body: ((Int) -> Void)?
    nonisolated(unsafe) private var chunks = 0
    private let sleep = SleepLock()
    nonisolated(unsafe) private var started = 0

    /// Uses `workers` workers from the next loop on, starting threads as needed.
    func resize(workers: Int) {
        let seen = generation.load(ordering: .sequentiallyConsistent)
        while started < workers {
            var thread = pthread_t()
            let box = Unmanaged.passRetained(StartBox(pool: self, index: started, seen: seen)).toOpaque()
            let rc = pthread_create(&thread, nil, { raw in
                let start = Unmanaged<StartBox>.fromOpaque(raw!).takeRetainedValue()
                start.pool.work(index: start.index, seen: start.seen)
                return nil
            }, box)
            precondition(rc == 0, "cannot start a worker thread (pthread_create: \(rc))")
            pthread_detach(thread)
            started += 1
        }
        inUse.store(workers, ordering: .sequentiallyConsistent)
    }

    /// Runs `body(i)` for every i in 0..<count on the workers and this thread; returns when all have run.
    func run(_ count: Int, _ body: (Int) -> Void) {
        guard inUse.load(ordering: .relaxed) > 0,
              busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for i in 0..<count { body(i) }  // no workers, a nested loop, or another thread's loop is running
            return
        }
        withoutActuallyEscaping(body) { body in
            self.body = body
            chunks = count
            next.store(0, ordering: .relaxed)
            done.store(0, ordering: .relaxed)
            entry.store(1, ordering: .sequentiallyConsistent)
            generation.add(1, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                sleep.lock(); sleep.broadcast(); sleep.unlock()
            }
            takeChunks(body)
            var spins = 0
            while done.load(ordering: .acquiring) < count {  // chunks other threads took
                spins += 1
                if spins > 4096 { sched_yield() }  // the one running them waits for a core: let it have this one
            }
            entry.store(0, ordering: .sequentiallyConsistent)
            while inside.load(ordering: .sequentiallyConsistent) > 0 {}
            self.body = nil
        }
        busy.store(false, ordering: .releasing)
    }

    private func takeChunks(_ body: (Int) -> Void) {
        while true {
            let i = next.add(1, ordering: .relaxed).oldValue
            if i >= chunks { return }
            body(i)
            done.add(1, ordering: .releasing)
        }
    }

    /// A worker's part of the open loop, if there is one. Not inlined: the worker's copy of
    /// the closure is released when this returns, before the worker counts itself out, so
    /// that the caller's `withoutActuallyEscaping` finds the closure unshared at the end.
    @inline(never)
    private func takePart() {
        guard let body else { return }
        takeChunks(body)
    }

    private func work(index: Int, seen start: Int) {
        var seen = start
        while true {
            // Spin, then sleep, until the next loop is published.
            let spin = WorkerPool.spinSeconds, deadline = monotonicSeconds() + spin
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins & 1023 == 0 { sched_yield() }  // on a busy machine, others get the core
                if spin == 0 || (spins & 1023 == 0 && monotonicSeconds() > deadline) {
                    sleep.lock()
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen { sleep.wait() }
                    sleepers.subtract(1, ordering: .sequentiallyConsistent)
                    sleep.unlock()
                }
            }
            seen = generation.load(ordering: .acquiring)
            guard index < inUse.load(ordering: .relaxed) else { continue }
            inside.add(1, ordering: .sequentiallyConsistent)
            if entry.load(ordering: .sequentiallyConsistent) == 1 { takePart() }
            inside.subtract(1, ordering: .sequentiallyConsistent)
        }
    }

    private final class StartBox {
        let pool: WorkerPool
        let index: Int
        let seen: Int
        init(pool: WorkerPool, index: Int, seen: Int) { self.pool = pool; self.index = index; self.seen = seen }
    }
}

/// The pool's sleeping place: a pthread mutex and condition variable.
private final class SleepLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    init() { pthread_mutex_init(mutex, nil); pthread_cond_init(condition, nil) }
    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    func wait() { pthread_cond_wait(condition, mutex) }
    func broadcast() { pthread_cond_broadcast(condition) }
}

@inline(__always)
private func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}
#endif
