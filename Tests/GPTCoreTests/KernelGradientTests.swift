import XCTest
import GPTCore

/// Finite-difference checks of every layer's backward, at small shapes.
final class KernelGradientTests: XCTestCase {
    override func setUp() { Parallel.setThreads(2) }

    func testEncoder() {
        let B = 2, T = 3, C = 4, V = 5
        var inp: [Int32] = [0, 3, 3, 4, 1, 3]
        let wte = Buf(V * C, seed: 1), wpe = Buf(T * C, seed: 2), out = Buf(zeros: B * T * C), r = Buf(B * T * C, seed: 3)
        let dwte = Buf(zeros: V * C), dwpe = Buf(zeros: T * C)
        func loss() -> Double {
            encoderForward(out.p, &inp, wte.p, wpe.p, B: B, T: T, C: C)
            return weightedSum(out.p, r.p, out.n)
        }
        _ = loss()
        encoderBackward(dwte.p, dwpe.p, r.p, &inp, B: B, T: T, C: C)
        checkGradient("encoder.wte", param: wte.p, count: wte.n, analytic: dwte.array, loss: loss)
        checkGradient("encoder.wpe", param: wpe.p, count: wpe.n, analytic: dwpe.array, loss: loss)
    }

    func testLayerNorm() {
        for withBias in [true, false] {
            let N = 6, C = 20
            let inp = Buf(N * C, seed: 1, scale: 2, offset: 0.5), w = Buf(C, seed: 2, scale: 0.3, offset: 1), b = Buf(C, seed: 3)
            let out = Buf(zeros: N * C), mean = Buf(zeros: N), rstd = Buf(zeros: N), r = Buf(N * C, seed: 4)
            let dinp = Buf(zeros: N * C), dw = Buf(zeros: C), db = Buf(zeros: C)
            let bias: UnsafeMutablePointer<Float>? = withBias ? b.p : nil
            func loss() -> Double {
                layerNormForward(out.p, mean.p, rstd.p, inp.p, w.p, bias, N: N, C: C)
                return weightedSum(out.p, r.p, out.n)
            }
            _ = loss()
            layerNormBackward(dinp.p, dw.p, withBias ? db.p : nil, r.p, inp.p, w.p, mean.p, rstd.p, N: N, C: C)
            checkGradient("layernorm.inp", param: inp.p, count: inp.n, analytic: dinp.array, loss: loss)
            checkGradient("layernorm.weight", param: w.p, count: C, analytic: dw.array, loss: loss)
            if withBias { checkGradient("layernorm.bias", param: b.p, count: C, analytic: db.array, loss: loss) }
        }
    }

    func testMatmul() {
        let N = 5, C = 7, OC = 6
        let inp = Buf(N * C, seed: 1), w = Buf(OC * C, seed: 2), b = Buf(OC, seed: 3)
        let out = Buf(zeros: N * OC), r = Buf(N * OC, seed: 4)
        let dinp = Buf(N * C, seed: 9), dw = Buf(zeros: OC * C), db = Buf(zeros: OC)
        func loss() -> Double {
            matmulForward(out.p, inp.p, w.p, b.p, N: N, C: C, OC: OC)
            return weightedSum(out.p, r.p, out.n)
        }
        _ = loss()
        matmulBackward(dinp.p, dw.p, db.p, r.p, inp.p, w.p, N: N, C: C, OC: OC)
        checkGradient("matmul.inp", param: inp.p, count: inp.n, analytic: dinp.array, loss: loss)
        checkGradient("matmul.weight", param: w.p, count: w.n, analytic: dw.array, loss: loss)
        checkGradient("matmul.bias", param: b.p, count: b.n, analytic: db.array, loss: loss)
        // accumulateInput adds to what is there
        let before = dinp.array
        matmulBackward(dinp.p, dw.p, db.p, r.p, inp.p, w.p, N: N, C: C, OC: OC, accumulateInput: true)
        for i in 0..<dinp.n { XCTAssertEqual(dinp.p[i], 2 * before[i], accuracy: 1e-5) }
    }

    func testReferenceAttention() {
        for dropout: Float in [0, 0.3] {
            let B = 2, T = 5, C = 8, NH = 2
            let qkv = Buf(B * T * 3 * C, seed: 1), out = Buf(zeros: B * T * C)
            let att = Buf(zeros: B * NH * T * T), attDrop = Buf(zeros: B * NH * T * T)
            let r = Buf(B * T * C, seed: 2), dqkv = Buf(zeros: qkv.n), datt = Buf(zeros: att.n)
            let key = dropoutKey(seed: 7, site: 1)
            func loss() -> Double {
                attentionReferenceForward(out.p, att.p, attDrop.p, qkv.p, B: B, T: T, C: C, NH: NH, dropoutP: dropout, dropoutKey: key)
                return weightedSum(out.p, r.p, out.n)
            }
            _ = loss()
            // causal: probabilities right of the diagonal are exactly 0, rows sum to 1
            for row in 0..<(B * NH * T) {
                let t = row % T
                var s: Float = 0
                for j in 0..<T {
                    if j > t { XCTAssertEqual(att.p[row * T + j], 0) }
                    s += att.p[row * T + j]
                }
                XCTAssertEqual(s, 1, accuracy: 1e-5)
            }
            attentionReferenceBackward(dqkv.p, datt.p, r.p, qkv.p, att.p, attDrop.p, B: B, T: T, C: C, NH: NH,
                              dropoutP: dropout, dropoutKey: key)
            checkGradient("reference attention.qkv(p=\(dropout))", param: qkv.p, count: qkv.n, analytic: dqkv.array,
                          samples: 120, loss: loss)
        }
    }

