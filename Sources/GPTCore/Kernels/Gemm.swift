import CBLAS
import GPTSupport
import GPTWideKernels
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

// MARK: - Every matrix product of the model's linear layers
//
// `gemm` runs on one of two kernels, chosen once per process (`GEMMKernel.current`):
//   - "blas": cblas_sgemm of the CBLAS the package is built with (OpenBLAS by default);
//   - "avx512": our own, on CPUs with AVX-512: a 12 x 32 register tile of fused
//     multiply-adds (GPTWideKernels, compiled for AVX-512), fed the rows of `a` as they
//     lie in memory and a packed copy of `b`, blocked for the caches, threaded over
//     blocks of rows by `Parallel`. Where the CBLAS runs its AVX2 kernel on an AVX-512 CPU
//     (as Debian's OpenBLAS 0.3.21 does on CPUs newer than it, or where
//     OPENBLAS_CORETYPE=Haswell is set), this one runs the CPU's full vector width.
//
// Every element of the result is one chain of multiply-adds over k in order, per block of
// `kBlock` values of k, so the result does not depend on the thread count (cblas_sgemm's
// may). Products with fewer rows than the tile (12) go to the BLAS on either kernel (one
// row to cblas_sgemv: OpenBLAS 0.3.21's sgemm packs all of b even for one row).
// SWIFTGPT_GEMM=blas|avx512|auto (the default) overrides the choice.

/// Which kernel runs `gemm`.
public enum GEMMKernel: String, CaseIterable, Sendable {
    /// cblas_sgemm of the package's CBLAS.
    case blas
    /// Our AVX-512 kernel.
    case avx512

    /// The CPU flags the AVX-512 kernel needs: the foundation and the CD, BW, DQ and VL
    /// extensions that `-target-cpu skylake-avx512` lets the compiler use.
    public static let avx512Flags: Set<String> = ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]

    /// The environment variable that overrides the choice.
    public static let variable = "SWIFTGPT_GEMM"

    /// The kernel for a CPU with `cpuFlags` under the setting `setting` (nil or "auto": the
    /// fastest available). Throws for an unknown setting or a kernel this CPU cannot run.
    public static func choose(setting: String?, cpuFlags: Set<String>) throws -> GEMMKernel {
        let wide = isX86_64 && cpuFlags.isSuperset(of: avx512Flags)
        switch setting?.lowercased() {
        case nil, "", "auto": return wide ? .avx512 : .blas
        case "blas": return .blas
        case "avx512":
            guard wide else {
                throw GEMMKernelError("\(variable)=avx512, but this CPU lacks "
                    + avx512Flags.subtracting(cpuFlags).sorted().joined(separator: ", ")
                    + (isX86_64 ? "" : " (it is not x86-64)")
                    + "; unset it or set \(variable)=blas")
            }
            return .avx512
        case let other?:
            throw GEMMKernelError("\(variable)=\(other) is not a GEMM kernel; use auto, blas or avx512")
        }
    }

    private static var isX86_64: Bool {
        #if arch(x86_64)
        true
        #else
        false
        #endif
    }

    /// The kernel `gemm` runs. Chosen on first use from SWIFTGPT_GEMM and /proc/cpuinfo;
    /// `gpt` calls `configure()` at start-up so that a bad setting is an error there.
    nonisolated(unsafe) public private(set) static var current: GEMMKernel = {
        (try? choose(setting: getenv(variable).map { String(cString: $0) }, cpuFlags: BLASKernel.cpuFlags())) ?? .blas
    }()

    /// Checks SWIFTGPT_GEMM against this CPU and sets `current`; throws what is wrong.
    public static func configure() throws {
        current = try choose(setting: getenv(variable).map { String(cString: $0) }, cpuFlags: BLASKernel.cpuFlags())
    }

    /// Runs `body` with `kernel` as the current one (benchmarks, tests); the caller checks the CPU.
    public static func with<R>(_ kernel: GEMMKernel, _ body: () throws -> R) rethrows -> R {
        let saved = current
        current = kernel
        defer { current = saved }
        return try body()
    }

    /// Whether this CPU can run `kernel`.
    public static func available(_ kernel: GEMMKernel) -> Bool {
        (try? choose(setting: kernel.rawValue, cpuFlags: BLASKernel.cpuFlags())) != nil
    }

    /// One line for logs and `gpt bench`.
    public var summary: String {
        switch self {
        case .blas: "cblas_sgemm (\(BLASKernel.library), kernel \(BLASKernel.current))"
        case .avx512: "SwiftGPT AVX-512, \(WideGemmTile.rows) x \(WideGemmTile.columns) tile"
        }
    }
}

