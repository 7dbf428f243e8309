import Foundation
import GPTComm
import GPTCore
import GPTData
import GPTSupport

/// `gpt train`: the data-parallel training loop.
///
/// Every rank holds the whole model, draws its own windows of the corpus,
/// runs forward and backward, and averages gradients with the other ranks
/// (bucket by bucket while backward still runs, when `overlap_comm`). Every
/// rank then applies the same AdamW update, so the replicas stay identical;
/// a checksum proves it every `check_interval` steps. Rank 0 alone writes
/// logs, samples and checkpoints, and never while the others sit in a
/// collective it has not entered.
public final class Trainer {
    public let cfg: TrainConfig
    public let comm: Communicator
    public let model: GPT
    public let optimizer: AdamW
    public let corpus: CorpusInfo
    public private(set) var step = 0
    public private(set) var bestValLoss = Double.infinity
    private let resumed: Bool
    private let schedule: LRSchedule
    private let trainWindows: WindowSampler
    private let evalTrain: WindowSampler
    private let evalVal: WindowSampler
    private let store: CheckpointStore
    private let log: MetricsLog?
    private let progress: ProgressLine?
    private let B: Int, T: Int, accum: Int
    private let inputs: UnsafeMutablePointer<Int32>
    private let targets: UnsafeMutablePointer<Int32>
    /// cblas_sgemm GFLOP/s on this rank: the best seen by the calibrations at start-up and at each evaluation.
    private var sgemmGFLOPS: Double
    private let watchdog: Watchdog?
    private var nonfiniteRun = 0
    private var nonfiniteTotal = 0
    /// rng = "torch": this rank's PyTorch stream, and where it stood when the current step began
    /// (what a checkpoint of this step stores).
    private var torchRNG: TorchGenerator?
    private var torchRNGAtStepStart: TorchGenerator?
    /// rng = "torch": the windows of micro-step 0, drawn before the step's evaluation as nanoGPT does.
    private var pendingStarts: [Int]?
    private var out: (String) -> Void = { print($0) }

    // MARK: - Setup

