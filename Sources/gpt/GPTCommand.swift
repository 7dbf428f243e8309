import ArgumentParser
import Foundation
import GPTCore
import GPTData
import GPTTrain

@main
struct GPTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gpt",
        abstract: "SwiftGPT: train, sample and evaluate GPTs on a CPU cluster with MPI.",
        subcommands: [PrepareCommand.self, TrainCommand.self, SampleCommand.self, EvalCommand.self,
                      InspectCommand.self, TokenizerCommand.self, ExportCommand.self, ImportCommand.self, PlotCommand.self, BenchCommand.self, SuperviseCommand.self, SelfTestCommand.self])

    /// Parses and runs the command. Help and exit codes behave as ArgumentParser makes
    /// them; a usage error is one `error:` line, like every other error of `gpt`.
    static func main() {
        // Before anything else (MPI, threads): OpenBLAS must not run its generic kernel on a CPU it does not know.
        BLASKernel.restartIfMisdetected()
        do {
            try GEMMKernel.configure()  // a SWIFTGPT_GEMM this CPU cannot follow is an error here
            var command = try parseAsRoot()
            try command.run()
        } catch let error where error is ExitCode || exitCode(for: error) == .success {
            exit(withError: error)
        } catch {
            let code = exitCode(for: error)
            var line = message(for: error)
            if code == .validationFailure {
                let first = CommandLine.arguments.dropFirst().first
                let sub = configuration.subcommands.compactMap { $0.configuration.commandName }.first { $0 == first }
                line += "; see `gpt \(sub.map { $0 + " " } ?? "")--help`"
            }
            printError(line)
            exit(withError: code)
        }
    }
}

/// Prints `message` to stderr as one line starting with `error: `.
func printError(_ message: String) {
    FileHandle.standardError.write(Data("error: \(TrainError.oneLine(message))\n".utf8))
}

/// Prints one line `error: ...` to stderr and exits non-zero.
func fail(_ error: Error) -> Never {
    printError("\(error)")
    exit(1)
}

/// The checkpoint at `path` without its optimizer state, or an error that says the file is missing or
/// what is wrong with it, starting with `cannot <action>: ` and ending with `hint`.
func readCheckpoint(_ path: String, toDo action: String, hint: String) throws -> Checkpoint {
    guard FileManager.default.fileExists(atPath: path) else { throw TrainError("checkpoint \(path) not found; \(hint)") }
    do {
        return try Checkpoint.read(from: path, includeOptimizer: false)
    } catch {
        throw TrainError(error, about: "cannot \(action): ", hint: hint)
    }
}
