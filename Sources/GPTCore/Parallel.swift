import CBLAS
import Dispatch

/// The one thread knob: threads per rank for the BLAS (OpenBLAS or BLIS) and for our row loops.
public enum Parallel {
    /// Threads used by `forChunks` and by the BLAS. Set with `setThreads`.
    nonisolated(unsafe) public private(set) static var threads: Int = 1

    /// Sets the number of threads for the BLAS and for the element-wise kernels.
    public static func setThreads(_ n: Int) {
        threads = max(1, n)
        swiftgpt_blas_set_threads(Int32(threads))
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
        let maxChunks = chunkCount(count, grain: grain)
        if maxChunks <= 1 {
            if count > 0 { body(0, 0, count) }
            return
        }
        let per = (count + maxChunks - 1) / maxChunks
        DispatchQueue.concurrentPerform(iterations: maxChunks) { i in
            let start = i * per
            let end = min(count, start + per)
            if start < end { body(i, start, end) }
        }
    }

    /// Number of chunks `forChunks(count, grain:)` will use (for per-chunk scratch).
    @inline(__always)
    public static func chunkCount(_ count: Int, grain: Int = 1) -> Int {
        max(1, min(threads, count / max(1, grain)))
    }
}
