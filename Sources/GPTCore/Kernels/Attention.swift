import CBLAS

// MARK: - Causal multi-head self-attention, the reference
//
// The obvious version, kept next to the tiled one (FlashAttention.swift) that
// training and sampling run, as the reference the tests compare it with: it
// computes and stores whole (T,T) score matrices, the masked upper triangle too.
//
// q, k, v are read in place from qkv (B,T,3C): head h of q is the column
// slice [h*hs, (h+1)*hs) with row stride 3C, k at +C, v at +2C. Every
// (batch, head) pair is one small GEMM on strided views, so all heads run
// as one batched computation without any per-head module or copy (EX1).

@inline(__always)
private func attnGemm(_ transA: Bool, _ transB: Bool, _ M: Int, _ N: Int, _ K: Int, _ alpha: Float,
                      _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                      _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                Int32(M), Int32(N), Int32(K), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Causal softmax of each row of `att` (rows of length T, row r is position r % T),
/// in place; entries right of the diagonal become 0.
private func causalSoftmaxRows(_ att: UnsafeMutablePointer<Float>, rows: Int, T: Int) {
    Parallel.forChunks(rows, grain: 64) { start, end in
        for r in start..<end {
            let t = r % T
            let row = att + r * T
            let n = t + 1
            var mx = -Float.infinity
            for j in 0..<n { mx = max(mx, row[j]) }
            let mv = Vec(repeating: mx)
            var acc = Vec()
            var j = 0
            while j + 8 <= n {
                let e = fastExp(loadVec(row + j) - mv)
                storeVec(e, row + j)
                acc += e
                j += 8
            }
            var sum = acc.sum()
            while j < n {
                let e = fastExp(row[j] - mx)
                row[j] = e
                sum += e
                j += 1
            }
            let inv = 1 / sum
            for j in 0..<n { row[j] *= inv }
            for j in n..<T { row[j] = 0 }
        }
    }
}

/// out (B,T,C) = softmax(mask(q k^T / sqrt(hs))) v for every batch and head.
/// att (B,NH,T,T) receives the probabilities (cached for backward); when
/// dropoutP > 0, attDrop (B,NH,T,T) receives dropout(att) and is what multiplies v.
public func attentionReferenceForward(_ out: UnsafeMutablePointer<Float>, _ att: UnsafeMutablePointer<Float>,
                             _ attDrop: UnsafeMutablePointer<Float>?, _ qkv: UnsafePointer<Float>,
                             B: Int, T: Int, C: Int, NH: Int, dropoutP: Float = 0, dropoutKey: UInt32 = 0) {
    precondition(C % NH == 0, "n_embd must be divisible by n_head")
    let hs = C / NH, C3 = 3 * C
    let scale = 1 / Float(hs).squareRoot()
    for b in 0..<B {
        for h in 0..<NH {
            let q = qkv + b * T * C3 + h * hs
            attnGemm(false, true, T, T, hs, scale, q, C3, q + C, C3, 0, att + (b * NH + h) * T * T, T)
        }
    }
    causalSoftmaxRows(att, rows: B * NH * T, T: T)
    var probs = UnsafePointer(att)
    if dropoutP > 0, let attDrop {
        dropoutApply(attDrop, att, N: B * NH * T * T, p: dropoutP, key: dropoutKey)
        probs = UnsafePointer(attDrop)
    }
    for b in 0..<B {
        for h in 0..<NH {
            let v = qkv + b * T * C3 + 2 * C + h * hs
            attnGemm(false, false, T, hs, T, 1, probs + (b * NH + h) * T * T, T, v, C3,
                     0, out + b * T * C + h * hs, C)
        }
    }
}

/// Backward of attentionReferenceForward. dqkv (B,T,3C) is written (not accumulated);
/// datt (B,NH,T,T) is scratch.
public func attentionReferenceBackward(_ dqkv: UnsafeMutablePointer<Float>, _ datt: UnsafeMutablePointer<Float>,
                              _ dout: UnsafePointer<Float>, _ qkv: UnsafePointer<Float>,
                              _ att: UnsafePointer<Float>, _ attDrop: UnsafePointer<Float>?,
                              B: Int, T: Int, C: Int, NH: Int, dropoutP: Float = 0, dropoutKey: UInt32 = 0) {
    let hs = C / NH, C3 = 3 * C
    let scale = 1 / Float(hs).squareRoot()
    let useDrop = dropoutP > 0 && attDrop != nil
    let probs = useDrop ? attDrop! : att
    for b in 0..<B {
        for h in 0..<NH {
            let bh = (b * NH + h) * T * T
            let d = dout + b * T * C + h * hs
            let v = qkv + b * T * C3 + 2 * C + h * hs
            // datt = dout v^T ; dv = probs^T dout
            attnGemm(false, true, T, T, hs, 1, d, C, v, C3, 0, datt + bh, T)
            attnGemm(true, false, T, hs, T, 1, probs + bh, T, d, C, 0, dqkv + b * T * C3 + 2 * C + h * hs, C3)
        }
    }
    if useDrop {
        dropoutApply(datt, datt, N: B * NH * T * T, p: dropoutP, key: dropoutKey)
    }
    // Softmax backward, in place: dpre = att * (datt - sum(att * datt)) on the causal part.
    Parallel.forChunks(B * NH * T, grain: 64) { start, end in
        for r in start..<end {
            let t = r % T
            let a = att + r * T
            let d = datt + r * T
            let n = t + 1
            var acc = Vec()
            var j = 0
            while j + 8 <= n { acc += loadVec(a + j) * loadVec(d + j); j += 8 }
            var dot = acc.sum()
            while j < n { dot += a[j] * d[j]; j += 1 }
            for j in 0..<n { d[j] = a[j] * (d[j] - dot) }
            for j in n..<T { d[j] = 0 }
        }
    }
    for b in 0..<B {
        for h in 0..<NH {
            let bh = (b * NH + h) * T * T
            let q = qkv + b * T * C3 + h * hs
            let dq = dqkv + b * T * C3 + h * hs
            // dq = scale dpre k ; dk = scale dpre^T q
            attnGemm(false, false, T, hs, T, scale, datt + bh, T, q + C, C3, 0, dq, C3)
            attnGemm(true, false, T, hs, T, scale, datt + bh, T, q, C3, 0, dq + C, C3)
        }
    }
}

/// attentionReferenceForward for one new position `pos` of one sequence, with its keys and
/// values cached: qkv (3C) is the new position's q, k, v; kcache and vcache
/// (maxT, C) hold positions 0..<pos and receive `pos`; out (C) = softmax(q k^T /
/// sqrt(hs)) v over positions 0...pos for every head; scores (pos + 1) is scratch.
public func attentionCachedReferenceForward(_ out: UnsafeMutablePointer<Float>, _ scores: UnsafeMutablePointer<Float>,
                                   _ qkv: UnsafePointer<Float>, kcache: UnsafeMutablePointer<Float>,
                                   vcache: UnsafeMutablePointer<Float>, pos: Int, C: Int, NH: Int) {
    precondition(C % NH == 0, "n_embd must be divisible by n_head")
    let hs = C / NH
    let scale = 1 / Float(hs).squareRoot()
    (kcache + pos * C).update(from: qkv + C, count: C)
    (vcache + pos * C).update(from: qkv + 2 * C, count: C)
    for h in 0..<NH {
        let q = qkv + h * hs
        var mx = -Float.infinity
        for j in 0...pos {
            let k = kcache + j * C + h * hs
            var s: Float = 0
            for i in 0..<hs { s += q[i] * k[i] }
            scores[j] = s * scale
            mx = max(mx, scores[j])
        }
        var sum: Float = 0
        for j in 0...pos { scores[j] = fastExp(scores[j] - mx); sum += scores[j] }
        let y = out + h * hs
        for i in 0..<hs { y[i] = 0 }
        for j in 0...pos {
            let a = scores[j] / sum
            let v = vcache + j * C + h * hs
            for i in 0..<hs { y[i] += a * v[i] }
        }
    }
}
