import Foundation
import XCTest
import GPTCore
import GPTData
import GPTTrain
import TestSupport

/// What a checkpoint holds of a run's state comes back as it was saved: one save, one restore.
final class TrainStateTests: XCTestCase {
    func testStateRoundTripsThroughACheckpointFile() throws {
        let tmp = try TemporaryDirectory()
        let model = GPT(config: GPTConfig(vocabSize: 11, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8), seed: 5)
        let optimizer = AdamW(layout: model.layout, beta1: 0.9, beta2: 0.99, weightDecay: 0.1)
        for i in 0..<model.parameterCount { optimizer.m[i] = Float(i) * 1e-3; optimizer.v[i] = Float(i) * 1e-4 }
        var state = TrainState()
        state.step = 70
        state.bestValLoss = 1.875
        state.nonfiniteSkipped = 3
        state.sourceState = ["torch_rng": [1, 2, 3, UInt64.max]]
        var config = TrainConfig()
        config.seed = 42
        let tokenizer = CharTokenizer(training: "abcdefghijk")
        let ckpt = state.checkpoint(model: model, optimizer: optimizer, config: config, tokenizer: tokenizer, worldSize: 4)
        let path = tmp.file("ckpt.h5")
        try ckpt.write(to: path)

        let back = try Checkpoint.read(from: path)
        var restored = TrainState(checkpoint: back)
        XCTAssertEqual(restored.savedWorldSize, 4)
        restored.savedWorldSize = nil
        XCTAssertEqual(restored, state, "the state read back from the file")
        XCTAssertEqual(back.parameters, Array(UnsafeBufferPointer(start: model.params, count: model.parameterCount)))
        XCTAssertEqual(back.adamV!, Array(UnsafeBufferPointer(start: optimizer.v, count: model.parameterCount)))
        XCTAssertEqual(try TrainConfig.load(toml: back.runConfig, source: path).seed, 42)

        // No best loss yet: nothing is written, and it reads back as infinity.
        state.bestValLoss = .infinity
        let fresh = state.checkpoint(model: model, optimizer: optimizer, config: config, tokenizer: tokenizer, worldSize: 1)
        XCTAssertNil(fresh.bestValLoss)
        XCTAssertEqual(TrainState(checkpoint: fresh).bestValLoss, .infinity)
    }
}
