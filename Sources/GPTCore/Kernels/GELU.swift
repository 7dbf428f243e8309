import GPTSIMD
import GPTWideKernels

// MARK: - GELU, the tanh approximation used by GPT-2

private let geluScale = Vec.geluScale  // sqrt(2/pi)

/// out (N) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): one definition for both widths
/// (GPTSIMD's `geluForwardRange`), 16 floats at a time where the AVX-512 kernels run.
public func geluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, N: Int) {
    let wide = GEMMKernel.current == .avx512
    Parallel.forChunks(N, grain: 4096) { start, end in
        if wide { wideGeluForward(out, inp, start, end) } else { Vec.geluForwardRange(out, inp, start, end) }
    }
}

/// dinp (N) = dout * gelu'(inp), from the forward's input `inp` and output `out` (both kept
/// for backward anyway). With a = 1 + tanh(u) = 2 out / x, gelu'(x) = a / 2 + x a (2 - a) u' / 2,
/// since 1 - tanh^2 = a (2 - a): no tanh to recompute (a = 1 where x = 0). `dinp` may alias `dout`.
public func geluBackward(_ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                         _ out: UnsafePointer<Float>, _ dout: UnsafePointer<Float>, N: Int) {
    Parallel.forChunks(N, grain: 4096) { start, end in
        var i = start
        while i + 8 <= end {
            let x = loadVec(inp + i)
            let a = (2 * loadVec(out + i) / x).replacing(with: 1, where: x .== 0)
            let inner: Vec = geluScale * (1 + 0.134145 * x * x)
            let g: Vec = 0.5 * a + 0.5 * x * (a * (2 - a)) * inner
            storeVec(g * loadVec(dout + i), dinp + i)
            i += 8
        }
        while i < end {
            let x = inp[i]
            let a: Float = x == 0 ? 1 : 2 * out[i] / x
            let g: Float = 0.5 * a + 0.5 * x * (a * (2 - a)) * (geluScale * (1 + 0.134145 * x * x))
            dinp[i] = g * dout[i]
            i += 1
        }
    }
}
