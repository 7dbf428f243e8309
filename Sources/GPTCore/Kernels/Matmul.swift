import CBLAS

// MARK: - Linear layer through cblas_sgemm

/// out (N,OC) = inp (N,C) @ weight^T + bias.   weight is (OC,C) as nn.Linear; bias (OC) or nil.
public func matmulForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                          _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                          N: Int, C: Int, OC: Int) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(N), Int32(OC), Int32(C),
                1, inp, Int32(C), weight, Int32(C), 0, out, Int32(OC))
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
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(N), Int32(C), Int32(OC),
                1, dout, Int32(OC), weight, Int32(C), accumulateInput ? 1 : 0, dinp, Int32(C))
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(OC), Int32(C), Int32(N),
                1, dout, Int32(OC), inp, Int32(C), 1, dweight, Int32(C))
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
