import Foundation
import GPTComm
import GPTCore
import GPTData

// MARK: - Events

/// What the training loop reports; it prints and writes nothing itself.
///
/// Rank 0 hands every event to its sinks: the console (`ConsoleReport`) and metrics.jsonl
/// (`MetricsReport`) today; a dashboard is one more sink.
public enum TrainEvent {
    /// A line for the reader (a note on the starting point, a warning).
    case note(String)
    /// The run continues from the checkpoint at `path`, written at `step`.
    case resumed(path: String, step: Int)
    /// The run is set up and about to train.
    case started(RunDescription)
    /// An optimizer step finished (every step; `report.logged` says whether it is a log step).
    case step(StepReport)
    /// A step whose loss or gradient norm was not finite; `skipped`: the run goes on without its update.
    case nonfinite(step: Int, loss: Double, gradNorm: Double, inARow: Int, skipped: Bool)
    /// An evaluation finished.
    case evaluation(EvalReport)
    /// Text sampled from the model at an evaluation.
    case sample(step: Int, text: String)
    /// A checkpoint was written.
    case checkpoint(step: Int, path: String, best: Bool, seconds: Double)
    /// The watchdog is ending the job (sent from the watchdog's thread).
    case watchdog(message: String)
    /// The training steps are over.
    case stepsFinished
    /// Every rank's parameter checksum at the end of the run.
    case replicas(step: Int, checksums: [UInt64])
    /// The run's throughput and results.
    case summary(RunSummary)
}

/// The facts of a run printed and logged when it starts.
public struct RunDescription {
    public var model: GPTConfig
    public var parameters: Int, nonEmbeddingParameters: Int
    public var dataset: String, trainTokens: Int, valTokens: Int, tokenizerKind: String, shards: Int
    /// The generated task the run learns instead of a corpus (nil: a corpus).
    public var task: ArithmeticTask?
    public var worldSize: Int, nodes: Int, threads: Int
    public var accumulation: Int, batch: Int, block: Int, overlapComm: Bool
    public var step: Int, resumed: Bool, rng: RandomStream, seed: Int
    /// ZeRO stage in effect (1 only with more than one rank), and what one rank holds.
    public var zeroStage: Int, memory: MemoryEstimate
    /// Whether ZeRO-1's all-gather overlaps the next forward (stage 1, overlap_comm and overlap_gather).
    public var overlapGather: Bool

    public var tokensPerStep: Int { worldSize * accumulation * batch * block }

    init(_ config: TrainConfig, model: GPT, corpus: CorpusInfo, shards: Int, comm: Communicator, threads: Int,
         step: Int, resumed: Bool) {
        self.model = model.config
        parameters = model.layout.count; nonEmbeddingParameters = model.layout.nonEmbeddingCount
        dataset = config.dataset; trainTokens = corpus.trainTokens; valTokens = corpus.valTokens
        tokenizerKind = corpus.tokenizer.kind; self.shards = shards; task = ArithmeticTask(config)
        worldSize = comm.size; nodes = comm.nodeCount; self.threads = threads
        accumulation = config.gradientAccumulationSteps; batch = config.batchSize; block = task?.rowLength ?? config.blockSize
        overlapComm = config.overlapComm; self.step = step; self.resumed = resumed; rng = config.rng; seed = config.seed
        zeroStage = comm.size > 1 ? config.zeroStage : 0
        overlapGather = zeroStage == 1 && config.overlapComm && config.overlapGather
        memory = MemoryEstimate(config, model: model.config, ranksOnNode: comm.localSize, worldSize: comm.size)
    }
}

/// One optimizer step, as measured.
public struct StepReport {
    public var step: Int, maxIters: Int
    /// Steps done since this process started training.
    public var stepsThisRun: Int
    public var loss: Double, lr: Float, gradNorm: Float
    public var seconds: Double, tokensPerSecond: Double, worldSize: Int
    /// Achieved FLOP/s over the GEMM kernel's FLOP/s on this rank (`gemm`, Kernels/Gemm.swift).
    public var sgemmRatio: Double
    public var commExposedSeconds: Double, commBackgroundSeconds: Double
    /// Whether this is a log step (`log_interval`, or the last step).
    public var logged: Bool
}

/// One evaluation's losses, and for a task its test accuracy.
public struct EvalReport {
    public var step: Int, trainLoss: Double, valLoss: Double, bestValLoss: Double, isBest: Bool, seconds: Double
    public var accuracy: AccuracyReport? = nil
}

/// The end-of-run figures.
public struct RunSummary {
    public var step: Int, worldSize: Int
    public var tokensPerSecond: Double
    public var computeSeconds: Double, exposedCommSeconds: Double, backgroundCommSeconds: Double
    /// Whether gradients were averaged on the communication thread during backward.
    public var overlapped: Bool
    public var finalLoss: Double, bestValLoss: Double, nonfiniteSkipped: Int
}

/// A consumer of the training loop's events.
public protocol TrainEventSink: AnyObject {
    func handle(_ event: TrainEvent) throws
    /// The run is over: release files.
    func close()
}

extension TrainEventSink {
    public func close() {}
}

// MARK: - Step timing

/// Accumulates per-step compute and communication time (the first step of a run, which warms
/// up caches and threads, is left out) and turns it into the run summary.
struct ThroughputMeter {
    var computeSeconds = 0.0, commSeconds = 0.0, backgroundSeconds = 0.0, steps = 0

    mutating func add(seconds dt: Double, exposedComm: Double, backgroundComm: Double) {
        computeSeconds += dt - exposedComm; commSeconds += exposedComm; backgroundSeconds += backgroundComm
        steps += 1
    }

    /// The summary of the timed steps, nil when none was timed.
    func summary(step: Int, worldSize: Int, tokensPerStep: Int, overlapped: Bool, finalLoss: Double,
                 bestValLoss: Double, nonfiniteSkipped: Int) -> RunSummary? {
        guard steps > 0 else { return nil }
        let n = Double(steps)
        let perStep = (computeSeconds + commSeconds) / n
        return RunSummary(step: step, worldSize: worldSize, tokensPerSecond: Double(tokensPerStep) / perStep,
                          computeSeconds: computeSeconds / n, exposedCommSeconds: commSeconds / n,
                          backgroundCommSeconds: backgroundSeconds / n, overlapped: overlapped,
                          finalLoss: finalLoss, bestValLoss: bestValLoss, nonfiniteSkipped: nonfiniteSkipped)
    }
}
