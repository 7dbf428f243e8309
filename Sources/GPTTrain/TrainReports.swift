import Foundation
import GPTCore
import GPTInterop
import GPTSupport

// MARK: - Console

/// The training loop's events on the terminal: a progress line (rate, ETA, loss) and plain
/// lines for the start-up facts, log steps, evaluations, samples and checkpoints.
public final class ConsoleReport: TrainEventSink {
    private let progress: ProgressLine

    /// A console for a run that trains `steps` more steps.
    public init(steps: Int) {
        progress = ProgressLine(total: max(1, steps), label: "train")
    }

    private func say(_ line: String) { progress.log(line) }

    public func handle(_ event: TrainEvent) throws {
        switch event {
        case .note(let line): say(line)
        case .resumed(let path, let step): say("resuming from \(path) at step \(step)")
        case .started(let run): describe(run)
        case .step(let s): show(s)
        case .nonfinite(let step, _, _, let inARow, let skipped):
            if skipped { say("step \(step): non-finite loss or gradient norm, update skipped (\(inARow) in a row)") }
        case .evaluation(let e):
            say(String(format: "step %d: train loss %.4f, val loss %.4f%@ (%.1fs)", e.step, e.trainLoss, e.valLoss,
                       (e.isBest ? " (best)" : "") as NSString, e.seconds))
            if let a = e.accuracy { showAccuracy(a, step: e.step) }
        case .sample(let step, let text): say("sample at step \(step):\n" + text + "\n---")
        case .checkpoint(_, let path, let best, let seconds):
            say(String(format: "checkpoint %@ (%.1fs)%@", path as NSString, seconds, (best ? ", best so far" : "") as NSString))
        case .stepsFinished: progress.finish()
        case .summary(let s): summarize(s)
        case .watchdog, .replicas: break
        }
    }

    private func describe(_ r: RunDescription) {
        let m = r.model
        say(String(format: "model: %d layers, %d heads, %d wide, block %d, vocab %d: %.2fM parameters (%.2fM non-embedding)",
                   m.nLayer, m.nHead, m.nEmbd, m.blockSize, m.vocabSize, Double(r.parameters) / 1e6,
                   Double(r.nonEmbeddingParameters) / 1e6))
        if !m.options.isEmpty { say("architecture: " + m.options.joined(separator: ", ")) }
        if let t = r.task {
            say("data: \(t.summary)")
        } else {
            say("data: \(r.dataset): \(formatCount(r.trainTokens)) train, \(formatCount(r.valTokens)) val tokens "
                + "(\(r.tokenizerKind) tokenizer); \(r.shards) shard(s)")
        }
        say("world: \(r.worldSize) rank(s) on \(r.nodes) node(s), \(r.threads) thread(s) per rank; "
            + "\(r.tokensPerStep) tokens per step "
            + "(\(r.worldSize) ranks x \(r.accumulation) micro-steps x \(r.batch) x \(r.block)); overlap_comm \(r.overlapComm)"
            + (r.zeroStage == 1 ? ", overlap_gather \(r.overlapGather)" : ""))
        say("gemm: " + GEMMKernel.current.summary + "; blas: " + BLASKernel.summary)
        say(Self.memoryLine(r))
        if r.rng == .torch {
            say("rng: torch: PyTorch's generator seeded with \(r.seed) + rank, drawn from as nanoGPT's train.py draws "
                + "(initial weights, then one torch.randint per window)")
        }
    }

    private func showAccuracy(_ a: AccuracyReport, step: Int) {
        say("step \(step): test accuracy \(a.summary)")
        for m in a.mistakes { say("  wrong: \(m.prompt)\(m.expected) model: \(m.prompt)\(m.got)") }
    }

