import XCTest
import GPTCore

/// The whole model: finite-difference gradients of every tensor, initialisation,
/// KV-cache sampling, the LR schedule and clipping.
final class ModelTests: XCTestCase {
    override func setUp() { Parallel.setThreads(2) }

    private func batch(_ c: GPTConfig, B: Int, T: Int, seed: UInt64) -> ([Int32], [Int32]) {
        var rng = SplitMix64(seed: seed)
        let inputs = (0..<(B * T)).map { _ in Int32(rng.nextInt(below: c.vocabSize)) }
        var targets = (0..<(B * T)).map { _ in Int32(rng.nextInt(below: c.vocabSize)) }
        targets[1] = -1; targets[B * T - 2] = -1
        return (inputs, targets)
    }

    private func checkModel(_ c: GPTConfig, T: Int, training: Bool) {
        let model = GPT(config: c, seed: 5)
        // Larger weights than GPT-2's init so no gradient is tiny.
        var rng = SplitMix64(seed: 77)
        for i in 0..<model.parameterCount { model.params[i] += Float(rng.nextNormal() * 0.3) }
        model.training = training
        model.dropoutSeed = 1234
        let B = 2
        var (inputs, targets) = batch(c, B: B, T: T, seed: 3)
        func loss() -> Double {
            model.forward(inputs: &inputs, targets: &targets, B: B, T: T)
            var s = 0.0
            for i in 0..<(B * T) { s += Double(model.losses[i]) }
            return s / Double(model.targetCount)
        }
        _ = loss()
        model.zeroGrad()
        var ready: [Range<Int>] = []
        model.backward { ready.append($0) }
        // every parameter is covered exactly once by the ready ranges
        var covered = [Int](repeating: 0, count: model.parameterCount)
        for r in ready { for i in r { covered[i] += 1 } }
        XCTAssertEqual(Set(covered), [1])
        let grads = Array(UnsafeBufferPointer(start: model.grads, count: model.parameterCount))
        for t in model.layout.tensors {
            checkGradient("\(t.name)", param: model.params + t.offset, count: t.count,
                          analytic: Array(grads[t.offset..<(t.offset + t.count)]), samples: 12, loss: loss)
        }
    }

    func testModelGradientsBiasTied() {
        checkModel(GPTConfig(vocabSize: 7, blockSize: 6, nLayer: 2, nHead: 2, nEmbd: 8, dropout: 0, bias: true, tieWeights: true),
                   T: 6, training: false)
    }

    func testModelGradientsNoBiasUntiedDropout() {
        checkModel(GPTConfig(vocabSize: 7, blockSize: 6, nLayer: 2, nHead: 4, nEmbd: 8, dropout: 0.2, bias: false, tieWeights: false),
                   T: 5, training: true)
    }

    func testGradientAccumulationScalesLoss() {
        let c = GPTConfig(vocabSize: 7, blockSize: 6, nLayer: 1, nHead: 2, nEmbd: 8)
        let model = GPT(config: c, seed: 1)
        var (inputs, targets) = batch(c, B: 2, T: 6, seed: 1)
        model.forward(inputs: &inputs, targets: &targets, B: 2, T: 6)
        model.zeroGrad()
        model.backward()
        let full = Array(UnsafeBufferPointer(start: model.grads, count: model.parameterCount))
        model.zeroGrad()
        for _ in 0..<2 {
            model.forward(inputs: &inputs, targets: &targets, B: 2, T: 6)
            model.backward(lossScale: 0.5)
        }
        for i in stride(from: 0, to: full.count, by: 7) {
            XCTAssertEqual(model.grads[i], full[i], accuracy: 1e-6 + 1e-5 * abs(full[i]))
        }
    }

    func testInitialisationAndParameterCount() {
        // nanoGPT's baby GPT on Shakespeare (bias = False, its default) prints
        // "number of parameters: 10.65M" (all but the position embedding).
        let c = GPTConfig(vocabSize: 65, blockSize: 256, nLayer: 6, nHead: 6, nEmbd: 384, dropout: 0.2, bias: false)
        let layout = ParameterLayout(config: c)
        XCTAssertEqual(layout.nonEmbeddingCount, 10_646_784)
        XCTAssertEqual(ParameterLayout(config: GPTConfig(vocabSize: 65, blockSize: 256, nLayer: 6, nHead: 6, nEmbd: 384)).count,
                       10_770_816)
        let m = GPT(config: GPTConfig(vocabSize: 11, blockSize: 8, nLayer: 4, nHead: 2, nEmbd: 32), seed: 3)
        func std(_ name: String) -> Double {
            let t = m.layout[name]!
            let p = m.params + t.offset
            var s = 0.0
            for i in 0..<t.count { s += Double(p[i]) * Double(p[i]) }
            return (s / Double(t.count)).squareRoot()
        }
        XCTAssertEqual(std("h.0.mlp.c_fc.weight"), 0.02, accuracy: 0.002)
        XCTAssertEqual(std("h.1.attn.c_proj.weight"), 0.02 / 8.0.squareRoot(), accuracy: 0.001)
        XCTAssertEqual(m.parameter("h.2.ln_1.weight")[5], 1)
        XCTAssertEqual(m.parameter("h.2.attn.c_attn.bias")[5], 0)
        let again = GPT(config: m.config, seed: 3)
        XCTAssertEqual(memcmp(m.params, again.params, m.parameterCount * 4), 0)
    }