    public init(config: TrainConfig, comm: Communicator = .world, resume: Bool = false) throws {
        cfg = config
        self.comm = comm
        // Every blocking MPI call is guarded too, at twice the limit: a backstop for calls
        // outside the training steps (start-up, shutdown); inside a step the step
        // watchdog below fires first and names the ranks that did not arrive.
        comm.collectiveTimeout = config.collectiveTimeout > 0 ? 2 * config.collectiveTimeout : 0
        let resume = resume || config.initFrom == "resume"
        resumed = resume
        B = config.batchSize; T = config.blockSize; accum = config.gradientAccumulationSteps
        let store = CheckpointStore(directory: config.outDir, keep: config.keepCheckpoints)
        self.store = store

        // Threads: one knob for OpenBLAS and our loops.
        let envThreads = ProcessInfo.processInfo.environment["SWIFTGPT_THREADS"].flatMap { Int($0) }
        let threads = config.threads > 0 ? config.threads
            : envThreads ?? max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, comm.localSize))
        Parallel.setThreads(threads)

        // Everything the run reads is checked before anything is written, and every
        // check ends in a collective, so a bad input stops all ranks with one message.

        // The corpus: every rank opens it, checks the token ids of its own slice, and
        // sets up its windows.
        let shards = config.dataShards > 0 ? config.dataShards : comm.size
        let seed = UInt64(config.seed)
        var opened: CorpusInfo?
        var samplers: (train: WindowSampler, evalTrain: WindowSampler, evalVal: WindowSampler)?
        try Trainer.collective(comm, everyRank: true) {
            let info = try Trainer.openCorpus(config.dataset)
            let train = try TokenSource(path: config.dataset, split: .train)
            let val = try TokenSource(path: config.dataset, split: .val)
            try Trainer.checkTokenIDs(train, rank: comm.rank, world: comm.size)
            try Trainer.checkTokenIDs(val, rank: comm.rank, world: comm.size)
            opened = info
            let T = config.blockSize
            samplers = (try WindowSampler(source: train, blockSize: T, shards: shards, seed: seed),
                        try WindowSampler(source: try TokenSource(path: config.dataset, split: .train), blockSize: T,
                                          shards: 1, seed: seed),
                        try WindowSampler(source: val, blockSize: T, shards: 1, seed: seed))
        }
        guard let corpus = opened, let samplers else { preconditionFailure("the corpus collective returned without it") }
        self.corpus = corpus
        trainWindows = samplers.train
        evalTrain = samplers.evalTrain
        evalVal = samplers.evalVal

        // The starting point (a checkpoint read by rank 0 and broadcast, or fresh
        // weights), and the other inputs only rank 0 needs.
        var ckpt: Checkpoint?
        var notes: [String] = []
        try Trainer.collective(comm) {
            guard comm.isRoot else { return }
            if resume {
                let (c, path, skipped) = try store.loadNewestGood()
                for s in skipped { notes.append(s + "; falling back to the next newest checkpoint") }
                notes.append("resuming from \(path) at step \(c.step)")
                if let w = c.state["world_size"]?.first, Int(w) != comm.size {
                    notes.append("the checkpoint was written by \(w) rank(s) and this run has \(comm.size): training continues, "
                        + "but no longer bit-identically to an uninterrupted run (batch composition"
                        + (config.dataShards == 0 ? " and data shards" : "") + " differ)")
                }
                ckpt = c
            } else {
                if !config.evalOnly && store.hasCheckpoints {
                    throw TrainError("out_dir \(config.outDir) already holds the checkpoints of a run; continue it with "
                        + "--resume (or init_from = \"resume\"), or choose another out_dir for a new run")
                }
                if config.initFrom != "scratch" {
                    let c = try Trainer.readInitFrom(config.initFrom)
                    notes.append("initialising from \(config.initFrom) (step \(c.step)); fresh optimizer and schedule")
                    ckpt = c
                }
            }
            if let c = ckpt { try Trainer.checkCompatible(c, corpus: corpus, config: config, resume: resume, notes: &notes) }
            if config.sampleTokens > 0 {
                do {
                    _ = try corpus.tokenizer.encodeChecked(config.samplePrompt)
                } catch {
                    throw TrainError("sample_prompt: \(error) (corpus \(config.dataset)); change sample_prompt to "
                        + "characters of the training text, or set sample_tokens = 0")
                }
            }
        }

        // The run directory, once every input is known to be good.
        try Trainer.collective(comm) {
            guard comm.isRoot else { return }
            try Trainer.prepareRunDirectory(config.outDir)
        }

        let modelJSON = comm.broadcast(ckpt.map { String(decoding: try! JSONEncoder().encode($0.modelConfig), as: UTF8.self) } ?? "")
        var mc = modelJSON.isEmpty ? config.modelConfig(vocabSize: corpus.vocabSize)
            : try JSONDecoder().decode(GPTConfig.self, from: Data(modelJSON.utf8))
        mc.dropout = Float(config.dropout)
        let model = GPT(config: mc, seed: seed)
        if config.rng == .torch {
            // As nanoGPT: torch.manual_seed(seed + rank), the model's own draws, then the batches.
            // Every rank draws its init (to move its stream); rank 0's weights are broadcast below.
            var g = TorchGenerator(seed: seed &+ UInt64(comm.rank))
            model.initializeAsNanoGPT(&g)
            torchRNG = g
        }
        let optimizer = AdamW(layout: model.layout, beta1: Float(config.beta1), beta2: Float(config.beta2),
                              weightDecay: Float(config.weightDecay))
        self.model = model
        self.optimizer = optimizer
        let n = model.parameterCount
        if let c = ckpt {
            c.parameters.withUnsafeBufferPointer { model.params.update(from: $0.baseAddress!, count: n) }
            if resume, let m = c.adamM, let v = c.adamV {
                m.withUnsafeBufferPointer { optimizer.m.update(from: $0.baseAddress!, count: n) }
                v.withUnsafeBufferPointer { optimizer.v.update(from: $0.baseAddress!, count: n) }
            }
        }
        if comm.size > 1 {
            comm.broadcast(model.params, count: n)
            comm.broadcast(optimizer.m, count: n)
            comm.broadcast(optimizer.v, count: n)
        }
        if resume {
            step = comm.broadcast(ckpt?.step ?? 0)
            let best = [ckpt?.bestValLoss ?? .infinity]
            var b = best
            comm.broadcast(&b, count: 1)
            bestValLoss = b[0]
            optimizer.t = step
            if config.rng == .torch {
                torchRNG = Trainer.restoredTorchStream(ckpt, comm: comm, seed: seed, step: step, notes: &notes)
            }
        }
        schedule = LRSchedule(learningRate: Float(config.learningRate), minLR: Float(config.minLR),
                              warmupIters: config.warmupIters, decayIters: config.lrDecayIters, decay: config.decayLR)
        inputs = .allocate(capacity: B * T)
        targets = .allocate(capacity: B * T)
        model.reserve(B: B, T: T)
        sgemmGFLOPS = Trainer.calibrateSGEMM(C: mc.nEmbd, N: min(B * T, 2048))

        var rootLog: MetricsLog?
        let resumeStep = step
        try Trainer.collective(comm) {
            guard comm.isRoot else { return }
            let l = try MetricsLog(directory: config.outDir)
            if resume { try l.truncate(afterStep: resumeStep) }
            rootLog = l
            try AtomicFile.write(to: config.outDir + "/config.toml") { tmp in
                // (Foundation's atomic write leaves an empty directory in /tmp on Linux.)
                guard FileManager.default.createFile(atPath: tmp, contents: Data(config.toTOML().utf8)) else {
                    throw TrainError("cannot write \(tmp)")
                }
            }
        }
        log = rootLog
        progress = comm.isRoot ? ProgressLine(total: max(1, config.maxIters - step), label: "train") : nil
        if let p = progress { out = { p.log($0) } }
        if config.collectiveTimeout > 0 {
            let w = Watchdog(timeout: config.collectiveTimeout, rank: comm.rank, size: comm.size)
            if comm.size > 1 {
                let root = comm.broadcast(comm.isRoot ? w.listen() : "", root: 0)
                if !comm.isRoot { w.connect(to: root) }
            }
            if let log = log {
                // The main thread is stuck when this runs: the one write to the log is safe.
                w.onFire = { message in try? log.log("watchdog", step: -1, ["message": .string(message)]) }
            }
            w.start()
            watchdog = w
        } else {
            watchdog = nil
        }
        for note in notes { say(note) }
        let pc = model.layout
        say(String(format: "model: %d layers, %d heads, %d wide, block %d, vocab %d: %.2fM parameters (%.2fM non-embedding)",
                   mc.nLayer, mc.nHead, mc.nEmbd, mc.blockSize, mc.vocabSize, Double(pc.count) / 1e6,
                   Double(pc.nonEmbeddingCount) / 1e6))
        say("data: \(config.dataset): \(formatCount(corpus.trainTokens)) train, \(formatCount(corpus.valTokens)) val tokens "
            + "(\(corpus.tokenizer.kind) tokenizer); \(shards) shard(s)")
        say("world: \(comm.size) rank(s) on \(comm.nodeCount) node(s), \(threads) thread(s) per rank; "
            + "\(config.tokensPerIteration(worldSize: comm.size)) tokens per step "
            + "(\(comm.size) ranks x \(accum) micro-steps x \(B) x \(T)); overlap_comm \(config.overlapComm)")
        say("blas: " + BLASKernel.summary)
        if config.rng == .torch {
            say("rng: torch: PyTorch's generator seeded with \(config.seed) + rank, drawn from as nanoGPT's train.py draws "
                + "(initial weights, then one torch.randint per window)")
        }
        try logEvent("info", step: step, ["world": .int(comm.size), "threads": .int(threads), "parameters": .int(pc.count),
                                          "tokens_per_step": .int(config.tokensPerIteration(worldSize: comm.size)),
                                          "resumed": .bool(resume), "openblas_kernel": .string(BLASKernel.current),
                                          "rng": .string(config.rng.rawValue)])
    }

    deinit {
        inputs.deallocate()
        targets.deallocate()
    }

    private func say(_ line: String) { if comm.isRoot { out(line) } }

    private func logEvent(_ event: String, step: Int, _ fields: [String: MetricValue]) throws {
        try log?.log(event, step: step, fields)
    }

    /// Runs `body` (on rank 0 only, unless `everyRank`), then makes every rank
    /// agree on whether it failed, so no rank is left waiting for a peer that quit.
    ///
    /// The error every rank then throws is a `TrainError` with `everyRank` set.
    public static func collective(_ comm: Communicator, everyRank: Bool = false, _ body: () throws -> Void) throws {
        var message = ""
        do { try body() } catch { message = TrainError.oneLine("\(error)") }
        if comm.size == 1 {
            if !message.isEmpty { throw TrainError(message, everyRank: true) }
            return
        }
        let all = everyRank ? comm.allgather(message) : [comm.broadcast(message, root: 0)]
        if let first = all.first(where: { !$0.isEmpty }) { throw TrainError(first, everyRank: true) }
    }

    static func prepareRunDirectory(_ dir: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory), !isDirectory.boolValue {
            throw TrainError("out_dir \(dir) is a file, not a directory; choose a writable directory for out_dir")
        }
        if mkdirs(dir) != 0 {
            throw TrainError("cannot create out_dir \(dir): \(String(cString: strerror(errno))); "
                + "choose a writable directory for out_dir")
        }
        let probe = dir + "/.write-test-\(getpid())"
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else {
            throw TrainError("out_dir \(dir) is not writable (\(String(cString: strerror(errno)))); "
                + "choose a writable directory for out_dir")
        }
        close(fd)
        unlink(probe)
    }

    /// mkdir -p: 0 on success (or when the directory exists), else -1 with errno set.
    private static func mkdirs(_ dir: String) -> Int32 {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: dir, isDirectory: &isDirectory) {
            if isDirectory.boolValue { return 0 }
            errno = ENOTDIR
            return -1
        }
        let parent = (dir as NSString).deletingLastPathComponent
        if !parent.isEmpty && parent != dir && mkdirs(parent) != 0 { return -1 }
        return mkdir(dir, 0o755) == 0 || errno == EEXIST ? 0 : -1
    }

    /// The corpus at `path`, its attributes and datasets checked, or an error saying how to get a good one.
    static func openCorpus(_ path: String) throws -> CorpusInfo {
        let hint = "set dataset to a corpus file made by `gpt prepare`"
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainError("dataset \(path) not found; \(hint)")
        }
        do {
            return try CorpusFile.open(path)
        } catch {
            // Messages about the file's contents often say already how to prepare it again.
            throw TrainError(error, about: "dataset ", hint: "\(error)".contains("prepare") ? nil : hint)
        }
    }

    /// Checks that every token id of this rank's slice of `source` is below vocab_size, so
    /// the model never sees an id it has no embedding for (the ranks share the work).
    static func checkTokenIDs(_ source: TokenSource, rank: Int, world: Int) throws {
        let slice = source.shard(rank: rank, world: world)
        let chunk = 1 << 20
        let buffer = UnsafeMutablePointer<Int32>.allocate(capacity: chunk)
        defer { buffer.deallocate() }
        var offset = slice.lowerBound
        do {
            while offset < slice.upperBound {
                let n = min(chunk, slice.upperBound - offset)
                try source.read(offset: offset, count: n, into: buffer)
                offset += n
            }
        } catch {
            throw TrainError(error, about: "dataset ", hint: "prepare the corpus again with `gpt prepare`")
        }
    }

    /// rng = "torch", resuming: this rank's PyTorch stream as the checkpoint saved it (rank 0
    /// reads the checkpoint and sends every rank its own), or, when the checkpoint holds none or
    /// holds another number of ranks', a fresh stream seeded from (seed, step, rank).
    static func restoredTorchStream(_ ckpt: Checkpoint?, comm: Communicator, seed: UInt64, step: Int,
                                    notes: inout [String]) -> TorchGenerator {
        var words = ckpt?.state[torchStreamsKey] ?? []
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
            notes.append(count == 0 ? "the checkpoint holds no PyTorch random streams (it was written with rng = \"counter\"): "
                + "new streams from here on" : "the checkpoint holds the PyTorch random streams of \(count / W) rank(s): "
                + "new streams from here on")
        }
        return TorchGenerator(seed: deriveSeed(seed, 6, step, comm.rank))
    }

    /// Checkpoint state key of the ranks' PyTorch streams (rng = "torch"), rank after rank.
    static let torchStreamsKey = "torch_rng"

    /// The checkpoint named by init_from, or an error saying what init_from must name.
    static func readInitFrom(_ path: String) throws -> Checkpoint {
        let hint = "set init_from to a checkpoint written by `gpt train` (a run's ckpt_*.h5 or latest.h5), "
            + "\"scratch\" or \"resume\""
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainError("init_from checkpoint \(path) not found; \(hint)")
        }
        do {
            return try Checkpoint.read(from: path, includeOptimizer: false)
        } catch {
            throw TrainError(error, about: "init_from ", hint: hint)
        }
    }

    static func checkCompatible(_ c: Checkpoint, corpus: CorpusInfo, config: TrainConfig, resume: Bool,
                                notes: inout [String]) throws {
        if c.modelConfig.vocabSize != corpus.vocabSize || c.tokenizerKind != corpus.tokenizer.kind
            || c.tokenizer != corpus.tokenizer.serialized() {
            throw TrainError("the corpus \(corpus.path) was made with a different tokenizer (\(corpus.tokenizer.kind), vocab "
                + "\(corpus.vocabSize)) than the checkpoint (\(c.tokenizerKind), vocab \(c.modelConfig.vocabSize)); "
                + "prepare the corpus with the checkpoint's tokenizer")
        }
        let mine = config.modelConfig(vocabSize: corpus.vocabSize)
        let theirs = c.modelConfig
        var diffs: [String] = []
        if mine.nLayer != theirs.nLayer { diffs.append("n_layer \(mine.nLayer) vs \(theirs.nLayer)") }
        if mine.nHead != theirs.nHead { diffs.append("n_head \(mine.nHead) vs \(theirs.nHead)") }
        if mine.nEmbd != theirs.nEmbd { diffs.append("n_embd \(mine.nEmbd) vs \(theirs.nEmbd)") }
        if mine.blockSize != theirs.blockSize { diffs.append("block_size \(mine.blockSize) vs \(theirs.blockSize)") }
        if mine.bias != theirs.bias { diffs.append("bias \(mine.bias) vs \(theirs.bias)") }
        if mine.tieWeights != theirs.tieWeights { diffs.append("tie_weights \(mine.tieWeights) vs \(theirs.tieWeights)") }
        guard !diffs.isEmpty else { return }
        if resume {
            throw TrainError("the checkpoint's architecture differs from the config (config vs checkpoint: "
                + diffs.joined(separator: ", ") + "); resume with the config the run was started with "
                + "(saved as \(config.outDir)/config.toml)")
        }
        // Finetuning keeps the checkpoint's model, which takes windows up to its own block_size.
        if config.blockSize > theirs.blockSize {
            throw TrainError("block_size \(config.blockSize) is larger than the block_size \(theirs.blockSize) of the "
                + "init_from checkpoint's model; set block_size to at most \(theirs.blockSize)")
        }
        notes.append("using the checkpoint's architecture (config vs checkpoint: " + diffs.joined(separator: ", ") + ")")
    }

    /// GFLOP/s of cblas_sgemm on this rank for a (N x C) @ (C x 4C) product: the
    /// denominator of the MFU-style ratio ("fraction of what BLAS does here").
    static func calibrateSGEMM(C: Int, N: Int) -> Double {
        let g = Bench.Gemm(name: "calibration", transA: false, transB: true, M: N, N: 4 * C, K: C, count: 1)
        // Best of three short runs: a busy machine at startup must not inflate the ratio.
        return Bench.runGemms([g], minSeconds: 0.05, rounds: 3)[0].gflops
    }

    // MARK: - Training

    /// Trains from the current step to max_iters, evaluating and checkpointing on the way.
    public func run() throws {
        let flopsPerStep = Bench.flopsPerToken(model.config, T: T) * Double(B * T * accum)
        let samplesPerStep = comm.size * accum * B
        let sync = GradientSync(comm: comm, grads: model.grads, count: model.parameterCount,
                                bucketFloats: max(1, cfg.bucketElements), overlap: cfg.overlapComm)
        let killSwitch = try Trainer.killSwitch(comm)
        var computeSeconds = 0.0, commSeconds = 0.0, backgroundSeconds = 0.0, timedSteps = 0
        let firstStep = step
        comm.resetTiming()
        var lastLoss = Float.nan
        while true {
            let it = step
            if torchRNG != nil {
                // nanoGPT draws the batch of a step's first micro-step before that step's evaluation.
                torchRNGAtStepStart = torchRNG
                pendingStarts = trainingStarts(step: it, micro: 0, samplesPerStep: samplesPerStep)
            }
            if it % cfg.evalInterval == 0 || it == cfg.maxIters || cfg.evalOnly {
                watchdog?.beginStep(it, phase: "evaluation")
                if !(resumed && it == firstStep && !cfg.evalOnly) {
                    try evaluateAndCheckpoint()
                } else if torchRNG != nil && comm.isRoot {
                    _ = drawTorchEvalStarts()  // the evaluation this step had before the resume: its draws
                }
                if cfg.evalOnly { break }
            }
            if it >= cfg.maxIters { break }

            killSwitch?.fire(rank: comm.rank, of: comm.size, step: it)
            watchdog?.beginStep(it + 1, phase: "forward/backward")
            let t0 = monotonicSeconds()
            let comm0 = comm.timing.exposedSeconds, background0 = comm.timing.backgroundSeconds
            let lr = schedule.lr(at: it)
            model.zeroGrad()
            var lossSum: Float = 0
            for m in 0..<accum {
                let first = (comm.rank * accum + m) * B
                let starts = m == 0 ? pendingStarts : nil
                pendingStarts = nil
                try trainWindows.fill(inputs: inputs, targets: targets,
                                      starts: starts ?? trainingStarts(step: it, micro: m, samplesPerStep: samplesPerStep))
                model.dropoutSeed = deriveSeed(UInt64(cfg.seed), 4, it, first)
                lossSum += model.forward(inputs: inputs, targets: targets, B: B, T: T)
                let last = m == accum - 1
                if last && comm.size > 1 { watchdog?.enter("gradient allreduce") }
                if last && comm.size > 1 && cfg.overlapComm {
                    model.backward(lossScale: 1 / Float(accum)) { sync.ready($0) }
                } else {
                    model.backward(lossScale: 1 / Float(accum))
                }
            }
            if comm.size > 1 { sync.finish() }
            var loss = Double(lossSum / Float(accum))
            if comm.size > 1 { loss = comm.allreduce(loss, op: .mean) }
            let norm = clipGradients(model.grads, count: model.parameterCount, maxNorm: Float(cfg.gradClip))
            if !norm.isFinite || !loss.isFinite {
                nonfiniteRun += 1
                nonfiniteTotal += 1
                try logEvent("nonfinite", step: it + 1, ["loss": .double(loss), "grad_norm": .double(Double(norm)),
                                                         "skipped_in_a_row": .int(nonfiniteRun)])
                if cfg.nonfinite == .stop || nonfiniteRun > cfg.maxNonfiniteSkips {
                    throw TrainError("non-finite loss (\(loss)) or gradient norm (\(norm)) at step \(it + 1)"
                        + (cfg.nonfinite == .stop ? "" : " for \(nonfiniteRun) steps in a row")
                        + "; lower learning_rate or check the data; the last good checkpoint is in \(cfg.outDir)")
                }
                say("step \(it + 1): non-finite loss or gradient norm, update skipped (\(nonfiniteRun) in a row)")
            } else {
                nonfiniteRun = 0
                optimizer.step(params: model.params, grads: model.grads, lr: lr)
            }
            step = it + 1
            lastLoss = Float(loss)
            let dt = monotonicSeconds() - t0
            let dcomm = comm.timing.exposedSeconds - comm0
            let dbackground = comm.timing.backgroundSeconds - background0
            if it > firstStep {
                computeSeconds += dt - dcomm; commSeconds += dcomm; backgroundSeconds += dbackground; timedSteps += 1
            }

            if cfg.checkInterval > 0 && step % cfg.checkInterval == 0 && comm.size > 1 { try checkReplicas() }

            let tokensPerSecond = Double(samplesPerStep * T) / dt
            let ratio = flopsPerStep / dt / 1e9 / sgemmGFLOPS
            progress?.update(step: step - firstStep, extra: String(format: "loss %.4f", loss))
            if step % cfg.logInterval == 0 || step == cfg.maxIters {
                say(String(format: "step %d/%d | loss %.4f | lr %.2e | norm %.3f | %.1f ms/step | %@ tok/s | %.1f%% of sgemm",
                           step, cfg.maxIters, loss, lr, norm, dt * 1e3,
                           formatCount(Int(tokensPerSecond)) as NSString, 100 * ratio))
                try logEvent("train", step: step, ["loss": .double(loss), "lr": .double(Double(lr)), "grad_norm": .double(Double(norm)),
                                                   "ms_per_step": .double(dt * 1e3), "tokens_per_s": .double(tokensPerSecond),
                                                   "tokens_per_s_per_rank": .double(tokensPerSecond / Double(comm.size)),
                                                   "sgemm_ratio": .double(ratio), "comm_exposed_ms": .double(dcomm * 1e3),
                                                   "comm_background_ms": .double(dbackground * 1e3)])
            }
        }
        watchdog?.idle()
        progress?.finish()
        try reportReplicas()
        if timedSteps > 0 {
            let perStep = (computeSeconds + commSeconds) / Double(timedSteps)
            let total = Double(samplesPerStep * T) / perStep
            let overlapNote = sync.reducer == nil ? ""
                : String(format: " (%.1f ms of allreduce on the communication thread during backward)",
                         1e3 * backgroundSeconds / Double(timedSteps))
            say(String(format: "throughput: %@ tokens/s in total, %@ per rank; per step %.1f ms compute, %.1f ms communication not hidden by overlap%@",
                       formatCount(Int(total)) as NSString, formatCount(Int(total / Double(comm.size))) as NSString,
                       1e3 * computeSeconds / Double(timedSteps), 1e3 * commSeconds / Double(timedSteps), overlapNote as NSString))
            try logEvent("summary", step: step, ["tokens_per_s": .double(total), "tokens_per_s_per_rank": .double(total / Double(comm.size)),
                                                 "compute_ms_per_step": .double(1e3 * computeSeconds / Double(timedSteps)),
                                                 "exposed_comm_ms_per_step": .double(1e3 * commSeconds / Double(timedSteps)),
                                                 "background_comm_ms_per_step": .double(1e3 * backgroundSeconds / Double(timedSteps)),
                                                 "ms_per_step": .double(1e3 * perStep),
                                                 "final_loss": .double(Double(lastLoss)), "best_val_loss": .double(bestValLoss),
                                                 "nonfinite_skipped": .int(nonfiniteTotal)])
        }
        log?.close()
    }

    // MARK: - Evaluation, sampling, checkpoints

    /// Mean loss over eval_iters batches of a split, spread over the ranks and summed.
    public func estimateLoss() throws -> (train: Double, val: Double) {
        model.training = false
        defer { model.training = true }
        // rng = "torch": rank 0 draws every window from its stream, as nanoGPT's master process does.
        var table: [Int] = []
        if torchRNG != nil {
            table = comm.isRoot ? drawTorchEvalStarts() : [Int](repeating: 0, count: 2 * cfg.evalIters * B)
            if comm.size > 1 { table.withUnsafeMutableBufferPointer { comm.broadcast($0.baseAddress!, count: $0.count) } }
        }
        var sums = [0.0, 0.0, 0.0, 0.0]
        for (i, sampler) in [evalTrain, evalVal].enumerated() {
            for k in stride(from: comm.rank, to: cfg.evalIters, by: comm.size) {
                let starts = table.isEmpty ? (0..<B).map { sampler.evalStart(step: step, batch: k, row: $0) }
                    : Array(table[((i * cfg.evalIters + k) * B)..<((i * cfg.evalIters + k + 1) * B)])
                try sampler.fill(inputs: inputs, targets: targets, starts: starts)
                sums[2 * i] += Double(model.forward(inputs: inputs, targets: targets, B: B, T: T))
                sums[2 * i + 1] += 1
            }
        }
        if comm.size > 1 { comm.allreduce(&sums, count: 4, op: .sum) }
        return (sums[0] / sums[1], sums[2] / sums[3])
    }

    /// The window starts of micro-step `m` of step `it` on this rank: functions of (seed, step,
    /// sample), or (rng = "torch") the next draws of this rank's stream.
    private func trainingStarts(step it: Int, micro m: Int, samplesPerStep: Int) -> [Int] {
        let first = (comm.rank * accum + m) * B
        guard var g = torchRNG else {
            return (0..<B).map { trainWindows.trainingStart(step: it, sample: first + $0, samplesPerStep: samplesPerStep) }
        }
        defer { torchRNG = g }
        return (0..<B).map { trainWindows.trainingStart(sample: first + $0, samplesPerStep: samplesPerStep, generator: &g) }
    }

    /// rng = "torch": the starts of every evaluation window, eval_iters batches of the train split
    /// then of the val split, drawn from this rank's stream in nanoGPT's order.
    private func drawTorchEvalStarts() -> [Int] {
        guard var g = torchRNG else { return [] }
        var starts: [Int] = []
        starts.reserveCapacity(2 * cfg.evalIters * B)
        for sampler in [evalTrain, evalVal] {
            for _ in 0..<(cfg.evalIters * B) { starts.append(sampler.evalStart(generator: &g)) }
        }
        torchRNG = g
        return starts
    }

    private func evaluateAndCheckpoint() throws {
        // Recalibrate: a machine that was busy at start-up must not inflate the ratio for the whole run.
        sgemmGFLOPS = max(sgemmGFLOPS, Trainer.calibrateSGEMM(C: model.config.nEmbd, N: min(B * T, 2048)))
        let t0 = monotonicSeconds()
        let (trainLoss, valLoss) = try estimateLoss()
        let isBest = valLoss < bestValLoss
        if isBest { bestValLoss = valLoss }
        say(String(format: "step %d: train loss %.4f, val loss %.4f%@ (%.1fs)", step, trainLoss, valLoss,
                   (isBest ? " (best)" : "") as NSString, monotonicSeconds() - t0))
        try logEvent("eval", step: step, ["train_loss": .double(trainLoss), "val_loss": .double(valLoss),
                                          "best_val_loss": .double(bestValLoss)])
        let willSave = step > 0 && (isBest || cfg.alwaysSaveCheckpoint) && !cfg.evalOnly
        // rng = "torch": every rank's stream as it stood when this step began (one collective, on every rank).
        let streams = willSave ? torchRNGAtStepStart.map { comm.allgather($0.words).flatMap { $0 } } : nil
        guard comm.isRoot, !cfg.evalOnly else { return }
        // Rank 0 alone from here: no collective until the next step's gradients.
        if cfg.sampleTokens > 0 {
            watchdog?.enter("sampling")
            let text = sample(tokens: cfg.sampleTokens, seed: deriveSeed(UInt64(cfg.seed), 3, step))
            say("sample at step \(step):\n" + text + "\n---")
            try logEvent("sample", step: step, ["text": .string(text)])
        }
        if willSave {
            watchdog?.enter("checkpoint")
            try saveCheckpoint(isBest: isBest, torchStreams: streams)
        }
    }

    /// Text sampled from the current weights, starting from sample_prompt.
    public func sample(tokens: Int, seed: UInt64) -> String {
        var prompt = (try? corpus.tokenizer.encodeChecked(cfg.samplePrompt)) ?? []
        if prompt.isEmpty { prompt = [0] }
        let sampler = Sampler(model: model)
        let out = sampler.generate(prompt: prompt, maxNewTokens: tokens, temperature: 1, topK: 200, seed: seed)
        return corpus.tokenizer.decode(prompt + out)
    }

    private func saveCheckpoint(isBest: Bool, torchStreams: [UInt64]?) throws {
        let n = model.parameterCount
        let ckpt = Checkpoint(modelConfig: model.config,
                              parameters: Array(UnsafeBufferPointer(start: model.params, count: n)),
                              adamM: Array(UnsafeBufferPointer(start: optimizer.m, count: n)),
                              adamV: Array(UnsafeBufferPointer(start: optimizer.v, count: n)),
                              step: step, tokenizerKind: corpus.tokenizer.kind, tokenizer: corpus.tokenizer.serialized(),
                              runConfig: cfg.toTOML(), bestValLoss: bestValLoss.isFinite ? bestValLoss : nil,
                              state: ["world_size": [UInt64(comm.size)], "seed": [UInt64(cfg.seed)]]
                                .merging(torchStreams.map { [Trainer.torchStreamsKey: $0] } ?? [:]) { a, _ in a },
                              scalars: ["nonfinite_skipped": Double(nonfiniteTotal)])
        let t0 = monotonicSeconds()
        try store.save(ckpt, isBest: isBest)
        say(String(format: "checkpoint %@ (%.1fs)%@", store.path(step: step) as NSString, monotonicSeconds() - t0,
                   (isBest ? ", best so far" : "") as NSString))
        try logEvent("checkpoint", step: step, ["path": .string(store.path(step: step)), "best": .bool(isBest)])
    }

    /// Stops the run if any rank's parameters differ from rank 0's.
    private func checkReplicas() throws {
        let sum = parameterChecksum(model.params, count: model.parameterCount)
        try Trainer.requireIdentical(comm.allgather(sum), step: step)
    }

    /// End of run: every rank's parameter checksum, logged by rank 0 (event "replicas"); stops if any differs.
    private func reportReplicas() throws {
        let sums = comm.allgather(parameterChecksum(model.params, count: model.parameterCount))
        let hex = sums.map { String(format: "%016llx", $0) }
        try logEvent("replicas", step: step, ["checksums": .string(hex.joined(separator: " ")), "ranks": .int(comm.size),
                                              "identical": .bool(Set(sums).count == 1)])
        try Trainer.requireIdentical(sums, step: step)
    }

    private static func requireIdentical(_ sums: [UInt64], step: Int) throws {
        let bad = sums.indices.filter { sums[$0] != sums[0] }
        if !bad.isEmpty {
            throw TrainError("replicas diverged at step \(step): ranks \(bad.map(String.init).joined(separator: ", ")) hold "
                + "parameters different from rank 0's; this is a bug or a faulty node, restart from the last checkpoint")
        }
    }

    /// The failure-drill hook (SWIFTGPT_TEST_KILL_RANK / _STEP), checked on every rank alike.
    private static func killSwitch(_ comm: Communicator) throws -> KillSwitch? {
        var hook: KillSwitch?
        try collective(comm, everyRank: true) {
            do { hook = try KillSwitch.fromEnvironment() } catch { throw TrainError("\(error)") }
            if let h = hook, h.rank >= comm.size {
                throw TrainError("SWIFTGPT_TEST_KILL_RANK=\(h.rank) is not a rank: the world has \(comm.size) rank(s), "
                    + "0...\(comm.size - 1)")
            }
        }
        return hook
    }
}

