import ArgumentParser
import Foundation
import GPTComm
import GPTTrain

/// `gpt train [config.toml] [--set key=value ...] [--key=value ...] [--resume]`
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a GPT from a TOML run config (under mpirun: data-parallel over the ranks).",
        usage: "gpt train [<config.toml>] [--set key=value [key=value ...]] [--key=value ...] [--resume]",
        discussion: """
            Keys of the config can be overridden, before or after the config path: \
            --set batch_size=32 --set learning_rate=3e-4, several after one --set \
            (--set batch_size=32 learning_rate=3e-4), or nanoGPT's --batch_size=32. \
            Overrides apply left to right, over the file. See docs/CONFIG.md for the keys.
            """)

    @Flag(help: "Continue the run in out_dir from its newest good checkpoint.") var resume = false
    @Argument(parsing: .allUnrecognized,
              help: ArgumentHelp("The run config (TOML; without it, the defaults) and overrides of its keys: "
                                 + "--set key=value (repeatable, several key=value after one --set) or --key=value.",
                                 valueName: "config.toml | --set key=value | --key=value"))
    var arguments: [String] = []

    func run() throws {
        let comm = Communicator.world
        do {
            var loaded: TrainConfig?
            try Trainer.collective(comm, everyRank: true) {
                let words = try TrainArguments(parsing: arguments)
                loaded = try TrainConfig.load(path: words.configPath, overrides: words.overrides)
            }
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
