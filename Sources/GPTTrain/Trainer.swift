import Foundation
import GPTComm
import GPTCore
import GPTData
import GPTSupport

/// `gpt train`: the data-parallel training loop.
///
/// Every rank holds the whole model, draws its own batches from its `BatchSource`, runs
/// forward and backward, and averages gradients with the other ranks (bucket by bucket while
/// backward still runs, when `overlap_comm`). Every rank then applies the same AdamW update,
/// so the replicas stay identical; a checksum proves it every `check_interval` steps. With
/// `zero_stage = 1` each rank averages, clips and updates only its slice of the flat buffer and
/// holds only its slice of the AdamW moments; the slices are then all-gathered. Rank 0
/// alone evaluates into its reports (console, metrics.jsonl), samples and writes checkpoints,
/// and never while the others sit in a collective it has not entered.
public final class Trainer {
    public let cfg: TrainConfig
    public let comm: Communicator
    public let model: GPT
    public let optimizer: AdamW
    public let corpus: CorpusInfo
    public var step: Int { state.step }
    public var bestValLoss: Double { state.bestValLoss }
    private var state = TrainState()
    private let resumed: Bool
    private let schedule: LRSchedule
    private let source: BatchSource
    private let evaluator: Evaluator
    private let batch: TokenBatch
    private let store: CheckpointStore
    private let reports: [TrainEventSink]
    private let watchdog: Watchdog?
    /// cblas_sgemm GFLOP/s on this rank: the best seen by the calibrations at start-up and at each evaluation.
    private var sgemmGFLOPS: Double
    private var nonfiniteRun = 0

    // MARK: - Setup

    public init(config: TrainConfig, comm: Communicator = .world, resume: Bool = false) throws {
        cfg = config
        self.comm = comm
        // Every blocking MPI call is guarded too, at twice the limit: a backstop for calls
        // outside the training steps (start-up, shutdown); inside a step the step
        // watchdog fires first and names the ranks that did not arrive.
        comm.collectiveTimeout = config.collectiveTimeout > 0 ? 2 * config.collectiveTimeout : 0
        let resume = resume || config.initFrom == "resume"
        resumed = resume
        store = CheckpointStore(directory: config.outDir, keep: config.keepCheckpoints)
        let threads = RunSetup.setThreads(config, comm: comm)

        // Every input is checked before anything is written.
        let task = ArithmeticTask(config)
        let (corpus, windows, shards) = try task == nil ? RunSetup.openData(config, comm: comm)
            : (CorpusInfo.generated(name: "arithmetic task", tokenizer: ArithmeticVocabulary.tokenizer), nil, 1)
        self.corpus = corpus
        let (ckpt, startNotes) = try RunSetup.startingPoint(config, corpus: corpus, store: store, comm: comm, resume: resume)
        var notes = startNotes
        try Trainer.collective(comm) { if comm.isRoot { try RunSetup.prepareRunDirectory(config.outDir) } }

        // The model, optimizer and state at the starting point.
        let mc = try RunSetup.modelConfig(ckpt, config: config, corpus: corpus, comm: comm)
        let start = RunSetup.startingModel(mc, checkpoint: ckpt, config: config, comm: comm, resume: resume, notes: &notes)
        (model, optimizer, state) = (start.model, start.optimizer, start.state)
        schedule = config.lrSchedule

        // Batches, evaluation, reports.
        let placement = SamplePlacement(rank: comm.rank, accumulation: config.gradientAccumulationSteps,
                                        batch: config.batchSize, worldSize: comm.size)
        source = RunSetup.batchSource(config, task: task, windows: windows, placement: placement, comm: comm,
                                      torch: start.torch)
        batch = TokenBatch(B: config.batchSize, T: task?.rowLength ?? config.blockSize)
        model.reserve(B: batch.B, T: batch.T)
        evaluator = Evaluator(model: model, source: source, comm: comm, iters: config.evalIters, batch: batch)
        evaluator.accuracy = try task.map {
            try AccuracyEvaluator(task: $0, model: start.model, comm: comm, problems: config.taskTestProblems)
        }
        sgemmGFLOPS = RunSetup.calibrateSGEMM(C: mc.nEmbd, N: min(batch.B * batch.T, 2048))
        reports = try RunSetup.openReports(config, comm: comm, resume: resume, step: state.step)
        watchdog = try RunSetup.startWatchdog(config, comm: comm, reports: reports)
        for note in notes { try report(note) }
        try report(.started(RunDescription(config, model: model, corpus: corpus, shards: shards, comm: comm,
                                           threads: threads, step: state.step, resumed: resume)))
    }

    private func report(_ event: TrainEvent) throws {
        for r in reports { try r.handle(event) }
    }

    // MARK: - Training