/// A SWIFTGPT_GEMM setting this CPU cannot follow; the message says what to set.
public struct GEMMKernelError: Error, CustomStringConvertible {
    public let description: String
    init(_ message: String) { description = message }
}

/// c (M,N) = a (M,K) b (K,N), or c += a b when `accumulate`.
/// a's element (i, k) is `a[i * ars + k * acs]` and b's (k, j) is `b[k * brs + j * bcs]`, one
/// of each pair of strides being 1 (a matrix or its transpose, as cblas_sgemm takes them);
/// c is row-major with row stride `ldc`.
public func gemm(M: Int, N: Int, K: Int, _ a: UnsafePointer<Float>, ars: Int, acs: Int,
                 _ b: UnsafePointer<Float>, brs: Int, bcs: Int,
                 _ c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
    precondition(acs == 1 || ars == 1, "gemm: a needs unit stride along rows or columns")
    precondition(bcs == 1 || brs == 1, "gemm: b needs unit stride along rows or columns")
    guard M > 0, N > 0 else { return }
    if K == 0 {
        if !accumulate { for i in 0..<M { (c + i * ldc).update(repeating: 0, count: N) } }
        return
    }
    if M == 1 {  // one row (the sampler's cached step): a matrix-vector product, nothing packed
        if bcs == 1 {
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(K), Int32(N), 1, b, Int32(max(brs, N)), a, Int32(max(acs, 1)),
                        accumulate ? 1 : 0, c, 1)
        } else {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(N), Int32(K), 1, b, Int32(max(bcs, K)), a, Int32(max(acs, 1)),
                        accumulate ? 1 : 0, c, 1)
        }
        return
    }
    // Fewer rows than the tile: packing b would cost about as much as the product.
    switch M < WideGemm.mr ? .blas : GEMMKernel.current {
    case .blas:
        // Row-major as they are, else transposed (a vector, with both strides 1, either way).
        let ta = acs == 1 && (ars >= K || M == 1), tb = bcs == 1 && (brs >= N || K == 1)
        cblas_sgemm(CblasRowMajor, ta ? CblasNoTrans : CblasTrans, tb ? CblasNoTrans : CblasTrans,
                    Int32(M), Int32(N), Int32(K), 1, a, Int32(ta ? max(ars, K) : max(acs, M)),
                    b, Int32(tb ? max(brs, N) : max(bcs, K)), accumulate ? 1 : 0, c, Int32(ldc))
    case .avx512:
        WideGemm.run(M: M, N: N, K: K, a, ars: ars, acs: acs, b, brs: brs, bcs: bcs, c, ldc: ldc,
                     accumulate: accumulate)
    }
}

/// The blocking of the AVX-512 kernel around its register tile.
enum WideGemm {
    static let mr = WideGemmTile.rows, nr = WideGemmTile.columns
    /// Values of k per block: a tile's 32-column panel of b (32 KiB) and its 12 rows of a
    /// (12 KiB) stay in a 48 KiB L1 data cache while the tile is computed.
    static let kBlock = 256
    /// Columns of b packed at a time: kBlock x nBlock floats (512 KiB), within L2.
    static let nBlock = 512
    /// At most this many rows of a per task (a multiple of 12).
    static let mBlock = 240

