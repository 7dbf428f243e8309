import ArgumentParser
import Foundation
import GPTTrain

@main
struct GPTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt",
        abstract: "SwiftGPT: train, sample and evaluate GPTs on a CPU cluster with MPI.",
        subcommands: [PrepareCommand.self, TokenizerCommand.self, TrainCommand.self, SampleCommand.self, EvalCommand.self,
                      InspectCommand.self, BenchCommand.self, SelfTestCommand.self])
}

/// Prints one line `error: ...` to stderr and exits non-zero.
func fail(_ error: Error) -> Never {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
