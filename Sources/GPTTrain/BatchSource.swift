import GPTComm
import GPTCore

// MARK: - BatchSource

/// Which split an evaluation batch is drawn from.
public enum EvalSplit: Int, CaseIterable, Sendable {
    case train, val
}

/// A (B, T) batch of token ids and their next-token targets (-1: no loss at that position).
public final class TokenBatch {
    public let B: Int, T: Int
    /// (B, T) token ids.
    public let inputs: UnsafeMutablePointer<Int32>
    /// (B, T) target ids, -1 where no loss is taken.
    public let targets: UnsafeMutablePointer<Int32>

    public init(B: Int, T: Int) {
        self.B = B; self.T = T
        inputs = .allocate(capacity: B * T)
        targets = .allocate(capacity: B * T)
    }

    deinit {
        inputs.deallocate()
        targets.deallocate()
    }
}

/// Where the training loop's batches come from: training micro-batches and evaluation batches.
///
/// Per step the loop calls `beginStep`; when it evaluates, `beginEvaluation` (on every rank:
/// it may be a collective) then `fillEvaluation` for this rank's batches, or `skipEvaluation`
/// when a resumed run does not repeat the evaluation of its first step; then `fillTraining`
/// for every micro-step. A source that keeps state (a random stream) gives what a checkpoint
/// must hold to continue it in `checkpointState`, on every rank alike.
public protocol BatchSource: AnyObject {
    /// Step `step` begins.
    func beginStep(_ step: Int)
    /// Fills `batch` with micro-step `micro` of optimizer step `step` on this rank.
    func fillTraining(_ batch: TokenBatch, step: Int, micro: Int) throws
    /// The evaluation at `step` begins; called on every rank.
    func beginEvaluation(step: Int)
    /// Fills `batch` with evaluation batch `index` of `split` at `step`.
    func fillEvaluation(_ batch: TokenBatch, split: EvalSplit, step: Int, index: Int) throws
    /// The evaluation at `step` is not run (the first step of a resumed run, evaluated before the stop).
    func skipEvaluation(step: Int)
    /// What a checkpoint of the current step holds of this source (every rank's, gathered); called on every rank.
    func checkpointState() -> [String: [UInt64]]
    /// The targets (not -1) in all training batches of step `step`, over every rank and micro-step;
    /// nil when every position of every batch has one.
    func targetCount(step: Int) -> Int?
}

extension BatchSource {
    public func beginStep(_ step: Int) {}
    public func beginEvaluation(step: Int) {}
    public func skipEvaluation(step: Int) {}
    public func checkpointState() -> [String: [UInt64]] { [:] }
    public func targetCount(step: Int) -> Int? { nil }
}

/// The corpus windows a run samples from: the training shards, and whole splits for evaluation.
public struct CorpusWindows {
    public let train: WindowSampler
    public let evalTrain: WindowSampler
    public let evalVal: WindowSampler

    func evaluation(_ split: EvalSplit) -> WindowSampler { split == .train ? evalTrain : evalVal }
}

/// Where this rank's samples sit among the `samplesPerStep` samples of a step.
public struct SamplePlacement: Sendable {
    public let rank: Int, accumulation: Int, batch: Int, worldSize: Int

    public init(rank: Int, accumulation: Int, batch: Int, worldSize: Int) {
        self.rank = rank; self.accumulation = accumulation; self.batch = batch; self.worldSize = worldSize
    }

    /// Samples per optimizer step over all ranks.
    public var samplesPerStep: Int { worldSize * accumulation * batch }
    /// The index of the first sample of micro-step `m` on this rank.
    public func firstSample(micro m: Int) -> Int { (rank * accumulation + m) * batch }
}

// MARK: - Counter windows

/// rng = "counter": every window start is a pure function of (seed, step, sample), so the
/// source has no state and a resumed run, on any number of ranks, draws the same windows.
/// The sample index is the global micro-batch slot (rank x accumulation + micro-step) times the
/// batch, so every world with the same ranks x accumulation (and data_shards) draws the same set
/// of windows in a step: what an elastic run on fewer ranks relies on.
public final class CounterWindows: BatchSource {
    let windows: CorpusWindows
    let placement: SamplePlacement

    public init(windows: CorpusWindows, placement: SamplePlacement) {
        self.windows = windows
        self.placement = placement
    }

    public func fillTraining(_ batch: TokenBatch, step: Int, micro: Int) throws {
        let first = placement.firstSample(micro: micro), n = placement.samplesPerStep
        let starts = (0..<batch.B).map { windows.train.trainingStart(step: step, sample: first + $0, samplesPerStep: n) }
        try windows.train.fill(inputs: batch.inputs, targets: batch.targets, starts: starts)
    }

    public func fillEvaluation(_ batch: TokenBatch, split: EvalSplit, step: Int, index k: Int) throws {
        let sampler = windows.evaluation(split)
        let starts = (0..<batch.B).map { sampler.evalStart(step: step, batch: k, row: $0) }
        try sampler.fill(inputs: batch.inputs, targets: batch.targets, starts: starts)
    }
}

