// MARK: - Linear layer through `gemm` (Gemm.swift)

/// out (N,OC) = inp (N,C) @ weight^T + bias.   weight is (OC,C) as nn.Linear; bias (OC) or nil.
public func matmulForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                          _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                          N: Int, C: Int, OC: Int) {
    gemm(M: N, N: OC, K: C, inp, ars: C, acs: 1, weight, brs: 1, bcs: C, out, ldc: OC, accumulate: false)
    if let bias {
        Parallel.forChunks(N, grain: 16) { start, end in
            for r in start..<end {
                let o = out + r * OC
                for i in 0..<OC { o[i] += bias[i] }
            }
        }
    }
}

/// Backward of matmulForward.
/// dinp (N,C) = dout @ weight when `accumulateInput` is false, else +=;
/// dweight (OC,C) += dout^T @ inp; dbias (OC) += column sums of dout.
public func matmulBackward(_ dinp: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>,
                           _ dbias: UnsafeMutablePointer<Float>?, _ dout: UnsafePointer<Float>,
                           _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                           N: Int, C: Int, OC: Int, accumulateInput: Bool = false) {
    gemm(M: N, N: C, K: OC, dout, ars: OC, acs: 1, weight, brs: C, bcs: 1, dinp, ldc: C,
         accumulate: accumulateInput)
    gemm(M: OC, N: C, K: N, dout, ars: 1, acs: OC, inp, brs: C, bcs: 1, dweight, ldc: C, accumulate: true)
    if let dbias {
        // Column sums: parallel over column blocks, rows in order.
        Parallel.forChunks(OC, grain: 64) { start, end in
            for r in 0..<N {
                let d = dout + r * OC
                for i in start..<end { dbias[i] += d[i] }
            }
        }
    }
}
