// Runs `gpt selftest comm` as a world of one and under mpirun with 1, 2 and 4
// ranks, and checks that a rank that dies or fails ends the job instead of
// leaving the others blocked. Needs the release build:
//   swift build -c release --product gpt
// (SWIFTGPT_BIN points to another binary).
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Tests

final class CommunicatorTests: XCTestCase {
    func testWorldOfOneWithoutMpirun() throws {
        let result = try MPIHarness.run([try MPIHarness.gptBinary(), "selftest", "comm"], timeout: 120)
        try MPIHarness.assertSelfTestPassed(result, ranks: 1, nodes: 1)
    }

    func testOneRankUnderMpirun() throws {
        let result = try MPIHarness.mpirun(np: 1, ["selftest", "comm"], timeout: 120)
        try MPIHarness.assertSelfTestPassed(result, ranks: 1, nodes: 1)
    }

    func testTwoRanks() throws {
        let result = try MPIHarness.mpirun(np: 2, ["selftest", "comm"], timeout: 120)
        try MPIHarness.assertSelfTestPassed(result, ranks: 2, nodes: 1)
    }

    func testFourRanks() throws {
        let result = try MPIHarness.mpirun(np: 4, ["selftest", "comm"], timeout: 180)
        try MPIHarness.assertSelfTestPassed(result, ranks: 4, nodes: 1)
    }

    /// Rank 1 SIGKILLs itself while ranks 0, 2, 3 are in an allreduce: mpirun must end the job.
    func testKilledRankEndsTheJob() throws {
        let result = try MPIHarness.mpirun(np: 4, ["selftest", "comm", "--die-rank", "1"], timeout: 120)
        XCTAssertFalse(result.timedOut, "the job hung after rank 1 died:\n\(result.transcript)")
        XCTAssertNotEqual(result.exitCode, 0, "mpirun reported success although rank 1 was killed:\n\(result.transcript)")
        XCTAssertTrue(result.stderr.contains("exited on signal 9"), "mpirun did not name the killed rank:\n\(result.transcript)")
        let delay = try XCTUnwrap(MPIHarness.secondsFromEvent(in: result, marker: "sends itself SIGKILL at unix time "),
                                  "rank 1 did not announce its death:\n\(result.transcript)")
        print("rank 1 killed: mpirun exited \(String(format: "%.2f", delay)) s later")
        XCTAssertLessThan(delay, 30, "mpirun took \(delay) s to notice the dead rank")
    }

    /// Rank 2 exits with an error (no finalize) while the others are in an allreduce: the job must abort.
    func testRankExitingWithAnErrorAbortsTheJob() throws {
        let result = try MPIHarness.mpirun(np: 4, ["selftest", "comm", "--fail-rank", "2"], timeout: 120)
        XCTAssertFalse(result.timedOut, "the job hung after rank 2 failed:\n\(result.transcript)")
        XCTAssertNotEqual(result.exitCode, 0, result.transcript)
        XCTAssertTrue(result.stderr.contains("rank 2 of 4"), result.transcript)
        XCTAssertTrue(result.stderr.contains("exiting with status 1 before finalize(); aborting the job"), result.transcript)
        let delay = try XCTUnwrap(MPIHarness.secondsFromEvent(in: result, marker: "exits with an error at unix time "),
                                  "rank 2 did not announce its failure:\n\(result.transcript)")
        print("rank 2 failed: mpirun exited \(String(format: "%.2f", delay)) s later")
        XCTAssertLessThan(delay, 30)
    }

    /// An MPI error (broadcast from a root that does not exist) is reported in words and ends the job.
    func testMPIErrorIsReportedAndAbortsTheJob() throws {
        let result = try MPIHarness.mpirun(np: 2, ["selftest", "comm", "--provoke-error"], timeout: 120)
        XCTAssertFalse(result.timedOut, result.transcript)
        XCTAssertNotEqual(result.exitCode, 0, result.transcript)
        XCTAssertTrue(result.stderr.contains("MPI_Bcast in broadcast(1 int64, root 2) failed: MPI_ERR_ROOT"),
                      "the MPI error was not reported clearly:\n\(result.transcript)")
        XCTAssertFalse(result.stdout.contains("returned instead of failing"), result.transcript)
    }

