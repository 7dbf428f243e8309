// MARK: - RMSNorm (Zhang & Sennrich 2019), eps as LayerNorm's
//
// y = x / sqrt(mean(x^2) + eps) * weight: no mean subtraction, no bias. The
// same row kernels serve the blocks' norms (rows of C) and QK-norm (one row per
// head of q and of k, hs wide).

@inline(__always)
func rowSumSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = Vec(), acc1 = Vec()
    var i = 0
    while i + 16 <= n {
        let a = loadVec(x + i), b = loadVec(x + i + 8)
        acc0 += a * a
        acc1 += b * b
        i += 16
    }
    var s = (acc0 + acc1).sum()
    while i < n { s += x[i] * x[i]; i += 1 }
    return s
}

/// One row: out (n) = x * rstd * weight; returns rstd = 1 / sqrt(mean(x^2) + eps).
@inline(__always)
func rmsNormRow(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                _ n: Int) -> Float {
    let s = 1 / (rowSumSquares(x, n) / Float(n) + layerNormEps).squareRoot()
    for i in 0..<n { out[i] = x[i] * s * weight[i] }
    return s
}

/// One row's backward: dx (n) += rstd * (dn - xhat * mean(dn * xhat)) with dn = dout * weight,
/// xhat = x * rstd; dweight (n) += dout * xhat. `dx` may alias `dout` when `accumulate` is false.
@inline(__always)
func rmsNormRowBackward(_ dx: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>,
                        _ dout: UnsafePointer<Float>, _ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                        rstd s: Float, _ n: Int, accumulate: Bool) {
    var dot: Float = 0
    for i in 0..<n {
        let xhat = x[i] * s
        dot += dout[i] * weight[i] * xhat
        dweight[i] += dout[i] * xhat
    }
    let m = dot / Float(n)
    for i in 0..<n {
        let g = s * (dout[i] * weight[i] - x[i] * s * m)
        dx[i] = accumulate ? dx[i] + g : g
    }
}

/// out (N,C) = inp * rstd * weight, per row; caches rstd (N).
public func rmsNormForward(_ out: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
                           _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, N: Int, C: Int) {
    Parallel.forChunks(N, grain: 32) { start, end in
        for r in start..<end { rstd[r] = rmsNormRow(out + r * C, inp + r * C, weight, C) }
    }
}

/// dinp (N,C) += RMSNorm backward; dweight (C) += sum over rows of dout * inp * rstd.
public func rmsNormBackward(_ dinp: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>,
                            _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                            _ rstd: UnsafePointer<Float>, N: Int, C: Int) {
    withChunkPartials(N, width: C, into: dweight) { start, end, pw in
        for r in start..<end {
            rmsNormRowBackward(dinp + r * C, pw, dout + r * C, inp + r * C, weight, rstd: rstd[r], C, accumulate: true)
        }
    }
}

/// Runs `body(start, end, partial)` over the chunks of `0..<N` with a zeroed `width`-float
/// partial sum per chunk, then adds the partials into `total` (width) in chunk order.
func withChunkPartials(_ N: Int, width: Int, into total: UnsafeMutablePointer<Float>,
                       _ body: (Int, Int, UnsafeMutablePointer<Float>) -> Void) {
    let chunks = Parallel.chunkCount(N, grain: 32)
    let partial = UnsafeMutablePointer<Float>.allocate(capacity: chunks * width)
    partial.initialize(repeating: 0, count: chunks * width)
    defer { partial.deallocate() }
    let per = (N + chunks - 1) / chunks
    Parallel.forChunks(N, grain: 32) { start, end in body(start, end, partial + (start / per) * width) }
    for c in 0..<chunks {
        let pw = partial + c * width
        for i in 0..<width { total[i] += pw[i] }
    }
}

// MARK: - QK-norm: RMSNorm on every head of q and of k

/// out (N,3C) = qkv (N,3C) with each head (hs wide) of q normalised with qWeight (hs)
/// and each head of k with kWeight (hs); v is copied. rstd (N,2,NH) is cached.
public func qkNormForward(_ out: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
                          _ qkv: UnsafePointer<Float>, qWeight: UnsafePointer<Float>, kWeight: UnsafePointer<Float>,
                          N: Int, C: Int, NH: Int) {
    let hs = C / NH, C3 = 3 * C
    Parallel.forChunks(N, grain: 16) { start, end in
        for r in start..<end {
            let x = qkv + r * C3, o = out + r * C3, s = rstd + r * 2 * NH
            for h in 0..<(2 * NH) {
                s[h] = rmsNormRow(o + h * hs, x + h * hs, h < NH ? qWeight : kWeight, hs)
            }
            (o + 2 * C).update(from: x + 2 * C, count: C)
        }
    }
}

/// Backward of qkNormForward, in place: dqkv (N,3C) holds the gradient of `out` on entry and
/// of `qkv` on return (the v part passes through); dqWeight, dkWeight (hs) accumulate.
public func qkNormBackward(_ dqkv: UnsafeMutablePointer<Float>, dqWeight: UnsafeMutablePointer<Float>,
                           dkWeight: UnsafeMutablePointer<Float>, _ qkv: UnsafePointer<Float>,
                           qWeight: UnsafePointer<Float>, kWeight: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
                           N: Int, C: Int, NH: Int) {
    let hs = C / NH, C3 = 3 * C
    let dw = UnsafeMutablePointer<Float>.allocate(capacity: 2 * hs)
    dw.initialize(repeating: 0, count: 2 * hs)
    defer { dw.deallocate() }
    withChunkPartials(N, width: 2 * hs, into: dw) { start, end, pw in
        for r in start..<end {
            let d = dqkv + r * C3, x = qkv + r * C3, s = rstd + r * 2 * NH
            for h in 0..<(2 * NH) {
                let q = h < NH
                rmsNormRowBackward(d + h * hs, q ? pw : pw + hs, d + h * hs, x + h * hs, q ? qWeight : kWeight,
                                   rstd: s[h], hs, accumulate: false)
            }
        }
    }
    for i in 0..<hs { dqWeight[i] += dw[i]; dkWeight[i] += dw[hs + i] }
}