    /// What one rank holds, by part.
    static func memoryLine(_ r: RunDescription) -> String {
        let m = r.memory, f = MemoryEstimate.format
        let sharding = r.zeroStage == 1
            ? "zero_stage 1: AdamW state of \(formatCount(m.optimizerElements ?? 0)) of \(formatCount(r.parameters)) parameters"
            : "zero_stage 0"
        return "memory per rank: parameters \(f(m.parameters)), gradients \(f(m.gradients)), AdamW moments "
            + "\(f(m.adamMoments)), activations \(f(m.activations)); \(f(m.perRank)) in all (\(sharding))"
    }

    private func show(_ s: StepReport) {
        progress.update(step: s.stepsThisRun, extra: String(format: "loss %.4f", s.loss))
        guard s.logged else { return }
        say(String(format: "step %d/%d | loss %.4f | lr %.2e | norm %.3f | %.1f ms/step | %@ tok/s | %.1f%% of sgemm",
                   s.step, s.maxIters, s.loss, s.lr, s.gradNorm, s.seconds * 1e3,
                   formatCount(Int(s.tokensPerSecond)) as NSString, 100 * s.sgemmRatio))
    }

    private func summarize(_ s: RunSummary) {
        let overlapNote = s.overlapped
            ? String(format: " (%.1f ms of allreduce on the communication thread during backward)", 1e3 * s.backgroundCommSeconds)
            : ""
        let perRank = s.tokensPerSecond / Double(s.worldSize)
        say(String(format: "throughput: %@ tokens/s in total, %@ per rank; per step %.1f ms compute, %.1f ms communication not hidden by overlap%@",
                   formatCount(Int(s.tokensPerSecond)) as NSString, formatCount(Int(perRank)) as NSString,
                   1e3 * s.computeSeconds, 1e3 * s.exposedCommSeconds, overlapNote as NSString))
    }
}

// MARK: - metrics.jsonl

/// The training loop's events as records of `<out_dir>/metrics.jsonl` (docs/FORMATS.md).
public final class MetricsReport: TrainEventSink {
    public let log: MetricsLog

    public init(log: MetricsLog) { self.log = log }

    public func handle(_ event: TrainEvent) throws {
        switch event {
        case .started(let r):
            try log.log("info", step: r.step, ["world": .int(r.worldSize), "threads": .int(r.threads),
                                               "parameters": .int(r.parameters), "tokens_per_step": .int(r.tokensPerStep),
                                               "resumed": .bool(r.resumed), "blas": .string(BLASKernel.library),
                                               "openblas_kernel": .string(BLASKernel.current),
                                               "gemm_kernel": .string(GEMMKernel.current.rawValue),
                                               "rng": .string(r.rng.rawValue), "zero_stage": .int(r.zeroStage),
                                               "overlap_gather": .bool(r.overlapGather),
                                               "optimizer_elements": .int(r.memory.optimizerElements ?? -1),
                                               "parameter_bytes": .int(r.memory.parameters ?? -1),
                                               "gradient_bytes": .int(r.memory.gradients ?? -1),
                                               "optimizer_bytes": .int(r.memory.adamMoments ?? -1),
                                               "activation_bytes": .int(r.memory.activations ?? -1)])
        case .step(let s) where s.logged:
            try log.log("train", step: s.step, ["loss": .double(s.loss), "lr": .double(Double(s.lr)),
                                                "grad_norm": .double(Double(s.gradNorm)), "ms_per_step": .double(s.seconds * 1e3),
                                                "tokens_per_s": .double(s.tokensPerSecond),
                                                "tokens_per_s_per_rank": .double(s.tokensPerSecond / Double(s.worldSize)),
                                                "sgemm_ratio": .double(s.sgemmRatio),
                                                "comm_exposed_ms": .double(s.commExposedSeconds * 1e3),
                                                "comm_background_ms": .double(s.commBackgroundSeconds * 1e3)])
        case .nonfinite(let step, let loss, let norm, let inARow, _):
            try log.log("nonfinite", step: step, ["loss": .double(loss), "grad_norm": .double(norm),
                                                  "skipped_in_a_row": .int(inARow)])
        case .evaluation(let e):
            let losses: [String: MetricValue] = ["train_loss": .double(e.trainLoss), "val_loss": .double(e.valLoss),
                                                 "best_val_loss": .double(e.bestValLoss)]
            try log.log("eval", step: e.step, losses.merging(e.accuracy?.metricFields ?? [:]) { a, _ in a })
        case .sample(let step, let text): try log.log("sample", step: step, ["text": .string(text)])
        case .checkpoint(let step, let path, let best, _):
            try log.log("checkpoint", step: step, ["path": .string(path), "best": .bool(best)])
        case .watchdog(let message): try log.log("watchdog", step: -1, ["message": .string(message)])
        case .replicas(let step, let sums):
            let hex = sums.map { String(format: "%016llx", $0) }
            try log.log("replicas", step: step, ["checksums": .string(hex.joined(separator: " ")), "ranks": .int(sums.count),
                                                 "identical": .bool(Set(sums).count == 1)])
        case .summary(let s): try log.log("summary", step: s.step, Self.fields(s))
        case .note, .resumed, .step, .stepsFinished: break
        }
    }