    /// A rank number outside the world is rejected by every rank with one clear line, and nothing hangs.
    func testDieRankOutsideTheWorldIsRejected() throws {
        let result = try MPIHarness.mpirun(np: 2, ["selftest", "comm", "--die-rank", "5"], timeout: 120)
        XCTAssertFalse(result.timedOut, result.transcript)
        XCTAssertNotEqual(result.exitCode, 0, result.transcript)
        XCTAssertTrue(result.stderr.contains("--die-rank 5 is not a rank: the world has 2 rank(s), 0...1"), result.transcript)
    }

    /// The harness's deadline works: a hung command and a descendant in another session are killed.
    func testHarnessKillsAHungProcessTree() throws {
        let result = try MPIHarness.run(["sh", "-c", "setsid sleep 300 & echo $!; wait"], timeout: 1)
        XCTAssertTrue(result.timedOut)
        XCTAssertLessThan(result.seconds, 10)
        let orphan = try XCTUnwrap(pid_t(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)), result.transcript)
        let deadline = Date().addingTimeInterval(5)
        while MPIHarness.isRunning(orphan) && Date() < deadline { usleep(50_000) }
        XCTAssertFalse(MPIHarness.isRunning(orphan), "process \(orphan) outlived the harness timeout")
    }
}

// MARK: - Harness

/// What a finished (or killed) child process left behind.
struct ProcessResult {
    /// Exit status, or nil when the process was ended by a signal.
    var exitCode: Int32?
    /// The signal that ended the process, if any.
    var signal: Int32?
    var stdout: String
    var stderr: String
    /// Unix time at which the process was seen to end.
    var endTime: Double
    var seconds: Double
    var timedOut: Bool

    /// Everything the process printed, for failure messages.
    var transcript: String {
        "exit \(exitCode.map(String.init) ?? "-") signal \(signal.map(String.init) ?? "-") after "
            + String(format: "%.1f s", seconds) + (timedOut ? " (TIMED OUT, killed)" : "")
            + "\n--- stdout ---\n\(stdout)\n--- stderr ---\n\(stderr)"
    }
}