    /// Trains from the current step to max_iters, evaluating and checkpointing on the way.
    public func run() throws {
        let B = batch.B, T = batch.T, accum = cfg.gradientAccumulationSteps
        let flopsPerStep = Bench.flopsPerToken(model.config, T: T) * Double(B * T * accum)
        let tokensPerStep = comm.size * accum * B * T
        let sync = GradientSync(comm: comm, grads: model.grads, count: model.parameterCount,
                                bucketFloats: max(1, cfg.bucketElements), overlap: cfg.overlapComm, zeroStage: cfg.zeroStage,
                                gatherParts: cfg.overlapGather ? model.parameterParts : nil)
        if sync.gatherParts != nil { model.awaitParameters = { sync.awaitParameters($0) } }
        defer {
            sync.completeGather()
            model.awaitParameters = nil
        }
        let killSwitch = try RunSetup.killSwitch(comm)
        var meter = ThroughputMeter()
        let firstStep = state.step
        comm.resetTiming()
        var lastLoss = Float.nan
        while true {
            let it = state.step
            source.beginStep(it)
            if it % cfg.evalInterval == 0 || it == cfg.maxIters || cfg.evalOnly {
                watchdog?.beginStep(it, phase: "evaluation")
                // A resumed run evaluated this step before it stopped.
                if resumed && it == firstStep && !cfg.evalOnly { source.skipEvaluation(step: it) } else { try evaluateAndCheckpoint(sync) }
                if cfg.evalOnly { break }
            }
            if it >= cfg.maxIters { break }

            killSwitch?.fire(rank: comm.rank, of: comm.size, step: it)
            watchdog?.beginStep(it + 1, phase: "forward/backward")
            let t0 = monotonicSeconds()
            let comm0 = comm.timing.exposedSeconds, background0 = comm.timing.backgroundSeconds
            let lr = schedule.lr(at: it)
            let loss = try forwardBackward(step: it, sync: sync)
            let norm = sync.globalNorm()
            try update(step: it, loss: loss, norm: norm, lr: lr, sync: sync)
            state.step = it + 1
            lastLoss = Float(loss)
            let dt = monotonicSeconds() - t0
            let dcomm = comm.timing.exposedSeconds - comm0, dbackground = comm.timing.backgroundSeconds - background0
            if it > firstStep { meter.add(seconds: dt, exposedComm: dcomm, backgroundComm: dbackground) }

            if cfg.checkInterval > 0 && state.step % cfg.checkInterval == 0 && comm.size > 1 {
                sync.completeGather()
                try ReplicaCheck.requireIdentical(ReplicaCheck.checksums(model, comm: comm), step: state.step)
            }
            try report(.step(StepReport(
                step: state.step, maxIters: cfg.maxIters, stepsThisRun: state.step - firstStep, loss: loss, lr: lr,
                gradNorm: norm, seconds: dt, tokensPerSecond: Double(tokensPerStep) / dt, worldSize: comm.size,
                sgemmRatio: flopsPerStep / dt / 1e9 / sgemmGFLOPS, commExposedSeconds: dcomm, commBackgroundSeconds: dbackground,
                logged: state.step % cfg.logInterval == 0 || state.step == cfg.maxIters)))
        }
        watchdog?.idle()
        sync.completeGather()
        try finish(meter: meter, tokensPerStep: tokensPerStep, overlapped: sync.reducer != nil, lastLoss: lastLoss)
    }

    /// The micro-steps of step `it`: forward and backward of each micro-batch, gradients
    /// accumulated and averaged over the ranks. Returns the step's mean loss over every rank.
    ///
    /// The loss is the mean over every target of the step: each micro-batch's mean weighs 1/accumulation,
    /// or, when batches hold different numbers of targets (a task's masks), its share of the step's targets.
    private func forwardBackward(step it: Int, sync: GradientSync) throws -> Double {
        let accum = cfg.gradientAccumulationSteps
        let stepTargets = source.targetCount(step: it)
        model.zeroGrad()
        var lossSum: Float = 0
        for m in 0..<accum {
            try source.fillTraining(batch, step: it, micro: m)
            let first = (comm.rank * accum + m) * batch.B
            model.dropoutSeed = SeedStream.dropout.seed(UInt64(cfg.seed), it, first)
            let loss = model.forward(inputs: batch.inputs, targets: batch.targets, B: batch.B, T: batch.T)
            // The ranks' gradients are averaged: a share of comm.size * count / stepTargets sums to the mean.
            let share = stepTargets.map { Float(comm.size * model.targetCount) / Float(max(1, $0)) } ?? 1 / Float(accum)
            lossSum += stepTargets == nil ? loss : loss * share
            let last = m == accum - 1
            if last && comm.size > 1 { watchdog?.enter("gradient allreduce") }
            if last && comm.size > 1 && cfg.overlapComm {
                model.backward(lossScale: share) { sync.ready($0) }
            } else {
                model.backward(lossScale: share)
            }
        }
        if comm.size > 1 { sync.finish() }
        let loss = Double(stepTargets == nil ? lossSum / Float(accum) : lossSum)
        return comm.size > 1 ? comm.allreduce(loss, op: .mean) : loss
    }

