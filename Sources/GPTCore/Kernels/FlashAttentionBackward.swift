import GPTSIMD
import GPTWideKernels

// MARK: - Backward of the tiled causal attention
//
// Per (batch, head), for each query tile and each key tile up to the diagonal:
// P = exp(scale q k^T - lse) recomputed, Pd = dropout(P), dv += Pd^T dout,
// dP = dropout(dout v^T), dS = P (dP - D) with D = rowsum(dout * out) (which
// equals rowsum(P dP), dropout or not), dq += scale dS k, dk += scale dS^T q.
// One task owns a whole head, so its dq, dk and dv columns have one writer.

/// What one head's backward reads and writes (rows of q, k, v, dq, dk, dv have stride 3C).
private struct HeadBackward {
    let q: UnsafePointer<Float>, dout: UnsafePointer<Float>, out: UnsafePointer<Float>, lse: UnsafePointer<Float>
    let dq: UnsafeMutablePointer<Float>
    let T: Int, hs: Int, C: Int, scale: Float
    let dropoutP: Float, dropoutKey: UInt32, dropIndex0: Int
    /// Whether the AVX-512 kernels run.
    let wide: Bool
}

/// Backward of attentionForward. dqkv (B,T,3C) is written (not accumulated); out (B,T,C)
/// and lse (B,NH,T) are what the forward returned for dout (B,T,C)'s qkv.
public func attentionBackward(_ dqkv: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
                              _ qkv: UnsafePointer<Float>, _ out: UnsafePointer<Float>, _ lse: UnsafePointer<Float>,
                              B: Int, T: Int, C: Int, NH: Int, dropoutP: Float = 0, dropoutKey: UInt32 = 0) {
    precondition(C % NH == 0, "n_embd must be divisible by n_head")
    let hs = C / NH, C3 = 3 * C, wide = GEMMKernel.current == .avx512
    Parallel.forChunks(B * NH) { start, end in
        let sc = AttentionScratch(hs: hs, T: T)
        defer { sc.free() }
        for bh in start..<end {
            let b = bh / NH, h = bh % NH
            let rows = b * T * C + h * hs
            let g = HeadBackward(q: qkv + b * T * C3 + h * hs, dout: dout + rows, out: out + rows, lse: lse + bh * T,
                                 dq: dqkv + b * T * C3 + h * hs, T: T, hs: hs, C: C,
                                 scale: 1 / Float(hs).squareRoot(), dropoutP: dropoutP, dropoutKey: dropoutKey,
                                 dropIndex0: bh * T * T, wide: wide)
            headBackward(g, sc)
        }
    }
}

/// Backward of one head: D of every row, then every tile's share of dq, dk and dv, the first
/// share of each row written, the others added.
private func headBackward(_ g: HeadBackward, _ sc: AttentionScratch) {
    let T = g.T, hs = g.hs, C = g.C, C3 = 3 * C
    for t in 0..<T {
        let dy = g.dout + t * C, y = g.out + t * C
        var acc = Vec(), i = 0
        while i + 8 <= hs { acc = acc.addingProduct(loadVec(dy + i), loadVec(y + i)); i += 8 }
        var dot = acc.sum()
        while i < hs { dot += dy[i] * y[i]; i += 1 }
        sc.rows[t] = dot
    }
    transposeRows(sc.kt, g.q + C, n: T, cols: hs, ld: C3)
    transposeRows(sc.vt, g.q + 2 * C, n: T, cols: hs, ld: C3)
    for i0 in stride(from: 0, to: T, by: attentionQueryTile) {
        let mq = min(attentionQueryTile, T - i0)
        for j0 in stride(from: 0, to: i0 + mq, by: attentionKeyTile) {
            headBackwardTile(g, sc, i0: i0, mq: mq, j0: j0, nk: min(attentionKeyTile, i0 + mq - j0))
        }
    }
}

/// The share of query rows [i0, i0 + mq) and key columns [j0, j0 + nk) in dq, dk and dv.
@inline(__always)
private func headBackwardTile(_ g: HeadBackward, _ sc: AttentionScratch, i0: Int, mq: Int, j0: Int, nk: Int) {
    let T = g.T, hs = g.hs, C = g.C, C3 = 3 * C, Bk = attentionKeyTile
    let q = g.q + i0 * C3, k = g.q + C + j0 * C3, dy = g.dout + i0 * C
    // P, recomputed from the forward's log-sum-exp.
    tileGemm(M: mq, N: nk, K: hs, q, am: C3, ak: 1, sc.kt + j0, ldb: T, sc.p, ldc: Bk, accumulate: false, wide: g.wide)
    if g.wide {
        wideCausalExpTile(sc.p, ldp: Bk, rows: mq, width: nk, t0: i0, j0: j0, scale: g.scale, lse: g.lse + i0)
    } else {
        Vec.causalExpTile(sc.p, ldp: Bk, rows: mq, width: nk, t0: i0, j0: j0, scale: g.scale, lse: g.lse + i0)
    }
    // dv += dropout(P)^T dout; the tile's keep factors are drawn once (into sc.s) for P and dP.
    var pd = UnsafePointer(sc.p)
    let drop = g.dropoutP > 0
    if drop {
        for r in 0..<mq {
            let m = sc.s + r * Bk
            dropoutMask(m, N: nk, p: g.dropoutP, key: g.dropoutKey, index0: g.dropIndex0 + (i0 + r) * T + j0)
            multiplyRow(sc.dp + r * Bk, sc.p + r * Bk, m, n: nk)
        }
        pd = UnsafePointer(sc.dp)
    }
    // Key rows [j0, j0 + seen) of dk and dv have shares from earlier query tiles; the rest get their first.
    let seen = min(nk, max(0, i0 - j0))
    func keyRows(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>) {
        tileGemm(M: seen, N: hs, K: mq, a, am: 1, ak: Bk, b, ldb: ldb, c, ldc: C3, accumulate: true, wide: g.wide)
        tileGemm(M: nk - seen, N: hs, K: mq, a + seen, am: 1, ak: Bk, b, ldb: ldb, c + seen * C3, ldc: C3,
                 accumulate: false, wide: g.wide)
    }
    keyRows(pd, dy, ldb: C, g.dq + 2 * C + j0 * C3)
    // dS = P (dropout(dout v^T) - D), scaled.
    tileGemm(M: mq, N: nk, K: hs, dy, am: C, ak: 1, sc.vt + j0, ldb: T, sc.dp, ldc: Bk, accumulate: false, wide: g.wide)
    let mask = drop ? UnsafePointer(sc.s) : nil, D = UnsafePointer(sc.rows + i0)
    if g.wide {
        wideSoftmaxGradTile(sc.dp, sc.p, mask, ld: Bk, rows: mq, width: nk, D: D, scale: g.scale)
    } else {
        Vec.softmaxGradTile(sc.dp, sc.p, mask, ld: Bk, rows: mq, width: nk, D: D, scale: g.scale)
    }
    // dq += dS k ; dk += dS^T q
    tileGemm(M: mq, N: hs, K: nk, sc.dp, am: Bk, ak: 1, k, ldb: C3, g.dq + i0 * C3, ldc: C3, accumulate: j0 > 0,
             wide: g.wide)
    keyRows(sc.dp, q, ldb: C3, g.dq + C + j0 * C3)
}

/// out[c] = a[c] * b[c] for c in 0..<n.
@inline(__always)
private func multiplyRow(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                         n: Int) {
    var c = 0
    while c + 8 <= n { storeVec(loadVec(a + c) * loadVec(b + c), out + c); c += 8 }
    while c < n { out[c] = a[c] * b[c]; c += 1 }
}
