import Foundation
import GPTComm
import GPTCore
import GPTData

// MARK: - Collectives over fallible work

extension Trainer {
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

}

// MARK: - Inputs, checked before anything is written

/// The checks and preparations a run makes before it trains: every input is checked before
/// anything is written, and every check ends in a collective, so a bad input stops all
/// ranks with one message.
enum RunSetup {
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
                                notes: inout [TrainEvent]) throws {
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
        diffs += architectureDifferences(mine, theirs)
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
        notes.append(.note("using the checkpoint's architecture (config vs checkpoint: " + diffs.joined(separator: ", ") + ")"))
    }

    /// The architecture options in which `mine` (the config) differs from `theirs` (a checkpoint's
    /// model), as "key mine vs theirs"; rope_base and swiglu_multiple only where they are used.
    static func architectureDifferences(_ mine: GPTConfig, _ theirs: GPTConfig) -> [String] {
        var d: [String] = []
        func differ<T: Equatable>(_ key: String, _ a: T, _ b: T) { if a != b { d.append("\(key) \(a) vs \(b)") } }
        differ("norm", mine.norm.rawValue, theirs.norm.rawValue)
        differ("position", mine.position.rawValue, theirs.position.rawValue)
        if mine.position == .rope && theirs.position == .rope { differ("rope_base", mine.ropeBase, theirs.ropeBase) }
        differ("mlp", mine.mlp.rawValue, theirs.mlp.rawValue)
        if mine.mlp == .swiglu && theirs.mlp == .swiglu {
            differ("swiglu hidden width", mine.swigluHidden, theirs.swigluHidden)
        }
        differ("qk_norm", mine.qkNorm, theirs.qkNorm)
        return d
    }

    /// GFLOP/s of the GEMM kernel (`gemm`) on this rank for a (N x C) @ (C x 4C) product: the
    /// denominator of the MFU-style ratio ("fraction of what the GEMM does here").
    static func calibrateSGEMM(C: Int, N: Int) -> Double {
        let g = Bench.Gemm(name: "calibration", transA: false, transB: true, M: N, N: 4 * C, K: C, count: 1)
        // Best of three short runs: a busy machine at startup must not inflate the ratio.
        return Bench.runGemms([g], minSeconds: 0.05, rounds: 3)[0].gflops
    }

    // MARK: Set-up steps, in the order the trainer takes them

    /// Threads per rank, set for OpenBLAS and our loops alike: `threads`, else SWIFTGPT_THREADS,
    /// else the node's cores shared by the ranks on the node.
    static func setThreads(_ config: TrainConfig, comm: Communicator) -> Int {
        let envThreads = ProcessInfo.processInfo.environment["SWIFTGPT_THREADS"].flatMap { Int($0) }
        let threads = config.threads > 0 ? config.threads
            : envThreads ?? max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, comm.localSize))
        Parallel.setThreads(threads)
        return threads
    }

    /// The corpus, opened on every rank, the token ids of this rank's slice checked, and its windows:
    /// the training shards (`data_shards`, by default one per rank) and the whole splits for evaluation.
    static func openData(_ config: TrainConfig, comm: Communicator) throws -> (CorpusInfo, CorpusWindows?, shards: Int) {
        let shards = config.dataShards > 0 ? config.dataShards : comm.size
        let seed = UInt64(config.seed), T = config.blockSize
        var opened: (CorpusInfo, CorpusWindows)?
        try Trainer.collective(comm, everyRank: true) {
            let info = try openCorpus(config.dataset)
            let train = try TokenSource(path: config.dataset, split: .train)
            let val = try TokenSource(path: config.dataset, split: .val)
            try checkTokenIDs(train, rank: comm.rank, world: comm.size)
            try checkTokenIDs(val, rank: comm.rank, world: comm.size)
            let evalTrain = try TokenSource(path: config.dataset, split: .train)
            opened = (info, CorpusWindows(train: try WindowSampler(source: train, blockSize: T, shards: shards, seed: seed),
                                          evalTrain: try WindowSampler(source: evalTrain, blockSize: T, shards: 1, seed: seed),
                                          evalVal: try WindowSampler(source: val, blockSize: T, shards: 1, seed: seed)))
        }
        guard let (info, windows) = opened else { preconditionFailure("the corpus collective returned without it") }
        return (info, windows, shards)
    }

    /// Where the run's batches come from: the task's problems, else the corpus windows of the `rng` stream.
    static func batchSource(_ config: TrainConfig, task: ArithmeticTask?, windows: CorpusWindows?, placement: SamplePlacement,
                            comm: Communicator, torch: TorchGenerator?) -> BatchSource {
        if let task { return ArithmeticBatches(task: task, placement: placement) }
        guard let windows else { preconditionFailure("a run without a task reads a corpus") }
        if let torch {
            return TorchWindows(windows: windows, placement: placement, comm: comm, evalIters: config.evalIters, generator: torch)
        }
        return CounterWindows(windows: windows, placement: placement)
    }

    /// Rank 0: the checkpoint the run starts from (the newest good one of out_dir when resuming, the
    /// init_from one when finetuning, none from scratch), checked against the corpus and config, with
    /// notes for the reader; the other inputs only rank 0 needs are checked too, and the memory the
    /// run needs against what the node has.
    static func startingPoint(_ config: TrainConfig, corpus: CorpusInfo, store: CheckpointStore, comm: Communicator,
                              resume: Bool) throws -> (Checkpoint?, [TrainEvent]) {
        var ckpt: Checkpoint?
        var notes: [TrainEvent] = []
        try Trainer.collective(comm) {
            guard comm.isRoot else { return }
            if resume {
                let (c, path, skipped) = try store.loadNewestGood()
                for s in skipped { notes.append(.note(s + "; falling back to the next newest checkpoint")) }
                notes.append(.resumed(path: path, step: c.step))
                if let w = TrainState(checkpoint: c).savedWorldSize, w != comm.size {
                    notes.append(.note("the checkpoint was written by \(w) rank(s) and this run has \(comm.size): training continues, "
                        + "but no longer bit-identically to an uninterrupted run (batch composition"
                        + (config.dataShards == 0 ? " and data shards" : "") + " differ)"))
                }
                ckpt = c
            } else {
                if !config.evalOnly && store.hasCheckpoints {
                    throw TrainError("out_dir \(config.outDir) already holds the checkpoints of a run; continue it with "
                        + "--resume (or init_from = \"resume\"), or choose another out_dir for a new run")
                }
                if config.initFrom != "scratch" {
                    let c = try readInitFrom(config.initFrom)
                    notes.append(.note("initialising from \(config.initFrom) (step \(c.step)); fresh optimizer and schedule"))
                    ckpt = c
                }
            }
            if let c = ckpt { try checkCompatible(c, corpus: corpus, config: config, resume: resume, notes: &notes) }
            try checkSamplePrompt(config, corpus: corpus)
            try MemoryEstimate(config, model: ckpt?.modelConfig ?? config.modelConfig(vocabSize: corpus.vocabSize),
                               ranksOnNode: comm.localSize, worldSize: comm.size).check()
        }
        return (ckpt, notes)
    }

    private static func checkSamplePrompt(_ config: TrainConfig, corpus: CorpusInfo) throws {
        guard config.sampleTokens > 0 else { return }
        do {
            _ = try corpus.tokenizer.encodeChecked(config.samplePrompt)
        } catch {
            throw TrainError("sample_prompt: \(error) (corpus \(corpus.path)); change sample_prompt to "
                + "characters of the training text, or set sample_tokens = 0")
        }
    }

    /// The architecture the run trains: the starting checkpoint's (rank 0 sends it to every rank), else
    /// the config's; dropout always from the config.
    static func modelConfig(_ ckpt: Checkpoint?, config: TrainConfig, corpus: CorpusInfo, comm: Communicator) throws -> GPTConfig {
        let json = comm.broadcast(ckpt.map { String(decoding: try! JSONEncoder().encode($0.modelConfig), as: UTF8.self) } ?? "")
        var mc = json.isEmpty ? config.modelConfig(vocabSize: corpus.vocabSize)
            : try JSONDecoder().decode(GPTConfig.self, from: Data(json.utf8))
        mc.dropout = Float(config.dropout)
        return mc
    }

    /// The model, optimizer and state a run starts from: fresh weights (counter stream, or nanoGPT's
    /// draws from PyTorch's generator seeded with seed + rank), then the checkpoint's weights (and,
    /// resuming, its moments and state), rank 0's copy on every rank. With rng = "torch", also
    /// this rank's stream as the batches continue it.
    static func startingModel(_ mc: GPTConfig, checkpoint ckpt: Checkpoint?, config: TrainConfig, comm: Communicator,
                              resume: Bool, notes: inout [TrainEvent])
        -> (model: GPT, optimizer: AdamW, state: TrainState, torch: TorchGenerator?) {
        let seed = UInt64(config.seed)
        let model = GPT(config: mc, seed: seed)
        var torch: TorchGenerator?
        if config.rng == .torch {
            // As nanoGPT: torch.manual_seed(seed + rank), the model's own draws, then the batches.
            // Every rank draws its init (to move its stream); rank 0's weights are broadcast below.
            var g = TorchGenerator(seed: seed &+ UInt64(comm.rank))
            model.initializeAsNanoGPT(&g)
            torch = g
        }
        let shards = GradientSync.shards(zeroStage: config.zeroStage, count: model.parameterCount, comm: comm)
        let optimizer = AdamW(layout: model.layout, shard: shards?.range(of: comm.rank), beta1: Float(config.beta1),
                              beta2: Float(config.beta2), weightDecay: Float(config.weightDecay))
        distribute(ckpt, into: model, moments: resume ? optimizer : nil, comm: comm)
        var state = TrainState()
        if resume {
            if comm.isRoot, let c = ckpt { state = TrainState(checkpoint: c) }
            state.broadcast(comm)
            optimizer.t = state.step
            if torch != nil {
                torch = TorchWindows.restoredGenerator(state.sourceState, comm: comm, seed: seed, step: state.step, notes: &notes)
            }
        }
        return (model, optimizer, state, torch)
    }

    /// Rank 0's reports: the console, metrics.jsonl (records past `step` dropped on resume) and, with
    /// `tensorboard`, TensorBoard event files, with the resolved config written to out_dir/config.toml.
    /// Empty on the other ranks.
    static func openReports(_ config: TrainConfig, comm: Communicator, resume: Bool, step: Int) throws -> [TrainEventSink] {
        var sinks: [TrainEventSink] = []
        try Trainer.collective(comm) {
            guard comm.isRoot else { return }
            let log = try MetricsLog(directory: config.outDir)
            if resume { try log.truncate(afterStep: step) }
            try AtomicFile.write(to: config.outDir + "/config.toml") { tmp in
                // (Foundation's atomic write leaves an empty directory in /tmp on Linux.)
                guard FileManager.default.createFile(atPath: tmp, contents: Data(config.toTOML().utf8)) else {
                    throw TrainError("cannot write \(tmp)")
                }
            }
            sinks = [ConsoleReport(steps: config.maxIters - step), MetricsReport(log: log)]
            if config.tensorboard {
                sinks.append(try TensorBoardReport(directory: config.outDir, resumeStep: resume ? step + 1 : nil))
            }
        }
        return sinks
    }

    /// The step watchdog (collective_timeout > 0): rank 0 listens for every rank's progress; when it
    /// fires, the reports get its message (the main thread is stuck then: that one write is safe).
    static func startWatchdog(_ config: TrainConfig, comm: Communicator, reports: [TrainEventSink]) throws -> Watchdog? {
        guard config.collectiveTimeout > 0 else { return nil }
        let w = Watchdog(timeout: config.collectiveTimeout, rank: comm.rank, size: comm.size)
        try w.wire(over: comm)
        if !reports.isEmpty {
            w.onFire = { message in for r in reports { try? r.handle(.watchdog(message: message)) } }
        }
        w.start()
        return w
    }

    /// The failure-drill hook (SWIFTGPT_TEST_KILL_RANK / _STEP), checked on every rank alike.
    static func killSwitch(_ comm: Communicator) throws -> KillSwitch? {
        var hook: KillSwitch?
        try Trainer.collective(comm, everyRank: true) {
            do { hook = try KillSwitch.fromEnvironment() } catch { throw TrainError("\(error)") }
            if let h = hook, h.rank >= comm.size {
                throw TrainError("SWIFTGPT_TEST_KILL_RANK=\(h.rank) is not a rank: the world has \(comm.size) rank(s), "
                    + "0...\(comm.size - 1)")
            }
        }
        return hook
    }
}
