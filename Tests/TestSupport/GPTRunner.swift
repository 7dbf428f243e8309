// Running the `gpt` binary (the release build the README's commands make),
// with a hard timeout, the way a user or mpirun runs it.
import Foundation
import XCTest

public struct RunResult {
    public let status: Int32
    public let output: String
    public let seconds: Double
    public let timedOut: Bool
}

public enum GPTBinary {
    /// The gpt executable: $SWIFTGPT_BIN, else .build/release/gpt under the package root.
    public static func path() throws -> String {
        if let p = ProcessInfo.processInfo.environment["SWIFTGPT_BIN"], !p.isEmpty { return p }
        let p = packageRootPath() + "/.build/release/gpt"
        guard FileManager.default.isExecutableFile(atPath: p) else {
            throw NSError(domain: "SwiftGPTTests", code: 1, userInfo: [NSLocalizedDescriptionKey:
                "\(p) not found: run `swift build -c release` before the tests (the README's test command does)"])
        }
        return p
    }
}

/// Runs a program with a hard timeout (the whole process group is killed when it
/// is exceeded); stdout and stderr are merged.
@discardableResult
public func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                directory: String? = nil, timeout: Double = 300) throws -> RunResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    for (k, v) in environment { env[k] = v }
    process.environment = env
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let outFile = FileManager.default.temporaryDirectory.appendingPathComponent("gpt-run-\(UUID().uuidString).log")
    FileManager.default.createFile(atPath: outFile.path, contents: nil)
    let handle = try FileHandle(forWritingTo: outFile)
    defer { try? FileManager.default.removeItem(at: outFile) }
    process.standardOutput = handle
    process.standardError = handle
    process.standardInput = FileHandle.nullDevice
    let start = Date()
    try process.run()
    let pid = process.processIdentifier
    setpgid(pid, pid)
    var timedOut = false
    while process.isRunning {
        if Date().timeIntervalSince(start) > timeout {
            timedOut = true
            kill(-pid, SIGKILL)
            kill(pid, SIGKILL)
            break
        }
        usleep(20_000)
    }
    process.waitUntilExit()
    try? handle.close()
    let output = (try? String(contentsOf: outFile, encoding: .utf8)) ?? ""
    return RunResult(status: process.terminationStatus, output: output, seconds: Date().timeIntervalSince(start),
                     timedOut: timedOut)
}

/// Runs `gpt <arguments>`; fails the test with the output when it exits non-zero.
@discardableResult
public func gpt(_ arguments: [String], expectSuccess: Bool = true, timeout: Double = 300,
               file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
    let r = try run(try GPTBinary.path(), arguments, timeout: timeout)
    XCTAssertFalse(r.timedOut, "gpt \(arguments.joined(separator: " ")) timed out after \(timeout)s:\n\(r.output)",
                   file: file, line: line)
    if expectSuccess {
        XCTAssertEqual(r.status, 0, "gpt \(arguments.joined(separator: " ")) failed:\n\(r.output)", file: file, line: line)
    }
    return r
}

/// Tiny Shakespeare as a character-level corpus in `dir` (made once per directory).
public func shakespeareCorpus(in dir: String) throws -> String {
    let out = dir + "/shakespeare_char.h5"
    if !FileManager.default.fileExists(atPath: out) {
        try gpt(["prepare", "--out", out, try tinyShakespearePath()])
    }
    return out
}

/// The JSON objects of a run's metrics.jsonl.
public func readMetrics(_ runDir: String) throws -> [[String: Any]] {
    let text = try String(contentsOfFile: runDir + "/metrics.jsonl", encoding: .utf8)
    return try text.split(separator: "\n").map {
        try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
    }
}
