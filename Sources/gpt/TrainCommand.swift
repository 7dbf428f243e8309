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
            let cfg = try TrainConfig.load(path: config, overrides: overrides)
            let trainer = try Trainer(config: cfg, comm: comm, resume: resume)
            try trainer.run()
            comm.finalize()
        } catch {
            if comm.rank == 0 || comm.size == 1 { FileHandle.standardError.write(Data("error: \(error)\n".utf8)) }
            // Every rank reaches here on errors agreed collectively; an error on one
            // rank alone must not leave the others blocked: abort the whole job.
            if comm.size > 1 { comm.abort(code: 1, message: nil) }
            throw ExitCode(1)
        }
    }
}
