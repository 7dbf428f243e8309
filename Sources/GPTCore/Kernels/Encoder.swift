// MARK: - Token + position embedding

/// out (B,T,C) = wte[inp[b,t]] + wpe[t0 + t].   inp is (B,T) token ids, wte (V,C), wpe (maxT,C);
/// t0 = `firstPosition` is the position of the first token (a cached sampler's next position).
/// Without `wpe` (rotary positions) out is the token embedding alone.
public func encoderForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Int32>,
                           _ wte: UnsafePointer<Float>, _ wpe: UnsafePointer<Float>?,
                           B: Int, T: Int, C: Int, firstPosition t0: Int = 0) {
    Parallel.forChunks(B * T, grain: 64) { start, end in
        for bt in start..<end {
            let o = out + bt * C
            let e = wte + Int(inp[bt]) * C
            guard let wpe else { o.update(from: e, count: C); continue }
            let p = wpe + (t0 + bt % T) * C
            for i in 0..<C { o[i] = e[i] + p[i] }
        }
    }
}

/// dwte[inp[b,t]] += dout[b,t]; dwpe[t] += dout[b,t] (when there is a position table).
/// dout is (B,T,C). Serial over rows: the same token may occur many times (a scatter-add).
public func encoderBackward(_ dwte: UnsafeMutablePointer<Float>, _ dwpe: UnsafeMutablePointer<Float>?,
                            _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Int32>,
                            B: Int, T: Int, C: Int) {
    // Position gradients are disjoint per t: parallel over t, summing over b.
    if let dwpe {
        Parallel.forChunks(T, grain: 8) { start, end in
            for t in start..<end {
                let dp = dwpe + t * C
                for b in 0..<B {
                    let d = dout + (b * T + t) * C
                    for i in 0..<C { dp[i] += d[i] }
                }
            }
        }
    }
    for bt in 0..<(B * T) {
        let d = dout + bt * C
        let de = dwte + Int(inp[bt]) * C
        for i in 0..<C { de[i] += d[i] }
    }
}
