import GPTSIMD
import GPTWideKernels
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

// MARK: - Causal self-attention, tiled (the flash-attention scheme on CPU)
//
// The kernel training and sampling run. For each (batch, head) and each tile of
// queries, it walks the key tiles up to the diagonal only (the masked upper
// triangle is never computed), keeps a running row maximum and sum (online
// softmax) and accumulates the output in place. Nothing of size T x T is
// stored: forward keeps the log-sum-exp of each row, and backward recomputes
// each tile's probabilities from it. Attention dropout draws the same
// counter-based mask as the reference (element (b, h, t, j) has mask index
// ((b NH + h) T + t) T + j), so recomputing it in backward is exact.
// The reference, attentionReferenceForward/Backward, computes the same thing
// with whole (T,T) matrices; the tests compare the two.
//
// Layout as the reference: q, k, v are read in place from qkv (B,T,3C), head h
// of q is columns [h hs, (h+1) hs) with row stride 3C, k at +C, v at +2C.
//
// The tile products and the softmax rows run 8 floats wide (AVX2) or, where
// `GEMMKernel.current` is `.avx512`, 16 wide (GPTWideKernels); the rows are one generic
// definition (GPTSIMD's SIMDKernels.swift) for both.

/// Query rows and key columns of one tile (measured on the baby GPT's shapes; docs/PERFORMANCE-HISTORY.md).
let attentionQueryTile = 32, attentionKeyTile = 256

/// One thread's scratch: k and v of one head transposed (hs,T), row statistics
/// (T, or the running max and sum of a query tile) and three (queryTile, keyTile) tiles.
struct AttentionScratch {
    let kt, vt, rows, s, p, dp: UnsafeMutablePointer<Float>
    private let base: UnsafeMutablePointer<Float>

    init(hs: Int, T: Int) {
        let tile = attentionQueryTile * attentionKeyTile
        let rowCount = max(T, 2 * attentionQueryTile)
        base = .allocate(capacity: 2 * hs * T + rowCount + 3 * tile)
        kt = base; vt = base + hs * T; rows = vt + hs * T; s = rows + rowCount; p = s + tile; dp = p + tile
    }

    func free() { base.deallocate() }
}

/// dst (cols, n) = src (n, cols) transposed; src has row stride `ld`, dst row stride `n`.
/// Eight rows at a time, so that every store is a whole vector.
@inline(__always)
func transposeRows(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, n: Int, cols: Int, ld: Int) {
    var t = 0
    while t + 8 <= n {
        let r = src + t * ld
        for d in 0..<cols {
            storeVec(Vec(r[d], r[ld + d], r[2 * ld + d], r[3 * ld + d], r[4 * ld + d], r[5 * ld + d],
                         r[6 * ld + d], r[7 * ld + d]), dst + d * n + t)
        }
        t += 8
    }
    for t in t..<n {
        let row = src + t * ld
        for d in 0..<cols { dst[d * n + t] = row[d] }
    }
}

/// What one head's forward reads and writes; positions of queries start at `q0`, keys at 0.
private struct HeadForward {
    let q: UnsafePointer<Float>, ldq: Int       // (nq, hs)
    let kt: UnsafePointer<Float>, ldkt: Int     // (hs, keys) transposed keys
    let v: UnsafePointer<Float>, ldv: Int       // (keys, hs)
    let out: UnsafeMutablePointer<Float>, ldo: Int
    let lse: UnsafeMutablePointer<Float>?       // (nq) or nil
    let nq: Int, q0: Int, hs: Int, scale: Float
    /// The dropout mask index of (query row 0, key 0), and of the next query row.
    let dropIndex0: Int, dropRowStride: Int
    /// Whether the AVX-512 kernels run.
    let wide: Bool
}

/// Forward of one head over query rows [i0, i0 + mq): online softmax over the key tiles
/// up to the diagonal; `max` and `sum` (mq) are scratch.
@inline(__always)
private func headForwardTile(_ f: HeadForward, i0: Int, mq: Int, s: UnsafeMutablePointer<Float>,
                             max rowMax: UnsafeMutablePointer<Float>, sum rowSum: UnsafeMutablePointer<Float>,
                             dropoutP: Float, dropoutKey: UInt32) {
    let Bk = attentionKeyTile, hs = f.hs
    let o = f.out + i0 * f.ldo
    for r in 0..<mq { rowMax[r] = -.infinity; rowSum[r] = 0 }
    let keys = f.q0 + i0 + mq
    for j0 in stride(from: 0, to: keys, by: Bk) {
        let nk = min(Bk, keys - j0)
        tileGemm(M: mq, N: nk, K: hs, f.q + i0 * f.ldq, am: f.ldq, ak: 1, f.kt + j0, ldb: f.ldkt, s, ldc: Bk,
                 accumulate: false, wide: f.wide)
        let t0 = f.q0 + i0
        if f.wide {
            wideOnlineSoftmaxTile(s, lds: Bk, rows: mq, width: nk, t0: t0, j0: j0, scale: f.scale, max: rowMax,
                                  sum: rowSum, out: o, ldo: f.ldo, hs: hs)
        } else {
            Vec.onlineSoftmaxTile(s, lds: Bk, rows: mq, width: nk, t0: t0, j0: j0, scale: f.scale, max: rowMax,
                                  sum: rowSum, out: o, ldo: f.ldo, hs: hs)
        }
        if dropoutP > 0 {
            for r in 0..<mq {
                let row = s + r * Bk
                dropoutRow(row, row, N: Vec.causalColumns(query: t0 + r, firstKey: j0, width: nk), p: dropoutP,
                           key: dropoutKey, index0: f.dropIndex0 + (i0 + r) * f.dropRowStride + j0)
            }
        }
        // The first key tile writes the output rows, the others add to them.
        tileGemm(M: mq, N: hs, K: nk, s, am: Bk, ak: 1, f.v + j0 * f.ldv, ldb: f.ldv, o, ldc: f.ldo,
                 accumulate: j0 > 0, wide: f.wide)
    }
    for r in 0..<mq {
        let inv = 1 / rowSum[r], y = o + r * f.ldo
        for i in 0..<hs { y[i] *= inv }
        f.lse?[i0 + r] = rowMax[r] + log(rowSum[r])
    }
}