    private static func fields(_ s: RunSummary) -> [String: MetricValue] {
        ["tokens_per_s": .double(s.tokensPerSecond), "tokens_per_s_per_rank": .double(s.tokensPerSecond / Double(s.worldSize)),
         "compute_ms_per_step": .double(1e3 * s.computeSeconds), "exposed_comm_ms_per_step": .double(1e3 * s.exposedCommSeconds),
         "background_comm_ms_per_step": .double(1e3 * s.backgroundCommSeconds),
         "ms_per_step": .double(1e3 * (s.computeSeconds + s.exposedCommSeconds)),
         "final_loss": .double(s.finalLoss), "best_val_loss": .double(s.bestValLoss),
         "nonfinite_skipped": .int(s.nonfiniteSkipped)]
    }

    public func close() { log.close() }
}

// MARK: - TensorBoard

/// The training loop's scalars and samples as TensorBoard event files in out_dir (docs/FORMATS.md):
/// the values of metrics.jsonl's train and eval records, under the same names.
public final class TensorBoardReport: TrainEventSink {
    public let writer: TensorBoardWriter

    /// A new event file in `directory`; `resumeStep`: the first step of a resumed run, whose later
    /// steps in earlier files TensorBoard then drops (as `MetricsLog.truncate` drops them).
    public init(directory: String, resumeStep: Int?) throws {
        writer = try TensorBoardWriter(directory: directory, resumeStep: resumeStep)
    }

    public func handle(_ event: TrainEvent) throws {
        switch event {
        case .step(let s) where s.logged:
            try writer.write(step: s.step, [
                .scalar(tag: "train/loss", value: Float(s.loss)), .scalar(tag: "train/lr", value: s.lr),
                .scalar(tag: "train/grad_norm", value: s.gradNorm), .scalar(tag: "train/tokens_per_s", value: Float(s.tokensPerSecond)),
                .scalar(tag: "train/sgemm_ratio", value: Float(s.sgemmRatio)),
                .scalar(tag: "train/ms_per_step", value: Float(s.seconds * 1e3)),
            ])
        case .evaluation(let e):
            try writer.write(step: e.step, [.scalar(tag: "eval/train_loss", value: Float(e.trainLoss)),
                                            .scalar(tag: "eval/val_loss", value: Float(e.valLoss))]
                                           + Self.accuracyScalars(e.accuracy))
        case .sample(let step, let text): try writer.write(step: step, [.text(tag: "sample", value: text)])
        default: break
        }
    }

    /// A task's accuracies (overall, per operand length, per operator) as `eval/<metrics.jsonl field>`.
    private static func accuracyScalars(_ a: AccuracyReport?) -> [TensorBoardValue] {
        guard let fields = a?.metricFields else { return [] }
        return fields.keys.sorted().compactMap { key in
            guard key.hasPrefix("accuracy"), case .double(let v) = fields[key]! else { return nil }
            return .scalar(tag: "eval/" + key, value: Float(v))
        }
    }

    public func close() { writer.close() }
}
