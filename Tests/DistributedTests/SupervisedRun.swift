// `gpt supervise` in the background, for the tests that restart killed or cut-off jobs.
import Foundation
import TestSupport

// MARK: - SupervisedRun

/// `gpt supervise` started in the background; it and its jobs write to one log file.
final class SupervisedRun {
    let process = Process()
    let logPath: String
    private let handle: FileHandle

    /// Starts `gpt supervise <arguments>`, with `environment` added to this process's.
    init(_ arguments: [String], environment: [String: String], logPath: String) throws {
        self.logPath = logPath
        process.executableURL = URL(fileURLWithPath: try GPTBinary.path())
        process.arguments = ["supervise"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    /// Everything written to the log so far.
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits for the supervisor to exit, then closes the log.
    func waitUntilExit() {
        process.waitUntilExit()
        try? handle.close()
    }
}