/// Forward of one head over all its query rows, a query tile at a time.
private func headForward(_ f: HeadForward, _ sc: AttentionScratch, dropoutP: Float, dropoutKey: UInt32) {
    for i0 in stride(from: 0, to: f.nq, by: attentionQueryTile) {
        headForwardTile(f, i0: i0, mq: min(attentionQueryTile, f.nq - i0), s: sc.s, max: sc.rows,
                        sum: sc.rows + attentionQueryTile, dropoutP: dropoutP, dropoutKey: dropoutKey)
    }
}

/// out (B,T,C) = softmax(mask(q k^T / sqrt(hs))) v for every batch and head, with dropout
/// (rate dropoutP, mask dropoutKey) on the probabilities; lse (B,NH,T) receives each row's
/// log-sum-exp of the scaled scores, which is all backward needs.
public func attentionForward(_ out: UnsafeMutablePointer<Float>, _ lse: UnsafeMutablePointer<Float>,
                             _ qkv: UnsafePointer<Float>, B: Int, T: Int, C: Int, NH: Int,
                             dropoutP: Float = 0, dropoutKey: UInt32 = 0) {
    precondition(C % NH == 0, "n_embd must be divisible by n_head")
    let hs = C / NH, C3 = 3 * C
    let scale = 1 / Float(hs).squareRoot(), wide = GEMMKernel.current == .avx512
    Parallel.forChunks(B * NH) { start, end in
        let sc = AttentionScratch(hs: hs, T: T)
        defer { sc.free() }
        for bh in start..<end {
            let b = bh / NH, h = bh % NH
            let q = qkv + b * T * C3 + h * hs
            transposeRows(sc.kt, q + C, n: T, cols: hs, ld: C3)
            let f = HeadForward(q: q, ldq: C3, kt: sc.kt, ldkt: T, v: q + 2 * C, ldv: C3,
                                out: out + b * T * C + h * hs, ldo: C, lse: lse + bh * T, nq: T, q0: 0, hs: hs,
                                scale: scale, dropIndex0: bh * T * T, dropRowStride: T, wide: wide)
            headForward(f, sc, dropoutP: dropoutP, dropoutKey: dropoutKey)
        }
    }
}

/// attentionForward for one new position `pos` of one sequence, with its keys and values
/// cached: qkv (3C) is the new position's q, k, v; kcache and vcache (maxT, C) hold
/// positions 0..<pos and receive `pos`; out (C) = softmax(q k^T / sqrt(hs)) v over
/// positions 0...pos for every head. The same tiled kernel, one query row.
public func attentionCachedForward(_ out: UnsafeMutablePointer<Float>, _ qkv: UnsafePointer<Float>,
                                   kcache: UnsafeMutablePointer<Float>, vcache: UnsafeMutablePointer<Float>,
                                   pos: Int, C: Int, NH: Int) {
    precondition(C % NH == 0, "n_embd must be divisible by n_head")
    let hs = C / NH, keys = pos + 1
    (kcache + pos * C).update(from: qkv + C, count: C)
    (vcache + pos * C).update(from: qkv + 2 * C, count: C)
    let sc = AttentionScratch(hs: hs, T: keys), wide = GEMMKernel.current == .avx512
    defer { sc.free() }
    for h in 0..<NH {
        transposeRows(sc.kt, kcache + h * hs, n: keys, cols: hs, ld: C)
        let f = HeadForward(q: qkv + h * hs, ldq: 3 * C, kt: sc.kt, ldkt: keys, v: vcache + h * hs, ldv: C,
                            out: out + h * hs, ldo: C, lse: nil, nq: 1, q0: pos, hs: hs,
                            scale: 1 / Float(hs).squareRoot(), dropIndex0: 0, dropRowStride: 0, wide: wide)
        headForward(f, sc, dropoutP: 0, dropoutKey: 0)
    }
}
