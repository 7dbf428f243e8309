import ArgumentParser

@main
struct GPTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt",
        abstract: "SwiftGPT: train, sample and evaluate GPTs on a CPU cluster with MPI.",
        subcommands: [BenchCommand.self])
}
