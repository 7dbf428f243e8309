// Helpers shared by the test targets: temporary directories, the shared
// datasets folder, and running command-line tools.
import Foundation
import XCTest

// MARK: - Temporary files

/// A fresh directory under the system temporary directory, removed on deinit.
public final class TemporaryDirectory {
    public let path: String

    public init(prefix: String = "swiftgpt-test") throws {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Path of `name` inside the directory.
    public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Names of the entries in the directory, sorted.
    public func contents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    }
}

// MARK: - Locations

/// The package root (the folder holding Package.swift).
public func packageRootPath() -> String {
    URL(fileURLWithPath: #filePath) // <root>/Tests/TestSupport/TestSupport.swift
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}

/// The folder of datasets shared with the tests, or nil when there is none.
///
/// `SWIFTGPT_SHARED_DATASETS` overrides; otherwise `../shared/datasets`
/// relative to the package root.
public func sharedDatasetsPath() -> String? {
    if let path = ProcessInfo.processInfo.environment["SWIFTGPT_SHARED_DATASETS"], !path.isEmpty { return path }
    let candidates = [
        URL(fileURLWithPath: packageRootPath()).appendingPathComponent("../shared/datasets").standardizedFileURL.path,
    ]
    return candidates.first { FileManager.default.fileExists(atPath: $0) }
}

/// Path of Tiny Shakespeare in the shared datasets; skips the test when it is not there.
public func tinyShakespearePath() throws -> String {
    guard let root = sharedDatasetsPath() else { throw XCTSkip("no shared datasets folder (set SWIFTGPT_SHARED_DATASETS)") }
    let path = (root as NSString).appendingPathComponent("tinyshakespeare/input.txt")
    guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) not found") }
    return path
}

// MARK: - Processes

/// The full path of `program` on PATH, or nil.
public func findExecutable(_ program: String) -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    return path.split(separator: ":").map { "\($0)/\(program)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// Runs `executable` with `arguments`; returns its exit status and standard output plus error.
public func runProcess(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}