/// A 64-bit checksum of a float buffer's exact bits (order-sensitive).
public func parameterChecksum(_ p: UnsafePointer<Float>, count: Int) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15
    var i = 0
    p.withMemoryRebound(to: UInt32.self, capacity: count) { bits in
        while i < count {
            h = mix64(h ^ (UInt64(bits[i]) &+ UInt64(i) << 32))
            i += 1
        }
    }
    return h
}

// MARK: - Gradient averaging

/// Averages gradients across ranks: either one blocking allreduce after
/// backward, or (overlap) buckets handed to a communication thread as backward
/// finishes them, last block first, as PyTorch DDP and Horovod do.
///
/// Both paths sum over ranks and then divide each element by the number of
/// ranks; only the order in which MPI adds the ranks' values may differ.
final class GradientSync {
    let comm: Communicator
    let grads: UnsafeMutablePointer<Float>
    let count: Int
    let bucketFloats: Int
    /// The communication thread (overlap in a world of more than one rank), else nil.
    let reducer: BackgroundAllreducer?
    private var pending: Range<Int>?
    private var launched = false
    private var covered = 0

    init(comm: Communicator, grads: UnsafeMutablePointer<Float>, count: Int, bucketFloats: Int, overlap: Bool) {
        self.comm = comm; self.grads = grads; self.count = count
        self.bucketFloats = bucketFloats
        reducer = overlap && comm.size > 1 ? BackgroundAllreducer(communicator: comm) : nil
    }

    /// Backward finished `r`; ranges arrive from the end of the buffer to its start, adjacent.
    ///
    /// Called between layers of backward: no MPI call here (the communication thread owns MPI
    /// from the first bucket until `finish()`).
    func ready(_ r: Range<Int>) {
        guard let reducer else { return }
        launched = true
        covered += r.count
        let merged = pending.map { r.lowerBound..<$0.upperBound } ?? r
        if merged.count >= bucketFloats {
            reducer.start(grads + merged.lowerBound, count: merged.count)
            pending = nil
        } else {
            pending = merged
        }
    }

    /// Completes the averaging: waits for the communication thread, or does the blocking allreduce.
    func finish() {
        if let reducer, launched {
            if let p = pending { reducer.start(grads + p.lowerBound, count: p.count) }
            reducer.finish()
            precondition(covered == count, "backward reported \(covered) of \(count) gradients as ready")
            pending = nil
            launched = false
            covered = 0
        } else {
            comm.allreduce(grads, count: count, op: .mean)
        }
    }
}