    /// The AdamW update of step `it`, unless its loss or gradient norm is not finite: then the
    /// step is skipped (`nonfinite = "skip"`, up to max_nonfinite_skips in a row) or the run stops.
    private func update(step it: Int, loss: Double, norm: Float, lr: Float, sync: GradientSync) throws {
        guard !norm.isFinite || !loss.isFinite else {
            nonfiniteRun = 0
            optimizer.step(params: model.params, grads: sync.shardGrads, lr: lr,
                           gradScale: clipCoefficient(norm: norm, maxNorm: Float(cfg.gradClip)))
            sync.gatherParameters(model.params)
            return
        }
        nonfiniteRun += 1
        state.nonfiniteSkipped += 1
        let stop = cfg.nonfinite == .stop || nonfiniteRun > cfg.maxNonfiniteSkips
        try report(.nonfinite(step: it + 1, loss: loss, gradNorm: Double(norm), inARow: nonfiniteRun, skipped: !stop))
        if stop {
            throw TrainError("non-finite loss (\(loss)) or gradient norm (\(norm)) at step \(it + 1)"
                + (cfg.nonfinite == .stop ? "" : " for \(nonfiniteRun) steps in a row")
                + "; lower learning_rate or check the data; the last good checkpoint is in \(cfg.outDir)")
        }
    }

    /// End of run: every rank's parameter checksum (stops if any differs), the throughput summary.
    private func finish(meter: ThroughputMeter, tokensPerStep: Int, overlapped: Bool, lastLoss: Float) throws {
        try report(.stepsFinished)
        let sums = ReplicaCheck.checksums(model, comm: comm)
        try report(.replicas(step: state.step, checksums: sums))
        try ReplicaCheck.requireIdentical(sums, step: state.step)
        if let summary = meter.summary(step: state.step, worldSize: comm.size, tokensPerStep: tokensPerStep,
                                       overlapped: overlapped, finalLoss: Double(lastLoss), bestValLoss: state.bestValLoss,
                                       nonfiniteSkipped: state.nonfiniteSkipped) {
            try report(.summary(summary))
        }
        for r in reports { r.close() }
    }

    // MARK: - Evaluation, sampling, checkpoints

    private func evaluateAndCheckpoint(_ sync: GradientSync) throws {
        sync.completeGather()  // the parameters of the last update, on every rank
        // Recalibrate: a machine that was busy at start-up must not inflate the ratio for the whole run.
        sgemmGFLOPS = max(sgemmGFLOPS, RunSetup.calibrateSGEMM(C: model.config.nEmbd, N: min(batch.B * batch.T, 2048)))
        let t0 = monotonicSeconds()
        let (trainLoss, valLoss) = try evaluator.estimateLoss(step: state.step)
        let accuracy = evaluator.accuracy?.evaluate()  // a collective, on every rank
        let isBest = valLoss < state.bestValLoss
        if isBest { state.bestValLoss = valLoss }
        try report(.evaluation(EvalReport(step: state.step, trainLoss: trainLoss, valLoss: valLoss,
                                          bestValLoss: state.bestValLoss, isBest: isBest, seconds: monotonicSeconds() - t0,
                                          accuracy: accuracy)))
        let willSave = state.step > 0 && (isBest || cfg.alwaysSaveCheckpoint) && !cfg.evalOnly
        let sourceState = willSave ? source.checkpointState() : [:]  // a collective, on every rank
        let moments = willSave ? sync.gatherMoments(optimizer) : nil  // rank 0's; a collective with zero_stage 1
        guard comm.isRoot, !cfg.evalOnly else { return }
        // Rank 0 alone from here: no collective until the next step's gradients.
        if cfg.sampleTokens > 0 {
            watchdog?.enter("sampling")
            let text = sample(tokens: cfg.sampleTokens, seed: SeedStream.evaluationSample.seed(UInt64(cfg.seed), state.step))
            try report(.sample(step: state.step, text: text))
        }
        if willSave {
            watchdog?.enter("checkpoint")
            var saved = state
            saved.sourceState = sourceState
            let t0 = monotonicSeconds()
            try store.save(saved.checkpoint(model: model, moments: moments!, config: cfg, tokenizer: corpus.tokenizer,
                                            worldSize: comm.size), isBest: isBest)
            try report(.checkpoint(step: state.step, path: store.path(step: state.step), best: isBest,
                                   seconds: monotonicSeconds() - t0))
        }
    }

    /// Text sampled from the current weights, starting from sample_prompt.
    public func sample(tokens: Int, seed: UInt64) -> String {
        var prompt = (try? corpus.tokenizer.encodeChecked(cfg.samplePrompt)) ?? []
        if prompt.isEmpty { prompt = [0] }
        let sampler = Sampler(model: model)
        // A task's sample ends with its answer.
        let stop = cfg.task == .none ? nil : ArithmeticVocabulary.endToken
        let out = sampler.generate(prompt: prompt, maxNewTokens: tokens, temperature: 1, topK: 200, seed: seed, stopAt: stop)
        return corpus.tokenizer.decode(prompt + out)
    }
}
