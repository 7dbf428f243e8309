// MARK: - LayerNorm (eps 1e-5, as PyTorch)

public let layerNormEps: Float = 1e-5

@inline(__always)
func rowSum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = Vec(), acc1 = Vec()
    var i = 0
    while i + 16 <= n {
        acc0 += loadVec(x + i)
        acc1 += loadVec(x + i + 8)
        i += 16
    }
    var s = (acc0 + acc1).sum()
    while i < n { s += x[i]; i += 1 }
    return s
}

/// out (N,C) = (inp - mean) * rstd * weight + bias, per row; caches mean (N) and rstd (N).
/// `bias` may be nil (LayerNorm without bias).
public func layerNormForward(_ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>,
                             _ rstd: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                             _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                             N: Int, C: Int) {
    Parallel.forChunks(N, grain: 32) { start, end in
        for r in start..<end {
            let x = inp + r * C
            let m = rowSum(x, C) / Float(C)
            var acc0 = Vec(), acc1 = Vec()
            let mv = Vec(repeating: m)
            var i = 0
            while i + 16 <= C {
                let d0 = loadVec(x + i) - mv, d1 = loadVec(x + i + 8) - mv
                acc0 += d0 * d0
                acc1 += d1 * d1
                i += 16
            }
            var v = (acc0 + acc1).sum()
            while i < C { let d = x[i] - m; v += d * d; i += 1 }
            v /= Float(C)
            let s = 1 / (v + layerNormEps).squareRoot()
            let o = out + r * C
            if let bias {
                for i in 0..<C { o[i] = (x[i] - m) * s * weight[i] + bias[i] }
            } else {
                for i in 0..<C { o[i] = (x[i] - m) * s * weight[i] }
            }
            mean[r] = m
            rstd[r] = s
        }
    }
}

/// dinp (N,C) += LayerNorm backward; dweight (C) += sum dout*norm; dbias (C) += sum dout.
public func layerNormBackward(_ dinp: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>,
                              _ dbias: UnsafeMutablePointer<Float>?, _ dout: UnsafePointer<Float>,
                              _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                              _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
                              N: Int, C: Int) {
    let chunks = Parallel.chunkCount(N, grain: 32)
    // Per-chunk partial sums for dweight and dbias, reduced at the end.
    let partial = UnsafeMutablePointer<Float>.allocate(capacity: chunks * 2 * C)
    partial.initialize(repeating: 0, count: chunks * 2 * C)
    defer { partial.deallocate() }
    let per = (N + chunks - 1) / chunks
    Parallel.forChunks(N, grain: 32) { start, end in
        let chunk = start / per
        let pw = partial + chunk * 2 * C
        let pb = pw + C
        for r in start..<end {
            let x = inp + r * C
            let d = dout + r * C
            let di = dinp + r * C
            let m = mean[r], s = rstd[r]
            // dnorm = dout * weight; two row means.
            var a0: Float = 0, a1: Float = 0
            for i in 0..<C {
                let n = (x[i] - m) * s
                let dn = d[i] * weight[i]
                a0 += dn
                a1 += dn * n
                pw[i] += d[i] * n
                pb[i] += d[i]
            }
            let meanDn = a0 / Float(C), meanDnN = a1 / Float(C)
            for i in 0..<C {
                let n = (x[i] - m) * s
                let dn = d[i] * weight[i]
                di[i] += (dn - meanDn - n * meanDnN) * s
            }
        }
    }
    for c in 0..<chunks {
        let pw = partial + c * 2 * C
        for i in 0..<C { dweight[i] += pw[i] }
        if let dbias {
            let pb = pw + C
            for i in 0..<C { dbias[i] += pb[i] }
        }
    }
}