    static func run(M: Int, N: Int, K: Int, _ a: UnsafePointer<Float>, ars: Int, acs: Int,
                    _ b: UnsafePointer<Float>, brs: Int, bcs: Int,
                    _ c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool) {
        let kc = min(kBlock, K), ncMax = min(roundUp(N, nr), nBlock)
        // Row blocks: at least one per thread, a multiple of the thread count, 12-row aligned.
        let threads = Parallel.threads
        var blocks = max(1, (M + mBlock - 1) / mBlock)
        blocks = min(roundUp(blocks, threads), (M + mr - 1) / mr)
        let mc = roundUp((M + blocks - 1) / blocks, mr)
        let rowBlocks = (M + mc - 1) / mc
        let tasks = Parallel.chunkCount(rowBlocks)
        // Scratch: the packed panel of b, then per task an edge panel of a (12 x kc) and a tile.
        let edgeA = mr * kc, tile = mr * nr
        let scratch = GemmScratch.take(kc * ncMax + tasks * (edgeA + tile))
        defer { GemmScratch.give(scratch) }
        let packed = scratch.pointer
        var jc = 0
        while jc < N {
            let nc = min(ncMax, N - jc)
            var pc = 0
            while pc < K {
                let kb = min(kc, K - pc)
                let add = accumulate || pc > 0
                packB(packed, b + pc * brs + jc * bcs, brs: brs, bcs: bcs, K: kb, N: nc)
                Parallel.forIndexedChunks(rowBlocks) { task, first, end in
                    let edge = packed + kc * ncMax + task * (edgeA + tile), temp = edge + edgeA
                    for block in first..<end {
                        let i0 = block * mc, rows = min(mc, M - i0)
                        var ir = 0
                        while ir < rows {
                            let mrows = min(mr, rows - ir)
                            var ap = a + (i0 + ir) * ars + pc * acs, pr = ars, pk = acs
                            if mrows < mr {  // the last rows: a zero-padded copy
                                packEdgeA(edge, ap, ars: ars, acs: acs, rows: mrows, K: kb)
                                ap = UnsafePointer(edge); pr = 1; pk = mr
                            }
                            var jr = 0
                            while jr < nc {
                                let ncols = min(nr, nc - jr)
                                let bp = UnsafePointer(packed + jr * kb)
                                let cp = c + (i0 + ir) * ldc + jc + jr
                                if mrows == mr && ncols == nr {
                                    wideGemmMicroKernel(kb, ap, pr, pk, bp, cp, ldc, add)
                                } else {
                                    wideGemmMicroKernel(kb, ap, pr, pk, bp, temp, nr, false)
                                    for r in 0..<mrows {
                                        let src = temp + r * nr, dst = cp + r * ldc
                                        if add { for j in 0..<ncols { dst[j] += src[j] } }
                                        else { dst.update(from: src, count: ncols) }
                                    }
                                }
                                jr += nr
                            }
                            ir += mr
                        }
                    }
                }
                pc += kb
            }
            jc += nc
        }
    }

    /// b (K, N), strides (brs, bcs), into 32-column panels: panel p holds, for each k, columns
    /// 32p ..< 32p + 32 (zero past N), at `packed + p * 32 K`.
    static func packB(_ packed: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, brs: Int, bcs: Int,
                      K: Int, N: Int) {
        let panels = (N + nr - 1) / nr
        Parallel.forChunks(panels, grain: 4) { first, end in
            for p in first..<end {
                let dst = packed + p * nr * K, j0 = p * nr, cols = min(nr, N - j0)
                if cols < nr { dst.update(repeating: 0, count: nr * K) }
                if bcs == 1 && cols == nr {  // rows of b are contiguous: copy 32-wide strips
                    for k in 0..<K {
                        let s = b + k * brs + j0, d = dst + k * nr
                        storeVec(loadVec(s), d); storeVec(loadVec(s + 8), d + 8)
                        storeVec(loadVec(s + 16), d + 16); storeVec(loadVec(s + 24), d + 24)
                    }
                } else if bcs == 1 {
                    for k in 0..<K { (dst + k * nr).update(from: b + k * brs + j0, count: cols) }
                } else {       // columns of b are contiguous (b is a transposed matrix)
                    for j in 0..<cols {
                        let src = b + (j0 + j) * bcs
                        for k in 0..<K { dst[k * nr + j] = src[k] }
                    }
                }
            }
        }
    }

    /// The last `rows` (< 12) rows of a, K values each, as a zero-padded panel: (r, k) at r + 12 k.
    static func packEdgeA(_ edge: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, ars: Int, acs: Int,
                          rows: Int, K: Int) {
        edge.update(repeating: 0, count: mr * K)
        for r in 0..<rows {
            for k in 0..<K { edge[r + k * mr] = a[r * ars + k * acs] }
        }
    }

    @inline(__always)
    static func roundUp(_ x: Int, _ m: Int) -> Int { (x + m - 1) / m * m }
}

/// Reused scratch for `gemm` (a few hundred KiB per call), 64-byte aligned. Calls on
/// several threads at once each get their own buffer.
enum GemmScratch {
    struct Buffer {
        let pointer: UnsafeMutablePointer<Float>
        let capacity: Int
    }

    nonisolated(unsafe) private static var free: [Buffer] = []
    private static let lock = ConditionLock()

    static func take(_ count: Int) -> Buffer {
        lock.lock()
        defer { lock.unlock() }
        if let i = free.firstIndex(where: { $0.capacity >= count }) { return free.remove(at: i) }
        if !free.isEmpty { free.removeLast().pointer.deallocate() }  // too small: replace it
        let raw = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
        return Buffer(pointer: raw.bindMemory(to: Float.self, capacity: count), capacity: count)
    }

    static func give(_ buffer: Buffer) {
        lock.lock()
        free.append(buffer)
        lock.unlock()
    }
}
