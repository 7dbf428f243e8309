import XCTest
import GPTCore

/// Finite-difference checks of the architecture options' kernels (RMSNorm, QK-norm,
/// RoPE, SwiGLU), plus each forward against the formula written out in Double.
final class OptionKernelGradientTests: XCTestCase {
    override func setUp() { Parallel.setThreads(2) }

    func testRMSNorm() {
        let N = 6, C = 20
        let inp = Buf(N * C, seed: 1, scale: 2, offset: 0.5), w = Buf(C, seed: 2, scale: 0.3, offset: 1)
        let out = Buf(zeros: N * C), rstd = Buf(zeros: N), r = Buf(N * C, seed: 4)
        let dinp = Buf(N * C, seed: 5), dw = Buf(zeros: C)
        func loss() -> Double {
            rmsNormForward(out.p, rstd.p, inp.p, w.p, N: N, C: C)
            return weightedSum(out.p, r.p, out.n)
        }
        _ = loss()
        for row in 0..<N {
            var ms = 0.0
            for i in 0..<C { ms += Double(inp.p[row * C + i]) * Double(inp.p[row * C + i]) }
            let s = 1 / (ms / Double(C) + 1e-5).squareRoot()
            for i in 0..<C {
                let ref = Double(inp.p[row * C + i]) * s * Double(w.p[i])
                XCTAssertEqual(Double(out.p[row * C + i]), ref, accuracy: 1e-5 * max(1, abs(ref)))
            }
        }
        let before = dinp.array
        rmsNormBackward(dinp.p, dw.p, r.p, inp.p, w.p, rstd.p, N: N, C: C)
        let added = zip(dinp.array, before).map { $0 - $1 }  // backward accumulates into dinp
        checkGradient("rmsnorm.inp", param: inp.p, count: inp.n, analytic: added, loss: loss)
        checkGradient("rmsnorm.weight", param: w.p, count: C, analytic: dw.array, loss: loss)
    }

    func testQKNorm() {
        let N = 5, C = 12, NH = 3, hs = C / NH
        let qkv = Buf(N * 3 * C, seed: 1, scale: 1.5), qw = Buf(hs, seed: 2, scale: 0.3, offset: 1)
        let kw = Buf(hs, seed: 3, scale: 0.3, offset: 1), out = Buf(zeros: N * 3 * C), rstd = Buf(zeros: N * 2 * NH)
        let r = Buf(N * 3 * C, seed: 4), dqw = Buf(zeros: hs), dkw = Buf(zeros: hs)
        func loss() -> Double {
            qkNormForward(out.p, rstd.p, qkv.p, qWeight: qw.p, kWeight: kw.p, N: N, C: C, NH: NH)
            return weightedSum(out.p, r.p, out.n)
        }
        _ = loss()
        // v is copied unchanged; every head of q and k has unit mean square before the scale
        for row in 0..<N {
            for i in (2 * C)..<(3 * C) { XCTAssertEqual(out.p[row * 3 * C + i], qkv.p[row * 3 * C + i]) }
        }
        let d = Buf(zeros: qkv.n)
        d.p.update(from: r.p, count: r.n)
        qkNormBackward(d.p, dqWeight: dqw.p, dkWeight: dkw.p, qkv.p, qWeight: qw.p, kWeight: kw.p, rstd.p,
                       N: N, C: C, NH: NH)
        checkGradient("qknorm.qkv", param: qkv.p, count: qkv.n, analytic: d.array, samples: 80, loss: loss)
        checkGradient("qknorm.q_weight", param: qw.p, count: hs, analytic: dqw.array, loss: loss)
        checkGradient("qknorm.k_weight", param: kw.p, count: hs, analytic: dkw.array, loss: loss)
    }

    func testRoPE() {
        let B = 2, T = 5, C = 12, NH = 2, hs = C / NH
        let table = ropeTable(maxT: T + 3, headSize: hs, base: 100)
        let qkv = Buf(B * T * 3 * C, seed: 1), out = Buf(zeros: qkv.n), r = Buf(qkv.n, seed: 2)
        func loss() -> Double {
            out.p.update(from: qkv.p, count: qkv.n)
            ropeApply(out.p, table, B: B, T: T, C: C, NH: NH, firstPosition: 3)
            return weightedSum(out.p, r.p, out.n)
        }
        _ = loss()
        // Against the formula: pair i of a head at position t turns by t * 100^(-2i/hs); v is untouched.
        for bt in 0..<(B * T) {
            let t = Double(3 + bt % T)
            for h in 0..<(2 * NH) {
                for i in 0..<(hs / 2) {
                    let o = bt * 3 * C + h * hs + 2 * i
                    let angle = t * pow(100, -Double(2 * i) / Double(hs))
                    let a = Double(qkv.p[o]), b = Double(qkv.p[o + 1])
                    XCTAssertEqual(Double(out.p[o]), a * cos(angle) - b * sin(angle), accuracy: 1e-5)
                    XCTAssertEqual(Double(out.p[o + 1]), a * sin(angle) + b * cos(angle), accuracy: 1e-5)
                }
            }
            for i in (2 * C)..<(3 * C) { XCTAssertEqual(out.p[bt * 3 * C + i], qkv.p[bt * 3 * C + i]) }
        }
        let d = Buf(zeros: qkv.n)
        d.p.update(from: r.p, count: r.n)
        ropeApply(d.p, table, B: B, T: T, C: C, NH: NH, firstPosition: 3, inverse: true)
        checkGradient("rope.qkv", param: qkv.p, count: qkv.n, analytic: d.array, samples: 80, loss: loss)
    }

    func testRoPEScoresDependOnlyOnRelativePosition() {
        // q at position m and k at position n score the same as at m + 5 and n + 5.
        let C = 8, NH = 1
        let table = ropeTable(maxT: 16, headSize: C, base: 10_000)
        let src = Buf(3 * C, seed: 7)
        func score(_ m: Int, _ n: Int) -> Double {
            let q = Buf(zeros: 3 * C), k = Buf(zeros: 3 * C)
            q.p.update(from: src.p, count: 3 * C); k.p.update(from: src.p, count: 3 * C)
            ropeApply(q.p, table, B: 1, T: 1, C: C, NH: NH, firstPosition: m)
            ropeApply(k.p, table, B: 1, T: 1, C: C, NH: NH, firstPosition: n)
            return (0..<C).reduce(0.0) { $0 + Double(q.p[$1]) * Double(k.p[C + $1]) }
        }
        XCTAssertEqual(score(4, 1), score(9, 6), accuracy: 1e-5)
        XCTAssertNotEqual(score(4, 1), score(4, 2))
    }

    func testSwiGLU() {
        let N = 4, H = 11
        let inp = Buf(N * 2 * H, seed: 1, scale: 2), out = Buf(zeros: N * H), r = Buf(N * H, seed: 2)
        let dinp = Buf(zeros: inp.n)
        func loss() -> Double {
            swigluForward(out.p, inp.p, N: N, H: H)
            return weightedSum(out.p, r.p, out.n)
        }
        _ = loss()
        for row in 0..<N {
            for i in 0..<H {
                let a = Double(inp.p[row * 2 * H + i]), b = Double(inp.p[row * 2 * H + H + i])
                let ref = a / (1 + exp(-a)) * b
                XCTAssertEqual(Double(out.p[row * H + i]), ref, accuracy: 1e-5 * max(1, abs(ref)))
            }
        }
        swigluBackward(dinp.p, inp.p, r.p, N: N, H: H)
        checkGradient("swiglu.inp", param: inp.p, count: inp.n, analytic: dinp.array, samples: 88, eps: 1e-3, loss: loss)
    }
}