/// Starts gpt and mpirun in their own process group, with a deadline after which the whole tree is killed.
enum MPIHarness {
    /// The package root, three levels above this file.
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The release binary (SWIFTGPT_BIN overrides); skips the test when it is not built.
    static func gptBinary() throws -> String {
        let path = ProcessInfo.processInfo.environment["SWIFTGPT_BIN"]
            ?? packageRoot.appendingPathComponent(".build/release/gpt").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw XCTSkip("\(path) is not built; run `swift build -c release --product gpt` first (or set SWIFTGPT_BIN)")
        }
        return path
    }

    /// Runs `mpirun -np N gpt ARGS` on this machine (as root and oversubscribed if need be).
    static func mpirun(np: Int, _ args: [String], timeout: Double) throws -> ProcessResult {
        let binary = try gptBinary()
        return try run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", String(np), binary] + args,
                       timeout: timeout)
    }

    /// Checks the output of a passing `gpt selftest comm`: every check line "ok" and the summary.
    static func assertSelfTestPassed(_ result: ProcessResult, ranks: Int, nodes: Int,
                                     file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertFalse(result.timedOut, "selftest hung:\n\(result.transcript)", file: file, line: line)
        XCTAssertEqual(result.exitCode, 0, "selftest failed:\n\(result.transcript)", file: file, line: line)
        let lines = result.stdout.split(separator: "\n").map(String.init)
        XCTAssertFalse(lines.contains { $0.hasPrefix("FAIL") }, result.transcript, file: file, line: line)
        let summary = "checks passed on \(ranks) rank(s), \(nodes) node(s)"
        let summaryLine = try XCTUnwrap(lines.first { $0.contains(summary) },
                                        "no line '\(summary)':\n\(result.transcript)", file: file, line: line)
        let okLines = lines.filter { $0.hasPrefix("ok   ") }
        XCTAssertEqual(summaryLine, "selftest comm: all \(okLines.count) \(summary)", file: file, line: line)
        for name in ["identity", "node layout", "allreduce float sum", "allreduce float mean", "allreduce double",
                     "allreduce uint64", "allreduce int", "broadcast float buffer", "broadcast string",
                     "allgather", "ranksDifferingFromRoot", "iallreduce sum", "iallreduce mean", "barrier", "timing"] {
            XCTAssertTrue(okLines.contains { $0.hasPrefix("ok   \(name)") }, "no passing check '\(name)':\n\(result.transcript)",
                          file: file, line: line)
        }
    }

    /// Seconds from the unix time printed after `marker` to the end of the process.
    static func secondsFromEvent(in result: ProcessResult, marker: String) -> Double? {
        guard let range = result.stdout.range(of: marker) else { return nil }
        let number = result.stdout[range.upperBound...].prefix { $0.isNumber || $0 == "." }
        return Double(number).map { result.endTime - $0 }
    }

    /// Runs `argv` (searched on PATH) with stdin from /dev/null; kills its process tree after `timeout` seconds.
    static func run(_ argv: [String], timeout: Double, environment: [String: String] = [:]) throws -> ProcessResult {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("swiftgpt-harness-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let outPath = directory.appendingPathComponent("stdout").path
        let errPath = directory.appendingPathComponent("stderr").path

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)

        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        let cArgs = argv.map { strdup($0) } + [nil]
        let cEnv = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            cArgs.forEach { free($0) }
            cEnv.forEach { free($0) }
        }

        let start = Date()
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, argv[0], &actions, &attributes, cArgs, cEnv)
        guard rc == 0 else {
            throw NSError(domain: "MPIHarness", code: Int(rc), userInfo: [
                NSLocalizedDescriptionKey: "cannot start \(argv[0]): \(String(cString: strerror(rc)))"])
        }

        let (status, timedOut) = wait(for: pid, startedAt: start, timeout: timeout)
        let end = Date()
        let exited = status & 0x7f == 0
        return ProcessResult(
            exitCode: exited ? (status >> 8) & 0xff : nil,
            signal: exited ? nil : status & 0x7f,
            stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "",
            endTime: end.timeIntervalSince1970,
            seconds: end.timeIntervalSince(start),
            timedOut: timedOut)
    }

    /// Waits for `pid` to end; kills its process tree once `timeout` seconds have passed since `start`.
    private static func wait(for pid: pid_t, startedAt start: Date, timeout: Double) -> (status: Int32, timedOut: Bool) {
        var status: Int32 = 0
        while true {
            let waited = waitpid(pid, &status, WNOHANG)
            if waited == pid { break }
            if waited < 0 && errno != EINTR { break }
            if Date().timeIntervalSince(start) > timeout {
                killTree(pid)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                return (status, true)
            }
            usleep(20_000)
        }
        return (status, false)
    }

    /// SIGKILLs `pid`, its process group and every descendant (MPI ranks get their own process groups).
    static func killTree(_ pid: pid_t) {
        var victims = [pid]
        var index = 0
        while index < victims.count {
            victims += children(of: victims[index])
            index += 1
        }
        kill(-pid, SIGKILL)
        for victim in victims.reversed() { kill(victim, SIGKILL) }
    }

    /// Whether `pid` exists and is not a zombie.
    static func isRunning(_ pid: pid_t) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return false }
        return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
    }

    /// Process ids whose parent is `pid`, from /proc.
    private static func children(of pid: pid_t) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { entry -> pid_t? in
            guard let child = pid_t(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            // Fields after "(comm)": state, ppid, ...
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 1 && pid_t(fields[1]) == pid ? child : nil
        }
    }
}
