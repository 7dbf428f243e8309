import ArgumentParser
import Foundation
import GPTComm
import GPTCore
import GPTData
import GPTTrain

/// `gpt eval ckpt.h5 [--dataset corpus.h5] [--iters N]`: loss of a checkpoint on a corpus.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Mean loss of a checkpoint on the train and val splits of a corpus.")

    @Argument(help: "Checkpoint file (.h5).") var checkpoint: String
    @Option(help: "Corpus file (default: the dataset in the checkpoint's run config).") var dataset: String?
    @Option(help: "Batches per split.") var iters = 200
    @Option(help: "Sequences per batch.") var batchSize = 16
    @Option(help: "Seed of the evaluation windows.") var seed = 1337

    func validate() throws {
        guard iters >= 1 else { throw ValidationError("--iters must be at least 1") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard seed >= 0 else { throw ValidationError("--seed must be >= 0") }
    }

    func run() throws {
        let comm = Communicator.world
        do {
            let hint = "give a checkpoint written by `gpt train` (ckpt_*.h5, latest.h5)"
            guard FileManager.default.fileExists(atPath: checkpoint) else {
                throw TrainError("checkpoint \(checkpoint) not found; \(hint)")
            }
            let ckpt: Checkpoint
            do {
                ckpt = try Checkpoint.read(from: checkpoint, includeOptimizer: false)
            } catch {
                throw TrainError(error, about: "cannot evaluate: ", hint: hint)
            }
            var cfg = try TrainConfig.load(toml: ckpt.runConfig, source: checkpoint)
            if let dataset {
                guard FileManager.default.fileExists(atPath: dataset) else {
                    throw TrainError("--dataset \(dataset) not found; give a corpus made by `gpt prepare` with the "
                        + "checkpoint's tokenizer")
                }
                cfg.dataset = dataset
            } else if !FileManager.default.fileExists(atPath: cfg.dataset) {
                throw TrainError("the corpus the checkpoint was trained on, \(cfg.dataset), is not there; "
                    + "pass --dataset with the path of a corpus made with the same tokenizer")
            }
            cfg.evalIters = iters
            cfg.batchSize = batchSize
            cfg.seed = seed
            let evaluator = try Evaluator.forCheckpoint(ckpt, config: cfg, comm: comm)
            let (train, val) = try evaluator.estimateLoss(step: 0)
            if comm.isRoot {
                print(String(format: "%@ on %@: train loss %.4f, val loss %.4f (%d batches of %d x %d per split)",
                             checkpoint as NSString, cfg.dataset as NSString, train, val, iters, batchSize,
                             evaluator.model.config.blockSize))
            }
            comm.finalize()
        } catch {
            fail(error)
        }
    }
}
