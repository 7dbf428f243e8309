import GPTSIMD
import GPTWideKernels

// MARK: - The attention tiles' matrix products, in registers
//
// The tiled attention multiplies small blocks (a tile of 32 queries by up to 256
// keys, head_size deep) thousands of times a step. At that size cblas_sgemm's
// packing and dispatch cost more than they save (measured: docs/PERFORMANCE-HISTORY.md),
// so the tiles go through a register-blocked kernel, of one of two sizes:
//   - AVX2 (the package's baseline, `-target-cpu haswell`, so any x86-64 server):
//     4 rows x 16 columns of c in eight SIMD8 accumulators, one broadcast of `a` and
//     two loads of `b` per step of k, within the 16 vector registers;
//   - AVX-512, where `GEMMKernel.current` is `.avx512`: 8 rows x 32 columns in sixteen
//     SIMD16 accumulators of the 32 (GPTWideKernels' wideTileGemm), about twice as fast.
// The tiling around the register tile and its edges are one generic definition
// (FloatVector.tileGemm in GPTWideKernels).

/// c (M,N) = a (M,K) b (K,N), or c += a b when `accumulate`; on the AVX-512 kernel when `wide`.
/// a's element (m, k) is `a[m * am + k * ak]` (so either a or a^T can be passed);
/// b is row-major with row stride `ldb`, c with row stride `ldc`.
@inline(__always)
func tileGemm(M: Int, N: Int, K: Int, _ a: UnsafePointer<Float>, am: Int, ak: Int,
              _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>, ldc: Int,
              accumulate: Bool, wide: Bool) {
    if wide {
        wideTileGemm(M: M, N: N, K: K, a, am: am, ak: ak, b, ldb: ldb, c, ldc: ldc, accumulate: accumulate)
        return
    }
    Vec.tileGemm(M: M, N: N, K: K, a, am: am, ak: ak, b, ldb: ldb, c, ldc: ldc, accumulate: accumulate,
                 rows: 4, columns: 16) { a, b, c in
        tile4x16(K, a, am, ak, b, ldb, c, ldc, accumulate)
    }
}

/// Four rows by sixteen columns: the AVX2 kernel's steady state.
@inline(__always)
private func tile4x16(_ K: Int, _ a: UnsafePointer<Float>, _ am: Int, _ ak: Int, _ b: UnsafePointer<Float>,
                      _ ldb: Int, _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ accumulate: Bool) {
    var c00 = Vec(), c01 = Vec(), c10 = Vec(), c11 = Vec()
    var c20 = Vec(), c21 = Vec(), c30 = Vec(), c31 = Vec()
    var pa = a, pb = b
    for _ in 0..<K {
        let b0 = loadVec(pb), b1 = loadVec(pb + 8)
        let a0 = Vec(repeating: pa[0]), a1 = Vec(repeating: pa[am])
        c00 = c00.addingProduct(a0, b0); c01 = c01.addingProduct(a0, b1)
        c10 = c10.addingProduct(a1, b0); c11 = c11.addingProduct(a1, b1)
        let a2 = Vec(repeating: pa[2 * am]), a3 = Vec(repeating: pa[3 * am])
        c20 = c20.addingProduct(a2, b0); c21 = c21.addingProduct(a2, b1)
        c30 = c30.addingProduct(a3, b0); c31 = c31.addingProduct(a3, b1)
        pa += ak; pb += ldb
    }
    store2(c00, c01, c, accumulate)
    store2(c10, c11, c + ldc, accumulate)
    store2(c20, c21, c + 2 * ldc, accumulate)
    store2(c30, c31, c + 3 * ldc, accumulate)
}

@inline(__always)
private func store2(_ v0: Vec, _ v1: Vec, _ c: UnsafeMutablePointer<Float>, _ accumulate: Bool) {
    if accumulate {
        storeVec(loadVec(c) + v0, c); storeVec(loadVec(c + 8) + v1, c + 8)
    } else {
        storeVec(v0, c); storeVec(v1, c + 8)
    }
}
