// MARK: - GELU, the tanh approximation used by GPT-2

private let geluScale: Float = 0.7978845608028654  // sqrt(2/pi)

/// out (N) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
public func geluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, N: Int) {
    Parallel.forChunks(N, grain: 4096) { start, end in
        var i = start
        while i + 8 <= end {
            let x = loadVec(inp + i)
            let u: Vec = geluScale * (x + 0.044715 * x * x * x)
            storeVec(0.5 * x * (1 + fastTanh(u)), out + i)
            i += 8
        }
        while i < end {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + fastTanh(geluScale * (x + 0.044715 * x * x * x)))
            i += 1
        }
    }
}

/// dinp (N) = dout * gelu'(inp). `dinp` may alias `dout` (in place).
public func geluBackward(_ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                         _ dout: UnsafePointer<Float>, N: Int) {
    Parallel.forChunks(N, grain: 4096) { start, end in
        var i = start
        while i + 8 <= end {
            let x = loadVec(inp + i)
            let x2 = x * x
            let th = fastTanh(geluScale * (x + 0.044715 * x2 * x))
            let sech2: Vec = 1 - th * th
            let inner: Vec = geluScale * (1 + 0.134145 * x2)
            let g: Vec = 0.5 * (1 + th) + 0.5 * x * sech2 * inner
            storeVec(g * loadVec(dout + i), dinp + i)
            i += 8
        }
        while i < end {
            let x = inp[i]
            let x2 = x * x
            let th = fastTanh(geluScale * (x + 0.044715 * x2 * x))
            let sech2: Float = 1 - th * th
            let g: Float = 0.5 * (1 + th) + 0.5 * x * sech2 * geluScale * (1 + 0.134145 * x2)
            dinp[i] = g * dout[i]
            i += 1
        }
    }
}
