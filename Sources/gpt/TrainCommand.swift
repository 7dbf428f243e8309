import ArgumentParser
import Foundation
import GPTComm
import GPTTrain

/// `gpt train config.toml [--set key=value ...] [--resume]`
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a GPT from a TOML run config (under mpirun: data-parallel over the ranks).",
        discussion: "Keys of the config can be overridden: --set batch_size=32 --set learning_rate=3e-4. See docs/CONFIG.md.")

    @Argument(help: "Run config (TOML). Without it, the defaults are used.") var config: String?
    @Option(name: .customLong("set"), help: "Override a config key: key=value (repeatable).") var overrides: [String] = []
    @Flag(help: "Continue the run in out_dir from its newest good checkpoint.") var resume = false

    func run() throws {
        let comm = Communicator.world
        do {
            var loaded: TrainConfig?
            try Trainer.collective(comm, everyRank: true) { loaded = try TrainConfig.load(path: config, overrides: overrides) }
            guard let cfg = loaded else { preconditionFailure("the config collective returned without a config") }
            let trainer = try Trainer(config: cfg, comm: comm, resume: resume)
            try trainer.run()
            comm.finalize()
        } catch {
            // An error every rank raised together is printed once, by rank 0, and the
            // ranks shut down cleanly; one that may be this rank's alone is printed
            // here and ends the whole job, so no other rank stays blocked.
            let together = (error as? TrainError)?.everyRank ?? false
            if comm.isRoot || !together {
                printError(comm.size > 1 && !comm.isRoot ? "rank \(comm.rank): \(error)" : "\(error)")
            }
            if comm.size > 1 {
                if together { comm.finalize() } else { comm.abort(code: 1, message: nil) }
            }
            throw ExitCode(1)
        }
    }
}
