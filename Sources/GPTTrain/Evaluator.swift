import GPTComm
import GPTCore
import GPTData

/// Mean loss of the model on eval_iters batches of each split, the batches spread over the ranks.
///
/// The training loop calls it at every evaluation; `gpt eval` calls it on a checkpoint.
public final class Evaluator {
    public let model: GPT
    public let source: BatchSource
    public let comm: Communicator
    /// Batches per split.
    public let iters: Int
    /// The exact-match accuracy on a task's test problems, for a run on a task.
    public var accuracy: AccuracyEvaluator?
    private let batch: TokenBatch
    /// Positions per evaluation row (block_size, or a task's row length).
    public var rowLength: Int { batch.T }

    public init(model: GPT, source: BatchSource, comm: Communicator, iters: Int, batch: TokenBatch) {
        self.model = model; self.source = source; self.comm = comm; self.iters = iters; self.batch = batch
    }

    /// Mean loss per split at `step` (dropout off); rank r evaluates batches r, r + world, ...,
    /// and the sums are added over the ranks, so every rank returns the same numbers.
    public func estimateLoss(step: Int) throws -> (train: Double, val: Double) {
        model.training = false
        defer { model.training = true }
        source.beginEvaluation(step: step)
        var sums = [0.0, 0.0, 0.0, 0.0]
        for split in EvalSplit.allCases {
            let i = split.rawValue
            for k in stride(from: comm.rank, to: iters, by: comm.size) {
                try source.fillEvaluation(batch, split: split, step: step, index: k)
                sums[2 * i] += Double(model.forward(inputs: batch.inputs, targets: batch.targets, B: batch.B, T: batch.T))
                sums[2 * i + 1] += 1
            }
        }
        if comm.size > 1 { comm.allreduce(&sums, count: 4, op: .sum) }
        return (sums[0] / sums[1], sums[2] / sums[3])
    }
}

extension Evaluator {
    /// An evaluator of checkpoint `c` on the corpus `config.dataset` (`gpt eval`): the checkpoint's
    /// weights, `config.eval_iters` batches of `config.batch_size` windows of `config.block_size`
    /// tokens per split from the counter stream seeded with `config.seed`, spread over the ranks.
    public static func forCheckpoint(_ c: Checkpoint, config: TrainConfig, comm: Communicator) throws -> Evaluator {
        _ = RunSetup.setThreads(config, comm: comm)
        let task = ArithmeticTask(config)
        let (corpus, windows, _) = try task == nil ? RunSetup.openData(config, comm: comm)
            : (CorpusInfo.generated(name: "arithmetic task", tokenizer: ArithmeticVocabulary.tokenizer), nil, 1)
        try Trainer.collective(comm) {
            var notes: [TrainEvent] = []
            if comm.isRoot { try RunSetup.checkCompatible(c, corpus: corpus, config: config, resume: false, notes: &notes) }
        }
        var mc = c.modelConfig
        mc.dropout = Float(config.dropout)
        let model = GPT(config: mc, seed: UInt64(config.seed))
        load(c, into: model, moments: nil)
        let placement = SamplePlacement(rank: comm.rank, accumulation: 1, batch: config.batchSize, worldSize: comm.size)
        let batch = TokenBatch(B: config.batchSize, T: task?.rowLength ?? config.blockSize)
        model.reserve(B: batch.B, T: batch.T)
        let source = RunSetup.batchSource(config, task: task, windows: windows, placement: placement, comm: comm, torch: nil)
        let evaluator = Evaluator(model: model, source: source, comm: comm, iters: config.evalIters, batch: batch)
        evaluator.accuracy = try task.map {
            try AccuracyEvaluator(task: $0, model: model, comm: comm, problems: config.taskTestProblems)
        }
        return evaluator
    }
}