    func testKVCacheSamplingMatchesFullForward() {
        let c = GPTConfig(vocabSize: 13, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16, dropout: 0.1)
        let model = GPT(config: c, seed: 11)
        var rng = SplitMix64(seed: 5)
        for i in 0..<model.parameterCount { model.params[i] += Float(rng.nextNormal() * 0.2) }
        let sampler = Sampler(model: model)
        for (temperature, topK) in [(Float(1), nil), (0.8, 5), (0, nil)] as [(Float, Int?)] {
            // 30 tokens: the context fills block_size and then slides
            let a = sampler.generate(prompt: [1, 2, 3], maxNewTokens: 30, temperature: temperature, topK: topK, seed: 9, useCache: true)
            let b = sampler.generate(prompt: [1, 2, 3], maxNewTokens: 30, temperature: temperature, topK: topK, seed: 9, useCache: false)
            XCTAssertEqual(a, b, "T=\(temperature) k=\(String(describing: topK))")
            XCTAssertEqual(a.count, 30)
        }
        let s1 = sampler.generate(prompt: [1], maxNewTokens: 40, seed: 1)
        let s2 = sampler.generate(prompt: [1], maxNewTokens: 40, seed: 2)
        XCTAssertNotEqual(s1, s2)
        XCTAssertTrue(model.training, "sampling must not leave the model in eval mode")
    }

    func testTopKOnlyDrawsTopTokens() {
        let logits: [Float] = [0.1, 3, 2.9, -1, 2.95, 0]
        var rng = SplitMix64(seed: 1)
        var seen = Set<Int32>()
        for _ in 0..<500 { seen.insert(Sampler.draw(logits, count: 6, temperature: 2, topK: 3, rng: &rng)) }
        XCTAssertEqual(seen, [1, 2, 4])
    }

    func testLRScheduleMatchesNanoGPT() {
        let s = LRSchedule(learningRate: 1e-3, minLR: 1e-4, warmupIters: 100, decayIters: 5000)
        XCTAssertEqual(s.lr(at: 0), 1e-3 / 101, accuracy: 1e-9)
        XCTAssertEqual(s.lr(at: 99), 1e-3 * 100 / 101, accuracy: 1e-9)
        XCTAssertEqual(s.lr(at: 100), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(s.lr(at: 2550), 5.5e-4, accuracy: 1e-7)
        XCTAssertEqual(s.lr(at: 5000), 1e-4, accuracy: 1e-9)
        XCTAssertEqual(s.lr(at: 6000), 1e-4, accuracy: 1e-9)
    }

    func testClipping() {
        let g = Buf(1000, seed: 1)
        var ref = 0.0
        for i in 0..<g.n { ref += Double(g.p[i]) * Double(g.p[i]) }
        ref = ref.squareRoot()
        let norm = clipGradients(g.p, count: g.n, maxNorm: 1)
        XCTAssertEqual(Double(norm), ref, accuracy: 1e-4 * ref)
        XCTAssertEqual(Double(gradientNorm(g.p, count: g.n)), 1, accuracy: 1e-5)
        XCTAssertEqual(clipGradients(g.p, count: g.n, maxNorm: 10), gradientNorm(g.p, count: g.n))
    }

    /// Clipping inside AdamW's pass (`gradScale`) gives the bits of clipping the gradients first
    /// and then the plain per-element update of torch.optim.AdamW, written out here in scalar Float.
    func testAdamWWithClippingInOnePassMatchesClipThenUpdateBitForBit() {
        // Odd widths: tensors of 13, 7, 91, ... elements exercise the vector loop's tails.
        let layout = ParameterLayout(config: GPTConfig(vocabSize: 13, blockSize: 7, nLayer: 1, nHead: 1, nEmbd: 7,
                                                       dropout: 0, bias: true, tieWeights: false))
        let n = layout.count
        let params = Buf(n, seed: 1), grads = Buf(n, seed: 2, scale: 3)
        var ref = Array(UnsafeBufferPointer(start: params.p, count: n)), m = [Float](repeating: 0, count: n), v = m
        let opt = AdamW(layout: layout, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1)
        for t in 1...3 {
            let norm = gradientNorm(grads.p, count: n), lr: Float = 1e-2 * Float(t)
            let coef = clipCoefficient(norm: norm, maxNorm: 1)
            XCTAssertLessThan(coef, 1, "the gradients are clipped")
            opt.step(params: params.p, grads: grads.p, lr: lr, gradScale: coef)
            let bc1 = 1 - powf(0.9, Float(t)), bc2 = 1 - powf(0.95, Float(t))
            for tensor in layout.tensors {
                let decay: Float = tensor.decays ? 1 - lr * 0.1 : 1
                for i in tensor.offset..<(tensor.offset + tensor.count) {
                    var g = grads.p[i]
                    g *= coef  // scaleGradients
                    m[i] = 0.9 * m[i] + (1 - 0.9) * g
                    v[i] = 0.95 * v[i] + (1 - 0.95) * g * g
                    ref[i] = ref[i] * decay - lr / bc1 * m[i] / (v[i].squareRoot() / bc2.squareRoot() + 1e-8)
                }
            }
            let differing = (0..<n).filter { params.p[$0].bitPattern != ref[$0].bitPattern }
            XCTAssertEqual(differing.count, 0, "step \(t): elements \(differing.prefix(5)) differ")
        }
        XCTAssertEqual(clipCoefficient(norm: 0.5, maxNorm: 1), 1)
        XCTAssertEqual(clipCoefficient(norm: .nan, maxNorm: 1), 1)
        XCTAssertEqual(clipCoefficient(norm: 4, maxNorm: 0), 1, "max norm 0: no clipping")
    }
}
