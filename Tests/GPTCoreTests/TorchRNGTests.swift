import Foundation
import XCTest
import GPTCore

/// PyTorch's random stream, against values recorded from torch
/// (Tests/reference/make_nanogpt_run.py): randint, uniform_ and both paths of
/// normal_ drawn in turn from one generator, and the initial weights of
/// nanoGPT's model under torch.manual_seed, with the stream position after them.
final class TorchRNGTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/torch_rng.json").path

    private func load() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.fixture))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testTheSequenceOfDrawsIsTorchs() throws {
        let seq = try XCTUnwrap(try load()["sequence"] as? [[String: Any]])
        var g = TorchGenerator(seed: 42)
        for (n, entry) in seq.enumerated() {
            let op = entry["op"] as! String, arg = entry["arg"] as! [Double]
            let expected = entry["values"] as! [Double]
            let count = op == "randint" ? Int(arg[1]) : Int(arg[0])
            XCTAssertEqual(expected.count, count)
            var got = [Float](repeating: 0, count: count)
            switch op {
            case "randint":
                let values = (0..<count).map { _ in g.randint(Int(arg[0])) }
                XCTAssertEqual(values, expected.map { Int($0) }, "draw \(n): randint(\(Int(arg[0])))")
                continue
            case "uniform":
                got.withUnsafeMutableBufferPointer { g.uniform($0.baseAddress!, count: count, from: Float(arg[1]), to: Float(arg[2])) }
            case "normal":
                got.withUnsafeMutableBufferPointer { g.normal($0.baseAddress!, count: count, mean: Float(arg[1]), std: Float(arg[2])) }
            default:
                XCTFail("unknown op \(op)")
            }
            // torch's vectorised log/sin/cos may differ from libm's in the last bit.
            let worst = zip(got, expected).map { abs(Double($0) - $1) / max(1, abs($1)) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-6, "draw \(n): \(op)(\(arg)): got \(got), torch \(expected)")
        }
    }

    func testNanoGPTInitialWeightsAndTheStreamAfterThem() throws {
        let inits = try XCTUnwrap(try load()["init"] as? [[String: Any]])
        XCTAssertEqual(inits.count, 2)
        for entry in inits {
            let c = entry["config"] as! [String: Any]
            let config = GPTConfig(vocabSize: c["vocab_size"] as! Int, blockSize: c["block_size"] as! Int,
                                   nLayer: c["n_layer"] as! Int, nHead: c["n_head"] as! Int, nEmbd: c["n_embd"] as! Int,
                                   dropout: 0, bias: c["bias"] as! Bool, tieWeights: true)
            let model = GPT(config: config)
            var g = TorchGenerator(seed: UInt64(entry["seed"] as! Int))
            model.initializeAsNanoGPT(&g)
            let tensors = entry["tensors"] as! [String: [String: Any]]
            XCTAssertEqual(Set(tensors.keys), Set(model.layout.tensors.map(\.name)), "bias \(config.bias)")
            for t in model.layout.tensors {
                let ref = try XCTUnwrap(tensors[t.name], t.name)
                XCTAssertEqual(ref["count"] as? Int, t.count, t.name)
                // Tolerances in units of the tensor's rms (torch's vectorised log/sin/cos differ from
                // libm's by a few ulp); a draw out of order would be off by about 1 rms.
                let p = model.params + t.offset
                let refSumSq = ref["sum_sq"] as! Double
                let rms = max(1e-12, (refSumSq / Double(t.count)).squareRoot())
                let first = ref["first"] as! [Double]
                for (i, v) in first.enumerated() {
                    XCTAssertEqual(Double(p[i]), v, accuracy: 1e-5 * rms, "\(t.name)[\(i)], bias \(config.bias)")
                }
                var sum = 0.0, sumSq = 0.0
                for i in 0..<t.count { sum += Double(p[i]); sumSq += Double(p[i]) * Double(p[i]) }
                XCTAssertEqual(sum, ref["sum"] as! Double, accuracy: 1e-5 * refSumSq.squareRoot(), t.name)
                XCTAssertEqual(sumSq, refSumSq, accuracy: 1e-5 * refSumSq, t.name)
            }
            let next = (0..<4).map { _ in g.randint(1000) }
            XCTAssertEqual(next, entry["next_randint_1000"] as! [Int], "the stream after the init, bias \(config.bias)")
        }
    }

    func testTheStateRoundTripsThroughWords() {
        var g = TorchGenerator(seed: 7)
        var scratch = [Float](repeating: 0, count: 3)
        scratch.withUnsafeMutableBufferPointer { g.normal($0.baseAddress!, count: 3, mean: 0, std: 1) }  // leaves a cached normal
        XCTAssertNotNil(g.cachedNormal)
        var h = try! XCTUnwrap(TorchGenerator(words: g.words))
        XCTAssertEqual(h, g)
        for _ in 0..<700 { XCTAssertEqual(h.next32(), g.next32()) }  // across a twist
        XCTAssertEqual(h.nextNormal(), g.nextNormal())
        var bad = g.words
        bad[TorchGenerator.stateWords] = 625
        XCTAssertNil(TorchGenerator(words: bad), "index past the state")
        XCTAssertNil(TorchGenerator(words: Array(g.words.dropLast())), "too few words")
        bad = g.words
        bad[0] = 1 << 32
        XCTAssertNil(TorchGenerator(words: bad), "a word wider than 32 bits")
    }
}
