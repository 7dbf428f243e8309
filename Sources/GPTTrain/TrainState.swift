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

    /// The checkpoint of this state with the model's weights and the (unsharded) optimizer's moments.
    public func checkpoint(model: GPT, optimizer: AdamW, config: TrainConfig, tokenizer: any Tokenizer,
                    worldSize: Int) -> Checkpoint {
        precondition(optimizer.count == model.parameterCount, "a sharded optimizer's moments are gathered first")
        let moments = (Array(UnsafeBufferPointer(start: optimizer.m, count: optimizer.count)),
                       Array(UnsafeBufferPointer(start: optimizer.v, count: optimizer.count)))
        return checkpoint(model: model, moments: moments, config: config, tokenizer: tokenizer, worldSize: worldSize)
    }

    /// The checkpoint of this state with the model's weights and the whole AdamW moments (gathered
    /// from the ranks' shards with zero_stage 1: the file does not depend on the sharding).
    public func checkpoint(model: GPT, moments: (m: [Float], v: [Float]), config: TrainConfig, tokenizer: any Tokenizer,
                           worldSize: Int) -> Checkpoint {
        let n = model.parameterCount
        let meta: [String: [UInt64]] = [Self.worldSizeKey: [UInt64(worldSize)], Self.seedKey: [UInt64(config.seed)]]
        return Checkpoint(modelConfig: model.config,
                          parameters: Array(UnsafeBufferPointer(start: model.params, count: n)),
                          adamM: moments.m, adamV: moments.v,
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

/// Copies a checkpoint's weights into the model and, given an optimizer, its slice of the AdamW moments into that.
func load(_ c: Checkpoint, into model: GPT, moments optimizer: AdamW?) {
    c.parameters.withUnsafeBufferPointer { model.params.update(from: $0.baseAddress!, count: model.parameterCount) }
    if let optimizer, let m = c.adamM, let v = c.adamV { optimizer.loadMoments(m: m, v: v) }
}

/// Rank 0's checkpoint (nil on the other ranks) on every rank: the weights, rank 0's own when there
/// is no checkpoint, and, given an optimizer, each rank's slice of the moments (broadcast whole to
/// unsharded optimizers, scattered to sharded ones: no rank but 0 ever holds more than its slice).
func distribute(_ c: Checkpoint?, into model: GPT, moments optimizer: AdamW?, comm: Communicator) {
    let n = model.parameterCount
    if let c { load(c, into: model, moments: optimizer) }
    if comm.size > 1 { comm.broadcast(model.params, count: n) }
    guard let optimizer, comm.size > 1, comm.broadcast(c?.adamM != nil && c?.adamV != nil ? 1 : 0) == 1 else { return }
    let counts = comm.allgather(optimizer.count)
    for (whole, own) in [(c?.adamM, optimizer.m), (c?.adamV, optimizer.v)] {
        if counts.allSatisfy({ $0 == n }) {
            comm.broadcast(own, count: n)
        } else if let whole {
            whole.withUnsafeBufferPointer { comm.scatter($0.baseAddress, counts: counts, into: own) }
        } else {
            comm.scatter(nil, counts: counts, into: own)
        }
    }
}