// MARK: - Torch windows

/// rng = "torch": window starts drawn from this rank's PyTorch generator in the order nanoGPT's
/// train.py draws them: one `torch.randint` per window, the first micro-batch of a step before
/// that step's evaluation, and every evaluation window from rank 0's stream.
public final class TorchWindows: BatchSource {
    /// Checkpoint state key of the ranks' streams, rank after rank.
    public static let stateKey = "torch_rng"

    let windows: CorpusWindows
    let placement: SamplePlacement
    let comm: Communicator
    let evalIters: Int
    /// This rank's stream.
    private(set) var generator: TorchGenerator
    /// The stream as the current step began: what a checkpoint of this step holds.
    private var atStepStart: TorchGenerator
    /// The windows of micro-step 0, drawn before the step's evaluation.
    private var pending: [Int]?
    /// Every evaluation window's start (train split, then val), as rank 0 drew them.
    private var evalTable: [Int] = []

    public init(windows: CorpusWindows, placement: SamplePlacement, comm: Communicator, evalIters: Int,
                generator: TorchGenerator) {
        self.windows = windows; self.placement = placement; self.comm = comm; self.evalIters = evalIters
        self.generator = generator
        atStepStart = generator
    }

    public func beginStep(_ step: Int) {
        atStepStart = generator
        pending = drawTraining(micro: 0)
    }

    public func fillTraining(_ batch: TokenBatch, step: Int, micro: Int) throws {
        let starts = (micro == 0 ? pending : nil) ?? drawTraining(micro: micro)
        pending = nil
        try windows.train.fill(inputs: batch.inputs, targets: batch.targets, starts: starts)
    }

    public func beginEvaluation(step: Int) {
        let B = placement.batch
        evalTable = comm.isRoot ? drawEvaluation() : [Int](repeating: 0, count: 2 * evalIters * B)
        if comm.size > 1 { evalTable.withUnsafeMutableBufferPointer { comm.broadcast($0.baseAddress!, count: $0.count) } }
    }

    public func fillEvaluation(_ batch: TokenBatch, split: EvalSplit, step: Int, index k: Int) throws {
        let first = (split.rawValue * evalIters + k) * batch.B
        try windows.evaluation(split).fill(inputs: batch.inputs, targets: batch.targets,
                                          starts: Array(evalTable[first..<(first + batch.B)]))
    }

    public func skipEvaluation(step: Int) {
        if comm.isRoot { _ = drawEvaluation() }  // the draws of the evaluation this step had before the resume
    }

    public func checkpointState() -> [String: [UInt64]] {
        [Self.stateKey: comm.allgather(atStepStart.words).flatMap { $0 }]
    }

    private func drawTraining(micro m: Int) -> [Int] {
        let first = placement.firstSample(micro: m), n = placement.samplesPerStep
        return (0..<placement.batch).map { windows.train.trainingStart(sample: first + $0, samplesPerStep: n, generator: &generator) }
    }

    /// eval_iters batches of the train split then of the val split, from this rank's stream.
    private func drawEvaluation() -> [Int] {
        var starts: [Int] = []
        starts.reserveCapacity(2 * evalIters * placement.batch)
        for split in EvalSplit.allCases {
            let sampler = windows.evaluation(split)
            for _ in 0..<(evalIters * placement.batch) { starts.append(sampler.evalStart(generator: &generator)) }
        }
        return starts
    }

    /// This rank's stream as a checkpoint's `state` saved it (rank 0 holds the checkpoint and sends every
    /// rank its own), or, when it holds none or another number of ranks' streams, a fresh stream seeded
    /// from (seed, step, rank), with a note saying so.
    public static func restoredGenerator(_ state: [String: [UInt64]], comm: Communicator, seed: UInt64, step: Int,
                                         notes: inout [TrainEvent]) -> TorchGenerator {
        var words = state[stateKey] ?? []
        let count = comm.broadcast(words.count)
        if !comm.isRoot { words = [UInt64](repeating: 0, count: count) }
        if count > 0 && comm.size > 1 {
            words.withUnsafeMutableBufferPointer { comm.broadcast($0.baseAddress!, count: count) }
        }
        let W = TorchGenerator.wordCount
        if count == W * comm.size, let g = TorchGenerator(words: Array(words[(comm.rank * W)..<((comm.rank + 1) * W)])) {
            return g
        }
        if comm.isRoot {
            notes.append(.note(count == 0 ? "the checkpoint holds no PyTorch random streams (it was written with rng = \"counter\"): "
                + "new streams from here on" : "the checkpoint holds the PyTorch random streams of \(count / W) rank(s): "
                + "new streams from here on"))
        }
        return TorchGenerator(seed: SeedStream.torchRestart.seed(seed, step, comm.rank))
    }
}
