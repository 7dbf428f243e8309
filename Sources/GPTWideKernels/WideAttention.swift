// MARK: - The tiled attention's kernels for CPUs with AVX-512
//
// GPTCore's tiled attention (Kernels/FlashAttention.swift, FlashAttentionBackward.swift)
// calls these instead of its AVX2 code when `GEMMKernel.current` is `.avx512`: the tile
// products on a register tile twice as tall and twice as wide, and the softmax rows
// 16 floats at a time (GPTSIMD's SIMDKernels.swift, here instantiated at SIMD16).
import GPTSIMD

extension SIMD16: FloatVector where Scalar == Float {
    @inlinable @inline(__always)
    public static func lanes(_ a: Self, greaterThan b: Self) -> SIMDMask<MaskStorage> { a .> b }
    @inlinable @inline(__always)
    public static func twoToThe(rounded z: Self) -> Self {
        unsafeBitCast((unsafeBitCast(z, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23, to: Self.self)
    }
}

private typealias W = SIMD16<Float>

/// The attention's register tile: 8 rows of c by 32 columns, 16 of the 32 zmm registers.
public enum WideTileGemmTile {
    public static let rows = 8
    public static let columns = 32
}

/// c (M,N) = a (M,K) b (K,N), or c += a b when `accumulate`.
/// a's element (m, k) is `a[m * am + k * ak]` (so either a or a^T can be passed);
/// b is row-major with row stride `ldb`, c with row stride `ldc`.
@inline(never)
public func wideTileGemm(M: Int, N: Int, K: Int, _ a: UnsafePointer<Float>, am: Int, ak: Int,
                         _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>, ldc: Int,
                         accumulate: Bool) {
    W.tileGemm(M: M, N: N, K: K, a, am: am, ak: ak, b, ldb: ldb, c, ldc: ldc, accumulate: accumulate,
               rows: WideTileGemmTile.rows, columns: WideTileGemmTile.columns) { a, b, c in
        tile8x32(K, a, am, ak, b, ldb, c, ldc, accumulate)
    }
}

/// Eight rows by 32 columns: one broadcast of `a` per row and two loads of `b` per step of k.
@inline(__always)
private func tile8x32(_ K: Int, _ a: UnsafePointer<Float>, _ am: Int, _ ak: Int, _ b: UnsafePointer<Float>,
                      _ ldb: Int, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ accumulate: Bool) {
#if arch(x86_64)
    var c00 = W(), c01 = W(), c10 = W(), c11 = W(), c20 = W(), c21 = W(), c30 = W(), c31 = W()
    var c40 = W(), c41 = W(), c50 = W(), c51 = W(), c60 = W(), c61 = W(), c70 = W(), c71 = W()
    var pa = a, pb = b
    for _ in 0..<K {
        let b0 = W.load(pb), b1 = W.load(pb + 16)
        var x = W(repeating: pa[0 * am]); c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
        x = W(repeating: pa[1 * am]); c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
        x = W(repeating: pa[2 * am]); c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
        x = W(repeating: pa[3 * am]); c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
        x = W(repeating: pa[4 * am]); c40 = c40.addingProduct(x, b0); c41 = c41.addingProduct(x, b1)
        x = W(repeating: pa[5 * am]); c50 = c50.addingProduct(x, b0); c51 = c51.addingProduct(x, b1)
        x = W(repeating: pa[6 * am]); c60 = c60.addingProduct(x, b0); c61 = c61.addingProduct(x, b1)
        x = W(repeating: pa[7 * am]); c70 = c70.addingProduct(x, b0); c71 = c71.addingProduct(x, b1)
        pa += ak; pb += ldb
    }
    var p = c
    @inline(__always) func put(_ v0: W, _ v1: W) {
        if accumulate {
            (W.load(p) + v0).store(p); (W.load(p + 16) + v1).store(p + 16)
        } else {
            v0.store(p); v1.store(p + 16)
        }
        p += ldc
    }
    put(c00, c01); put(c10, c11); put(c20, c21); put(c30, c31)
    put(c40, c41); put(c50, c51); put(c60, c61); put(c70, c71)
#else
    fatalError("the AVX-512 attention kernels exist on x86-64 only")
#endif
}

/// FloatVector.onlineSoftmaxTile at 16 floats.
@inline(never)
public func wideOnlineSoftmaxTile(_ s: UnsafeMutablePointer<Float>, lds: Int, rows: Int, width: Int, t0: Int, j0: Int,
                                  scale: Float, max rowMax: UnsafeMutablePointer<Float>,
                                  sum rowSum: UnsafeMutablePointer<Float>, out o: UnsafeMutablePointer<Float>,
                                  ldo: Int, hs: Int) {
    W.onlineSoftmaxTile(s, lds: lds, rows: rows, width: width, t0: t0, j0: j0, scale: scale, max: rowMax,
                        sum: rowSum, out: o, ldo: ldo, hs: hs)
}

/// FloatVector.causalExpTile at 16 floats.
@inline(never)
public func wideCausalExpTile(_ p: UnsafeMutablePointer<Float>, ldp: Int, rows: Int, width: Int, t0: Int, j0: Int,
                              scale: Float, lse: UnsafePointer<Float>) {
    W.causalExpTile(p, ldp: ldp, rows: rows, width: width, t0: t0, j0: j0, scale: scale, lse: lse)
}

/// FloatVector.softmaxGradTile at 16 floats.
@inline(never)
public func wideSoftmaxGradTile(_ d: UnsafeMutablePointer<Float>, _ p: UnsafePointer<Float>,
                                _ mask: UnsafePointer<Float>?, ld: Int, rows: Int, width: Int,
                                D: UnsafePointer<Float>, scale: Float) {
    W.softmaxGradTile(d, p, mask, ld: ld, rows: rows, width: width, D: D, scale: scale)
}

/// GELU forward of inp[start..<end] into out, 16 floats at a time (GPTSIMD's geluForwardRange).
@inline(never)
public func wideGeluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ start: Int, _ end: Int) {
    W.geluForwardRange(out, inp, start, end)
}
