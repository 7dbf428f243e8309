import GPTComm
import GPTCore
import GPTData

/// What a run carries from step to step beyond the weights and AdamW moments, and so what a
/// checkpoint holds to continue it: one value, written by `checkpoint(...)` and read back by
/// `init(checkpoint:)` (llm.c's save_state / load_state).
public struct TrainState: Equatable {
    /// Optimizer steps taken.
    public var step = 0
    /// Best validation loss seen so far (infinity: none yet).
    public var bestValLoss = Double.infinity
    /// Steps skipped for a non-finite loss or gradient norm, over the whole run.
    public var nonfiniteSkipped = 0
    /// The batch source's state (`BatchSource.checkpointState`), every rank's.
    public var sourceState: [String: [UInt64]] = [:]
    /// The number of ranks that wrote the checkpoint (nil: a fresh run).
    public var savedWorldSize: Int?

    static let worldSizeKey = "world_size", seedKey = "seed", nonfiniteKey = "nonfinite_skipped"

    public init() {}

    /// The state a checkpoint saved.
    public init(checkpoint c: Checkpoint) {
        step = c.step
        bestValLoss = c.bestValLoss ?? .infinity
        nonfiniteSkipped = Int(c.scalars[Self.nonfiniteKey] ?? 0)
        savedWorldSize = c.state[Self.worldSizeKey]?.first.map { Int($0) }
        sourceState = c.state.filter { $0.key != Self.worldSizeKey && $0.key != Self.seedKey }
    }

    /// The checkpoint of this state with the model's weights and the optimizer's moments.
    public func checkpoint(model: GPT, optimizer: AdamW, config: TrainConfig, tokenizer: any Tokenizer,
                    worldSize: Int) -> Checkpoint {
        let n = model.parameterCount
        let meta: [String: [UInt64]] = [Self.worldSizeKey: [UInt64(worldSize)], Self.seedKey: [UInt64(config.seed)]]
        return Checkpoint(modelConfig: model.config,
                          parameters: Array(UnsafeBufferPointer(start: model.params, count: n)),
                          adamM: Array(UnsafeBufferPointer(start: optimizer.m, count: n)),
                          adamV: Array(UnsafeBufferPointer(start: optimizer.v, count: n)),
                          step: step, tokenizerKind: tokenizer.kind, tokenizer: tokenizer.serialized(),
                          runConfig: config.toTOML(), bestValLoss: bestValLoss.isFinite ? bestValLoss : nil,
                          state: meta.merging(sourceState) { a, _ in a },
                          scalars: [Self.nonfiniteKey: Double(nonfiniteSkipped)])
    }

    /// Rank 0's state on every rank (the batch source's state stays on rank 0: the source sends each rank its part).
    public mutating func broadcast(_ comm: Communicator) {
        guard comm.size > 1 else { return }
        step = comm.broadcast(step)
        var best = [bestValLoss]
        comm.broadcast(&best, count: 1)
        bestValLoss = best[0]
        nonfiniteSkipped = comm.broadcast(nonfiniteSkipped)
    }
}

/// Copies a checkpoint's weights into the model and, given an optimizer, its AdamW moments into that.
func load(_ c: Checkpoint, into model: GPT, moments optimizer: AdamW?) {
    let n = model.parameterCount
    c.parameters.withUnsafeBufferPointer { model.params.update(from: $0.baseAddress!, count: n) }
    if let optimizer, let m = c.adamM, let v = c.adamV {
        m.withUnsafeBufferPointer { optimizer.m.update(from: $0.baseAddress!, count: n) }
        v.withUnsafeBufferPointer { optimizer.v.update(from: $0.baseAddress!, count: n) }
    }
}
