import Foundation
import XCTest
import GPTCore

/// The architecture options (RMSNorm, RoPE, SwiGLU, QK-norm) through the whole
/// model: finite-difference gradients of every tensor, KV-cache sampling against
/// the full forward, the parameter table, and configs written before the options.
final class ModelOptionsTests: XCTestCase {
    override func setUp() { Parallel.setThreads(2) }

    /// The small model of ModelTests with some options on.
    static func config(norm: NormKind = .layerNorm, position: PositionKind = .learned, mlp: MLPKind = .gelu,
                       qkNorm: Bool = false, bias: Bool = true, tie: Bool = true, dropout: Float = 0) -> GPTConfig {
        var c = GPTConfig(vocabSize: 7, blockSize: 6, nLayer: 2, nHead: 2, nEmbd: 8, dropout: dropout, bias: bias,
                          tieWeights: tie)
        c.norm = norm; c.position = position; c.mlp = mlp; c.qkNorm = qkNorm
        c.ropeBase = 50  // larger angles at these short lengths
        return c
    }

    /// Every option alone, and all four together (with and without biases, tied or not, dropout).
    static let arms: [(String, GPTConfig)] = [
        ("rmsnorm", config(norm: .rmsNorm)),
        ("rope", config(position: .rope)),
        ("swiglu", config(mlp: .swiglu)),
        ("qk_norm", config(qkNorm: true)),
        ("all", config(norm: .rmsNorm, position: .rope, mlp: .swiglu, qkNorm: true)),
        ("all, no bias, untied, dropout", config(norm: .rmsNorm, position: .rope, mlp: .swiglu, qkNorm: true,
                                                 bias: false, tie: false, dropout: 0.2)),
    ]

    func testGradientsOfEveryTensor() {
        for (name, c) in Self.arms {
            print("== \(name): \(c.options.joined(separator: ", "))")
            let model = GPT(config: c, seed: 5)
            var rng = SplitMix64(seed: 77)
            for i in 0..<model.parameterCount { model.params[i] += Float(rng.nextNormal() * 0.3) }
            model.training = c.dropout > 0
            model.dropoutSeed = 1234
            let B = 2, T = 5
            var inputs = (0..<(B * T)).map { _ in Int32(rng.nextInt(below: c.vocabSize)) }
            var targets = (0..<(B * T)).map { _ in Int32(rng.nextInt(below: c.vocabSize)) }
            targets[1] = -1
            func loss() -> Double {
                model.forward(inputs: &inputs, targets: &targets, B: B, T: T)
                return (0..<(B * T)).reduce(0.0) { $0 + Double(model.losses[$1]) } / Double(model.targetCount)
            }
            _ = loss()
            model.zeroGrad()
            var covered = [Int](repeating: 0, count: model.parameterCount)
            model.backward { r in for i in r { covered[i] += 1 } }
            XCTAssertEqual(Set(covered), [1], "\(name): every gradient is reported ready exactly once")
            let grads = Array(UnsafeBufferPointer(start: model.grads, count: model.parameterCount))
            for t in model.layout.tensors {
                checkGradient("\(name) \(t.name)", param: model.params + t.offset, count: t.count,
                              analytic: Array(grads[t.offset..<(t.offset + t.count)]), samples: 10, eps: 3e-3,
                              loss: loss)
            }
        }
    }

    func testKVCacheSamplingMatchesFullForwardPastBlockSize() {
        for (name, c) in Self.arms where c.position == .rope || c.qkNorm {
            var c = c
            c.blockSize = 8
            let model = GPT(config: c, seed: 11)
            var rng = SplitMix64(seed: 5)
            for i in 0..<model.parameterCount { model.params[i] += Float(rng.nextNormal() * 0.2) }
            let sampler = Sampler(model: model)
            for (temperature, topK) in [(Float(1), nil), (0.8, 5), (0, nil)] as [(Float, Int?)] {
                // 30 tokens: the context fills block_size (8) and then slides
                let a = sampler.generate(prompt: [1, 2, 3], maxNewTokens: 30, temperature: temperature, topK: topK,
                                         seed: 9, useCache: true)
                let b = sampler.generate(prompt: [1, 2, 3], maxNewTokens: 30, temperature: temperature, topK: topK,
                                         seed: 9, useCache: false)
                XCTAssertEqual(a, b, "\(name) T=\(temperature) k=\(String(describing: topK))")
            }
        }
    }

    func testTheParameterTable() {
        let c = GPTConfig(vocabSize: 65, blockSize: 64, nLayer: 4, nHead: 4, nEmbd: 128)
        var s = c
        s.mlp = .swiglu
        XCTAssertEqual(s.swigluHidden, 344)  // ceil(2/3 * 512) = 342, up to a multiple of 8
        s.swigluMultiple = 64
        XCTAssertEqual(s.swigluHidden, 384)
        s.swigluMultiple = 8
        let mlp = { (c: GPTConfig) in ParameterLayout(config: c).tensors.filter { $0.name.hasPrefix("h.0.mlp") } }
        let gelu = mlp(c).reduce(0) { $0 + $1.count }, swiglu = mlp(s).reduce(0) { $0 + $1.count }
        print("MLP parameters per block: gelu \(gelu), swiglu \(swiglu)")
        XCTAssertEqual(Double(swiglu) / Double(gelu), 1, accuracy: 0.01)
        var all = c
        all.norm = .rmsNorm; all.position = .rope; all.qkNorm = true
        let layout = ParameterLayout(config: all)
        XCTAssertNil(layout["wpe.weight"])
        XCTAssertNil(layout["h.0.ln_1.bias"])
        XCTAssertNil(layout["ln_f.bias"])
        XCTAssertEqual(layout["h.3.attn.q_norm.weight"]?.shape, [32])
        XCTAssertEqual(layout["h.3.attn.c_attn.bias"]?.shape, [384])
        XCTAssertEqual(ParameterLayout.floatCount(config: all), layout.count)
        let m = GPT(config: all, seed: 1)
        XCTAssertEqual(m.parameter("h.1.attn.k_norm.weight")[3], 1)
        XCTAssertEqual(m.parameter("h.1.ln_2.weight")[3], 1)
        var odd = c
        odd.nEmbd = 192; odd.nHead = 64; odd.position = .rope  // head size 3
        XCTAssertTrue(odd.problems().contains { $0.contains("even head size") })
    }

    func testConfigsWithoutTheOptionsDecodeAsGPT2() throws {
        let old = #"{"vocab_size":65,"block_size":64,"n_layer":4,"n_head":4,"n_embd":128,"dropout":0,"bias":true,"tie_weights":true}"#
        let c = try JSONDecoder().decode(GPTConfig.self, from: Data(old.utf8))
        XCTAssertEqual(c, GPTConfig(vocabSize: 65, blockSize: 64, nLayer: 4, nHead: 4, nEmbd: 128))
        XCTAssertEqual(c.norm, .layerNorm); XCTAssertEqual(c.position, .learned); XCTAssertEqual(c.mlp, .gelu)
        XCTAssertFalse(c.qkNorm); XCTAssertEqual(c.ropeBase, 10_000)
        XCTAssertTrue(c.options.isEmpty)
        var all = c
        all.norm = .rmsNorm; all.position = .rope; all.ropeBase = 500; all.mlp = .swiglu; all.swigluMultiple = 32
        all.qkNorm = true
        let again = try JSONDecoder().decode(GPTConfig.self, from: JSONEncoder().encode(all))
        XCTAssertEqual(again, all)
    }
}
