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

    func run() throws {
        do {
            let ckpt = try Checkpoint.read(from: checkpoint, includeOptimizer: false)
            var cfg = try TrainConfig.load(toml: ckpt.runConfig, source: checkpoint)
            if let dataset { cfg.dataset = dataset }
            cfg.initFrom = checkpoint
            cfg.evalOnly = true
            cfg.evalIters = iters
            cfg.batchSize = batchSize
            cfg.seed = seed
            cfg.outDir = NSTemporaryDirectory() + "gpt-eval-\(getpid())"
            cfg.sampleTokens = 0
            let trainer = try Trainer(config: cfg, comm: .world)
            let (train, val) = try trainer.estimateLoss()
            try? FileManager.default.removeItem(atPath: cfg.outDir)
            if Communicator.world.isRoot {
                print(String(format: "%@ on %@: train loss %.4f, val loss %.4f (%d batches of %d x %d per split)",
                             checkpoint as NSString, cfg.dataset as NSString, train, val, iters, batchSize, trainer.model.config.blockSize))
            }
            Communicator.world.finalize()
        } catch { fail(error) }
    }
}
