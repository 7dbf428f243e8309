import XCTest
import GPTCore

/// The tiled attention against the reference (whole T x T matrices): every output and
/// gradient, on shapes that cross tiles, end mid-tile, or have one position; with and
/// without dropout; plus finite differences and the KV-cache step. Each on both kernel
/// levels: AVX2 (`GEMMKernel.blas`) and, where the CPU has it, AVX-512.
final class AttentionTests: XCTestCase {
    /// (B, T, C, NH): one position, less than a query tile, exactly one, query tiles with a ragged
    /// end, exactly one key tile, key tiles with a ragged end (the running max and sum carried
    /// across key tiles); head sizes 4 to 64.
    let shapes = [(2, 1, 8, 2), (2, 5, 8, 2), (1, 32, 64, 4), (2, 77, 64, 2), (1, 200, 64, 1), (1, 256, 32, 2),
                  (1, 300, 32, 2), (1, 530, 16, 1)]

    /// Largest |a - b| over n entries, relative to the largest |b| (at least 1).
    private func maxDiff(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var d: Float = 0, m: Float = 1
        for i in 0..<n { d = max(d, abs(a[i] - b[i])); m = max(m, abs(b[i])) }
        return d / m
    }

    /// Runs `body` with `kernel` as the current one; skips where this CPU cannot run it.
    private func on(_ kernel: GEMMKernel, _ body: () -> Void) throws {
        guard GEMMKernel.available(kernel) else {
            throw XCTSkip("this CPU lacks AVX-512 (\(GEMMKernel.avx512Flags.sorted().joined(separator: ", ")))")
        }
        GEMMKernel.with(kernel, body)
    }

    func testTiledMatchesReferenceAVX2() throws { try on(.blas) { tiledMatchesReference("AVX2") } }
    func testTiledMatchesReferenceAVX512() throws { try on(.avx512) { tiledMatchesReference("AVX-512") } }
    func testTiledGradientFiniteDifferencesAVX2() throws { try on(.blas, tiledGradientFiniteDifferences) }
    func testTiledGradientFiniteDifferencesAVX512() throws { try on(.avx512, tiledGradientFiniteDifferences) }
    func testCachedStepMatchesReferenceAVX2() throws { try on(.blas, cachedStepMatchesReference) }
    func testCachedStepMatchesReferenceAVX512() throws { try on(.avx512, cachedStepMatchesReference) }

    private func tiledMatchesReference(_ level: String) {
        for (B, T, C, NH) in shapes {
            for p: Float in [0, 0.3] {
                let qkv = Buf(B * T * 3 * C, seed: UInt64(T), scale: 2), dout = Buf(B * T * C, seed: 5)
                let key = dropoutKey(seed: 11, site: 4)
                let refOut = Buf(zeros: B * T * C), att = Buf(zeros: B * NH * T * T), attDrop = Buf(zeros: att.n)
                let refD = Buf(zeros: qkv.n), datt = Buf(zeros: att.n)
                attentionReferenceForward(refOut.p, att.p, attDrop.p, qkv.p, B: B, T: T, C: C, NH: NH,
                                          dropoutP: p, dropoutKey: key)
                attentionReferenceBackward(refD.p, datt.p, dout.p, qkv.p, att.p, attDrop.p, B: B, T: T, C: C, NH: NH,
                                           dropoutP: p, dropoutKey: key)
                let out = Buf(B * T * C, seed: 9), lse = Buf(B * NH * T, seed: 9), d = Buf(qkv.n, seed: 9)
                attentionForward(out.p, lse.p, qkv.p, B: B, T: T, C: C, NH: NH, dropoutP: p, dropoutKey: key)
                attentionBackward(d.p, dout.p, qkv.p, out.p, lse.p, B: B, T: T, C: C, NH: NH,
                                  dropoutP: p, dropoutKey: key)
                let name = "\(level) B\(B) T\(T) C\(C) NH\(NH) p\(p)"
                let dOut = maxDiff(out.p, refOut.p, out.n)
                let parts = (0..<3).map { part in
                    var worst: Float = 0, m: Float = 1
                    for row in 0..<(B * T) {
                        for i in 0..<C {
                            let j = row * 3 * C + part * C + i
                            worst = max(worst, abs(d.p[j] - refD.p[j])); m = max(m, abs(refD.p[j]))
                        }
                    }
                    return worst / m
                }
                print(String(format: "attention %@: out %.1e  dq %.1e  dk %.1e  dv %.1e", name, dOut,
                             parts[0], parts[1], parts[2]))
                XCTAssertLessThan(dOut, 2e-5, "\(name): out")
                for (i, part) in ["dq", "dk", "dv"].enumerated() {
                    XCTAssertLessThan(parts[i], 2e-5, "\(name): \(part)")
                }
                // The log-sum-exp is of the scaled scores: exp(score - lse) over a row sums to 1.
                let hs = C / NH, b = B - 1, h = NH - 1, t = T - 1
                let q = qkv.p + b * T * 3 * C + t * 3 * C + h * hs
                var total = 0.0
                for j in 0...t {
                    let k = qkv.p + b * T * 3 * C + j * 3 * C + C + h * hs
                    var s: Float = 0
                    for i in 0..<hs { s += q[i] * k[i] }
                    total += exp(Double(s / Float(hs).squareRoot() - lse.p[(b * NH + h) * T + t]))
                }
                XCTAssertEqual(total, 1, accuracy: 1e-5, "\(name): lse")
            }
        }
    }