    func testGELU() {
        let N = 64
        let inp = Buf(N, seed: 1, scale: 3), out = Buf(zeros: N), r = Buf(N, seed: 2), dinp = Buf(zeros: N)
        func loss() -> Double { geluForward(out.p, inp.p, N: N); return weightedSum(out.p, r.p, N) }
        _ = loss()
        geluBackward(dinp.p, inp.p, out.p, r.p, N: N)
        checkGradient("gelu", param: inp.p, count: N, analytic: dinp.array, eps: 1e-3, loss: loss)
        // forward against the libm formula
        _ = loss()
        for i in 0..<N {
            let x = Double(inp.p[i])
            let ref = 0.5 * x * (1 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)))
            XCTAssertEqual(Double(out.p[i]), ref, accuracy: 1e-6 * max(1, abs(ref)))
        }
    }

    /// Backward reads tanh back from the forward's output (a = 2 out / x): against the derivative
    /// in Double with libm's tanh, at 0, near 0, in the tails and on a grid, vector lanes and tail.
    func testGELUBackwardFromForwardOutputMatchesTanhFormula() {
        var xs: [Float] = [0, 1e-30, -1e-30, 1e-6, -1e-6, 1e-3, -1e-3, 3, -3, 5.5, -5.5, 10, -10, 20, -20, 60, -60]
        xs += (0..<103).map { Float($0) * 0.17 - 8.5 }
        let N = xs.count
        let inp = Buf(zeros: N), out = Buf(zeros: N), dout = Buf(N, seed: 4), dinp = Buf(zeros: N)
        for i in 0..<N { inp.p[i] = xs[i] }
        geluForward(out.p, inp.p, N: N)
        geluBackward(dinp.p, inp.p, out.p, dout.p, N: N)
        for i in 0..<N {
            let x = Double(xs[i]), k = 0.7978845608028654
            let th = tanh(k * (x + 0.044715 * x * x * x))
            let d = 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * k * (1 + 0.134145 * x * x)
            let ref = d * Double(dout.p[i])
            XCTAssertEqual(Double(dinp.p[i]), ref, accuracy: 2e-6 * max(1, abs(ref)), "x = \(x)")
        }
    }

    func testCrossEntropy() {
        let N = 6, V = 9
        let logits = Buf(N * V, seed: 1, scale: 2), losses = Buf(zeros: N), dlogits = Buf(zeros: N * V)
        var targets: [Int32] = [3, -1, 0, 8, -1, 5]
        func loss() -> Double {
            let (s, c) = crossEntropyForward(losses.p, logits.p, &targets, N: N, V: V)
            return s / Double(c)
        }
        let l0 = loss()
        crossEntropyBackward(dlogits.p, logits.p, &targets, N: N, V: V, dloss: 1 / 4)
        checkGradient("cross_entropy.logits", param: logits.p, count: logits.n, analytic: dlogits.array,
                      samples: 100, eps: 1e-3, loss: loss)
        // ignored rows have zero gradient; loss against a Double reference
        for j in 0..<V { XCTAssertEqual(dlogits.p[1 * V + j], 0); XCTAssertEqual(dlogits.p[4 * V + j], 0) }
        var ref = 0.0
        for r in 0..<N where targets[r] >= 0 {
            let row = (0..<V).map { Double(logits.p[r * V + $0]) }
            let m = row.max()!
            ref += log(row.map { exp($0 - m) }.reduce(0, +)) + m - row[Int(targets[r])]
        }
        XCTAssertEqual(l0, ref / 4, accuracy: 1e-5)
    }

    func testDropoutMaskIsDeterministicAndScaled() {
        let N = 100_003
        let inp = Buf(N, seed: 1), out = Buf(zeros: N), again = Buf(zeros: N)
        let key = dropoutKey(seed: 42, site: 3)
        dropoutApply(out.p, inp.p, N: N, p: 0.25, key: key)
        Parallel.setThreads(1)
        dropoutApply(again.p, inp.p, N: N, p: 0.25, key: key)
        var dropped = 0
        for i in 0..<N {
            XCTAssertEqual(out.p[i], again.p[i])  // independent of thread count
            if out.p[i] == 0 { dropped += 1 } else { XCTAssertEqual(out.p[i], inp.p[i] / 0.75, accuracy: 1e-6) }
        }
        XCTAssertEqual(Double(dropped) / Double(N), 0.25, accuracy: 0.01)
        // another key gives another mask
        dropoutApply(again.p, inp.p, N: N, p: 0.25, key: dropoutKey(seed: 43, site: 3))
        var differ = 0
        for i in 0..<N where (out.p[i] == 0) != (again.p[i] == 0) { differ += 1 }
        XCTAssertGreaterThan(differ, N / 5)
    }

    func testFastExpAndTanh() {
        var x: Float = -80
        var worst: Float = 0
        while x < 80 {
            let e = fastExp(x), ref = expf(x)
            worst = max(worst, abs(e - ref) / ref)
            XCTAssertEqual(fastTanh(x / 10), tanhf(x / 10), accuracy: 3e-7)
            x += 0.01237
        }
        XCTAssertLessThan(worst, 4e-7)
        XCTAssertEqual(fastExp(-1000), 0, accuracy: 1e-37)
        XCTAssertEqual(fastTanh(50), 1)
        XCTAssertEqual(fastTanh(-50), -1)
    }
}
