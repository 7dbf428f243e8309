import XCTest
import GPTCore
import GPTTrain

/// The memory estimate against the buffers a model really allocates.
final class MemoryEstimateTests: XCTestCase {
    func testEstimateMatchesTheModelsBuffers() {
        for (dropout, bias, tied) in [(Float(0), true, true), (0.1, false, false)] {
            let c = GPTConfig(vocabSize: 65, blockSize: 16, nLayer: 2, nHead: 2, nEmbd: 16, dropout: dropout,
                              bias: bias, tieWeights: tied)
            let B = 3, T = 16
            let e = MemoryEstimate(model: c, batchSize: B, blockSize: T, ranksOnNode: 2)
            let model = GPT(config: c)
            model.reserve(B: B, T: T)
            let opt = AdamW(layout: model.layout, beta1: 0.9, beta2: 0.95, weightDecay: 0.1)
            XCTAssertEqual(e.activations, model.activationBytes, "dropout \(dropout)")
            XCTAssertEqual(e.parameters, model.parameterCount * 4)
            XCTAssertEqual(e.gradients, model.parameterCount * 4)
            XCTAssertEqual(e.adamMoments, 2 * opt.count * 4)
            XCTAssertEqual(e.tokenBuffers, 4 * B * T * 4)
            XCTAssertEqual(e.perNode, 2 * e.perRank!)
        }
    }

    func testCheckRefusesWithOneLine() throws {
        let c = GPTConfig(vocabSize: 65, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 16)
        let e = MemoryEstimate(model: c, batchSize: 4, blockSize: 16, ranksOnNode: 2)
        XCTAssertNoThrow(try e.check(available: e.perNode!))
        XCTAssertThrowsError(try e.check(available: e.perNode! - 1)) { error in
            let line = "\(error)"
            XCTAssertFalse(line.contains("\n"))
            for word in ["on this node (2 ranks x", "activations", "physical memory", "lower batch_size",
                         "fewer ranks per node"] {
                XCTAssertTrue(line.contains(word), "\(word): \(line)")
            }
        }
    }

    func testSizesBeyondIntAreRefusedNotTrapped() {
        let c = GPTConfig(vocabSize: 50304, blockSize: 1 << 20, nLayer: 1 << 20, nHead: 1, nEmbd: 1 << 30)
        XCTAssertNil(GPT.activationFloatCount(config: c, B: 1 << 20, T: 1 << 20))
        XCTAssertNil(ParameterLayout.floatCount(config: c))
        let e = MemoryEstimate(model: c, batchSize: 1 << 20, blockSize: 1 << 20, ranksOnNode: 1)
        XCTAssertNil(e.perNode)
        XCTAssertThrowsError(try e.check(available: .max)) { error in
            XCTAssertTrue("\(error)".contains("needs more than 8 EiB"), "\(error)")
        }
    }

    func testByteFormat() {
        XCTAssertEqual(MemoryEstimate.format(512), "512 B")
        XCTAssertEqual(MemoryEstimate.format(1536), "1.50 KiB")
        XCTAssertEqual(MemoryEstimate.format(25 << 30), "25.0 GiB")
        XCTAssertEqual(MemoryEstimate.format(1023 << 20), "1023 MiB")
        XCTAssertEqual(MemoryEstimate.format(nil), "more than 8 EiB")
    }
}