    private func tiledGradientFiniteDifferences() {
        for (B, T, C, NH) in [(2, 5, 8, 2), (1, 70, 16, 2), (1, 270, 8, 1)] {
            for p: Float in [0, 0.3] {
                let qkv = Buf(B * T * 3 * C, seed: 1), out = Buf(zeros: B * T * C), lse = Buf(zeros: B * NH * T)
                let r = Buf(B * T * C, seed: 2), dqkv = Buf(zeros: qkv.n)
                let key = dropoutKey(seed: 7, site: 1)
                func loss() -> Double {
                    attentionForward(out.p, lse.p, qkv.p, B: B, T: T, C: C, NH: NH, dropoutP: p, dropoutKey: key)
                    return weightedSum(out.p, r.p, out.n)
                }
                _ = loss()
                attentionBackward(dqkv.p, r.p, qkv.p, out.p, lse.p, B: B, T: T, C: C, NH: NH, dropoutP: p, dropoutKey: key)
                checkGradient("tiled attention \(GEMMKernel.current) T\(T) p\(p)", param: qkv.p, count: qkv.n,
                              analytic: dqkv.array, samples: 120, loss: loss)
            }
        }
    }

    func testTiledIsCausal() {
        // Changing a later position's q, k, v leaves every earlier output as it was.
        let B = 1, T = 100, C = 16, NH = 2
        let qkv = Buf(B * T * 3 * C, seed: 3), out1 = Buf(zeros: B * T * C), out2 = Buf(zeros: B * T * C)
        let lse = Buf(zeros: B * NH * T)
        attentionForward(out1.p, lse.p, qkv.p, B: B, T: T, C: C, NH: NH)
        for i in (70 * 3 * C)..<(T * 3 * C) { qkv.p[i] += 1 }
        attentionForward(out2.p, lse.p, qkv.p, B: B, T: T, C: C, NH: NH)
        for i in 0..<(70 * C) { XCTAssertEqual(out1.p[i], out2.p[i]) }
        XCTAssertNotEqual(out1.p[70 * C], out2.p[70 * C])
    }

    private func cachedStepMatchesReference() {
        // Every position of a sequence, one cached step at a time, against the reference
        // step and against the last row of the full causal forward.
        let T = 90, C = 32, NH = 2
        let qkv = Buf(T * 3 * C, seed: 4)
        let full = Buf(zeros: T * C), lse = Buf(zeros: NH * T)
        attentionForward(full.p, lse.p, qkv.p, B: 1, T: T, C: C, NH: NH)
        let k1 = Buf(zeros: T * C), v1 = Buf(zeros: T * C), k2 = Buf(zeros: T * C), v2 = Buf(zeros: T * C)
        let y1 = Buf(zeros: C), y2 = Buf(zeros: C), scores = Buf(zeros: T)
        var worst: Float = 0
        for pos in 0..<T {
            let x = qkv.p + pos * 3 * C
            attentionCachedForward(y1.p, x, kcache: k1.p, vcache: v1.p, pos: pos, C: C, NH: NH)
            attentionCachedReferenceForward(y2.p, scores.p, x, kcache: k2.p, vcache: v2.p, pos: pos, C: C, NH: NH)
            worst = max(worst, maxDiff(y1.p, y2.p, C), maxDiff(y1.p, full.p + pos * C, C))
        }
        print(String(format: "attention cached step, %@: max diff %.1e over %d positions",
                     GEMMKernel.current.rawValue, worst, T))
        XCTAssertLessThan(worst, 2e-5)
    }
}

/// Nothing in the activation arena is T x T any more: doubling T doubles it exactly.
final class AttentionMemoryTests: XCTestCase {
    func testActivationsAreLinearInT() throws {
        let c = GPTConfig(vocabSize: 65, blockSize: 2048, nLayer: 6, nHead: 6, nEmbd: 384, dropout: 0.2)
        let small = try XCTUnwrap(GPT.activationFloatCount(config: c, B: 4, T: 1024))
        let large = try XCTUnwrap(GPT.activationFloatCount(config: c, B: 4, T: 2048))
        XCTAssertEqual(large, 2 * small)
    }
}
