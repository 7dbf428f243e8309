// MARK: - The GEMM micro-kernel for CPUs with AVX-512
//
// This module is compiled for AVX-512 (Package.swift: `-target-cpu skylake-avx512` on
// x86-64), so nothing in it may run on a CPU without it: GPTCore calls it only after
// `CPUKernels` has found the AVX-512 foundation, CD, BW, DQ and VL flags, and the module
// keeps no globals (whose initialisers could run earlier). Everything else, packing,
// blocking and threads, is GPTCore's `gemm` (Kernels/Gemm.swift), compiled for the baseline.

/// The register tile: 12 rows of c by 32 columns, 24 of the 32 zmm registers.
public enum WideGemmTile {
    public static let rows = 12
    public static let columns = 32
}

private typealias W = SIMD16<Float>

@inline(__always) private func load(_ p: UnsafePointer<Float>) -> W {
    UnsafeRawPointer(p).loadUnaligned(as: W.self)
}

@inline(__always) private func store(_ v: W, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: W.self)
}

/// c (12, 32) = a b, or c += a b when `accumulate`; c has row stride `ldc`.
/// a's element (r, k) is `a[r * ars + k * acs]`, so rows of a row-major matrix, columns
/// of one, or a packed panel can be passed as they are; `b` is a packed panel: for each
/// k, the 32 columns' elements (32 K floats). Each element of a b is one chain of fused
/// multiply-adds in order of k, added to c at the end when `accumulate`.
@inline(never)
public func wideGemmMicroKernel(_ K: Int, _ a: UnsafePointer<Float>, _ ars: Int, _ acs: Int,
                                _ b: UnsafePointer<Float>,
                                _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ accumulate: Bool) {
#if arch(x86_64)
    var c00 = W(), c01 = W(), c10 = W(), c11 = W(), c20 = W(), c21 = W(), c30 = W(), c31 = W()
    var c40 = W(), c41 = W(), c50 = W(), c51 = W(), c60 = W(), c61 = W(), c70 = W(), c71 = W()
    var c80 = W(), c81 = W(), c90 = W(), c91 = W(), ca0 = W(), ca1 = W(), cb0 = W(), cb1 = W()
    var pa = a, pb = b
    for _ in 0..<K {
        let b0 = load(pb), b1 = load(pb + 16)
        var x = W(repeating: pa[0 * ars]); c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
        x = W(repeating: pa[1 * ars]); c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
        x = W(repeating: pa[2 * ars]); c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
        x = W(repeating: pa[3 * ars]); c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
        x = W(repeating: pa[4 * ars]); c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1)
        x = W(repeating: pa[5 * ars]); c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1)
        x = W(repeating: pa[6 * ars]); c60 = c60.addingProduct(x, b0); c61 = c61.addingProduct(x, b1)
        x = W(repeating: pa[7 * ars]); c70 = c70.addingProduct(x, b0); c71 = c71.addingProduct(x, b1)
        x = W(repeating: pa[8 * ars]); c80 = c80.addingProduct(x, b0); c81 = c81.addingProduct(x, b1)
        x = W(repeating: pa[9 * ars]); c90 = c90.addingProduct(x, b0); c91 = c91.addingProduct(x, b1)
        x = W(repeating: pa[10 * ars]); ca0 = ca0.addingProduct(x, b0); ca1 = ca1.addingProduct(x, b1)
        x = W(repeating: pa[11 * ars]); cb0 = cb0.addingProduct(x, b0); cb1 = cb1.addingProduct(x, b1)
        pa += acs; pb += 32
    }
    var p = c
    @inline(__always) func put(_ v0: W, _ v1: W) {
        if accumulate {
            store(load(p) + v0, p); store(load(p + 16) + v1, p + 16)
        } else {
            store(v0, p); store(v1, p + 16)
        }
        p += ldc
    }
    put(c00, c01); put(c10, c11); put(c20, c21); put(c30, c31); put(c40, c41); put(c50, c51)
    put(c60, c61); put(c70, c71); put(c80, c81); put(c90, c91); put(ca0, ca1); put(cb0, cb1)
#else
    fatalError("the AVX-512 GEMM kernel exists on x86-64 only")
#endif
}
