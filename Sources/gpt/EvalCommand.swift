import ArgumentParser
import Foundation
import GPTComm
import GPTCore
import GPTData
import GPTTrain

/// `gpt eval ckpt.h5 [--dataset corpus.h5] [--iters N]`: loss of a checkpoint on a corpus; for a
/// checkpoint of the arithmetic task, also its exact-match accuracy on held-out problems.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Mean loss of a checkpoint on the train and val splits of a corpus (or of its task), "
            + "and a task's test accuracy.")

    @Argument(help: "Checkpoint file (.h5).") var checkpoint: String
    @Option(help: "Corpus file (default: the dataset in the checkpoint's run config).") var dataset: String?
    @Option(help: "Batches per split.") var iters = 200
    @Option(help: "Sequences per batch.") var batchSize = 16
    @Option(help: "Seed of the evaluation windows (and of a task's test problems).") var seed = 1337
    @Option(help: "Arithmetic task: fewest operand digits of the test problems (default: as trained).") var minDigits: Int?
    @Option(help: "Arithmetic task: most operand digits of the test problems (default: as trained).") var maxDigits: Int?
    @Option(help: "Arithmetic task: test problems answered (default: the run's task_test_problems).") var problems: Int?

    func validate() throws {
        guard iters >= 1 else { throw ValidationError("--iters must be at least 1") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard seed >= 0 else { throw ValidationError("--seed must be >= 0") }
        guard (minDigits ?? 1) >= 1, (maxDigits ?? 1) >= 1, (maxDigits ?? 9) <= 9 else {
            throw ValidationError("--min-digits and --max-digits must be in 1...9")
        }
        guard (problems ?? 1) >= 1 else { throw ValidationError("--problems must be at least 1") }
    }

    func run() throws {
        let comm = Communicator.world
        do {
            let ckpt = try readCheckpoint(checkpoint, toDo: "evaluate",
                                          hint: "give a checkpoint written by `gpt train` (ckpt_*.h5, latest.h5)")
            var cfg = try TrainConfig.load(toml: ckpt.runConfig, source: checkpoint)
            try chooseCorpus(&cfg)
            cfg.evalIters = iters
            cfg.batchSize = batchSize
            cfg.seed = seed
            let evaluator = try Evaluator.forCheckpoint(ckpt, config: cfg, comm: comm)
            let (train, val) = try evaluator.estimateLoss(step: 0)
            if comm.isRoot {
                print(String(format: "%@ on %@: train loss %.4f, val loss %.4f (%d batches of %d x %d per split)",
                             checkpoint as NSString, (cfg.task == .none ? cfg.dataset : "its task") as NSString, train, val,
                             iters, batchSize, evaluator.rowLength))
            }
            if let task = ArithmeticTask(cfg) { try reportAccuracy(task, evaluator: evaluator, comm: comm) }
            comm.finalize()
        } catch {
            fail(error)
        }
    }

    /// The corpus to evaluate on: --dataset, else the one the checkpoint was trained on; none for a task.
    private func chooseCorpus(_ cfg: inout TrainConfig) throws {
        if cfg.task != .none {
            guard dataset == nil else {
                throw TrainError("--dataset: the checkpoint learned the \(cfg.task.rawValue) task, which reads no corpus")
            }
        } else if let dataset {
            guard FileManager.default.fileExists(atPath: dataset) else {
                throw TrainError("--dataset \(dataset) not found; give a corpus made by `gpt prepare` with the "
                    + "checkpoint's tokenizer")
            }
            cfg.dataset = dataset
        } else if !FileManager.default.fileExists(atPath: cfg.dataset) {
            throw TrainError("the corpus the checkpoint was trained on, \(cfg.dataset), is not there; "
                + "pass --dataset with the path of a corpus made with the same tokenizer")
        }
    }

    /// The exact-match accuracy on the task's test problems, with operands of --min-digits...--max-digits digits.
    private func reportAccuracy(_ trained: ArithmeticTask, evaluator: Evaluator, comm: Communicator) throws {
        let lo = minDigits ?? (maxDigits.map { min($0, trained.minDigits) } ?? trained.minDigits)
        let hi = maxDigits ?? max(lo, trained.maxDigits)
        guard lo <= hi else { throw TrainError("--min-digits \(lo) is more than --max-digits \(hi)") }
        let task = trained.withDigits(lo, hi)
        let count = problems ?? evaluator.accuracy?.problems ?? 1000
        let accuracy = try AccuracyEvaluator(task: task, model: evaluator.model, comm: comm, problems: count)
        accuracy.mistakesShown = 5
        let report = accuracy.evaluate()
        guard comm.isRoot else { return }
        print("test accuracy, operands of \(lo)...\(hi) digits (trained: \(trained.minDigits)...\(trained.maxDigits)): "
            + report.summary)
        for m in report.mistakes { print("  wrong: \(m.prompt)\(m.expected) model: \(m.prompt)\(m.got)") }
    }
}
