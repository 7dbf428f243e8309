import Foundation
import GPTSupport
import GPTTrain
import XCTest

final class MetricsTests: XCTestCase {
    // MARK: - Helpers

    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("MetricsTests-\(UUID().uuidString)", isDirectory: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// The log's lines, each parsed with JSONSerialization (which fails the test on invalid JSON).
    private func records(_ path: String, file: StaticString = #filePath, line: UInt = #line) throws -> [[String: Any]] {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.isEmpty || text.hasSuffix("\n"), "log must end with a newline", file: file, line: line)
        return try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any], file: file, line: line)
        }
    }

    /// A clock that advances one second per reading, from 1_700_000_000.
    private func fakeWallClock() -> () -> Double {
        var t = 1_700_000_000.0
        return { t += 1; return t }
    }

    // MARK: - MetricsLog

    func testWritesValidSortedJSONLines() throws {
        let log = try MetricsLog(directory: directory.appendingPathComponent("run/a").path, clock: fakeWallClock())
        XCTAssertEqual(log.path, directory.appendingPathComponent("run/a/metrics.jsonl").path)
        try log.log("train", step: 10, ["loss": 1.8234, "lr": 1e-05, "tokens": 16384, "dt_ms": 250.5])
        try log.log("eval", step: 250, ["train_loss": 1.5, "val_loss": 1.7, "best": true])
        try log.log("sample", step: 250, ["text": "ROMEO:\n\"Hi\" \\ \t\u{1}é"])
        try log.log("info", step: 0, ["loss": .double(.nan), "norm": .double(.infinity), "m": .double(-.infinity)])
        try log.log("train", step: 3, ["event": "spoofed", "step": 99])  // reserved keys cannot be overridden

        let r = try records(log.path)
        XCTAssertEqual(r.count, 5)
        XCTAssertEqual(r[0]["event"] as? String, "train")
        XCTAssertEqual(r[0]["step"] as? Int, 10)
        XCTAssertEqual(r[0]["time"] as? Double, 1_700_000_001)
        XCTAssertEqual(r[0]["loss"] as? Double, 1.8234)
        XCTAssertEqual(r[0]["lr"] as? Double, 1e-05)
        XCTAssertEqual(r[0]["tokens"] as? Int, 16384)
        XCTAssertEqual(r[1]["best"] as? Bool, true)
        XCTAssertEqual(r[1]["time"] as? Double, 1_700_000_002)
        XCTAssertEqual(r[2]["text"] as? String, "ROMEO:\n\"Hi\" \\ \t\u{1}é")
        XCTAssertEqual(r[3]["loss"] as? String, "NaN")
        XCTAssertEqual(r[3]["norm"] as? String, "Infinity")
        XCTAssertEqual(r[3]["m"] as? String, "-Infinity")
        XCTAssertEqual(r[4]["event"] as? String, "train")
        XCTAssertEqual(r[4]["step"] as? Int, 3)

        // Keys are sorted within each line.
        let first = try String(contentsOfFile: log.path, encoding: .utf8).split(separator: "\n")[0]
        XCTAssertEqual(first, #"{"dt_ms":250.5,"event":"train","loss":1.8234,"lr":1e-05,"step":10,"time":1700000001.0,"tokens":16384}"#)
    }

    func testEachLineIsOnDiskAtOnce() throws {
        let log = try MetricsLog(directory: directory.path)
        try log.log("info", step: 0, ["message": "start"])
        // Read through another handle while the log is still open: no buffering in between.
        XCTAssertEqual(try records(log.path).count, 1)
        let time = try XCTUnwrap(records(log.path)[0]["time"] as? Double)
        XCTAssertEqual(time, Date().timeIntervalSince1970, accuracy: 60)
    }

    func testAppendsToAnExistingLog() throws {
        do {
            let log = try MetricsLog(directory: directory.path)
            try log.log("train", step: 1, ["loss": 4.2])
            try log.log("train", step: 2, ["loss": 4.1])
        }
        let again = try MetricsLog(directory: directory.path)
        try again.log("train", step: 3, ["loss": 4.0])
        XCTAssertEqual(try records(again.path).map { $0["step"] as? Int }, [1, 2, 3])
    }

    func testRepairsALineCutShortByACrash() throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("metrics.jsonl").path
        try #"{"event":"train","step":1,"time":1.0}"#.appending("\n{\"event\":\"tr").write(toFile: path, atomically: false, encoding: .utf8)
        let log = try MetricsLog(path: path)
        try log.log("train", step: 2)
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 3)
        XCTAssertEqual(lines[1], #"{"event":"tr"#)  // kept as it was, on its own line
        XCTAssertTrue(lines[2].hasPrefix(#"{"event":"train","step":2,"#))
        // Truncating drops the broken line and keeps the others.
        try log.truncate(afterStep: 10)
        XCTAssertEqual(try records(path).map { $0["step"] as? Int }, [1, 2])
    }

    func testTruncateAfterStep() throws {
        let log = try MetricsLog(directory: directory.path)
        try log.log("info", step: 0, ["message": "run started"])
        for step in stride(from: 10, through: 60, by: 10) { try log.log("train", step: step, ["loss": 2.0]) }
        try log.log("checkpoint", step: 50, ["path": "ckpt_50.h5"])
        try log.log("train", step: 70, ["loss": 1.9])

        try log.truncate(afterStep: 50)
        XCTAssertEqual(try records(log.path).map { $0["step"] as? Int }, [0, 10, 20, 30, 40, 50, 50])
        // Logging goes on after the kept records.
        try log.log("train", step: 60, ["loss": 1.95])
        XCTAssertEqual(try records(log.path).map { $0["step"] as? Int }, [0, 10, 20, 30, 40, 50, 50, 60])
        // A fresh handle on the same file sees the same thing, and no temporary file is left.
        let reopened = try MetricsLog(path: log.path)
        try reopened.truncate(afterStep: 0)
        XCTAssertEqual(try records(log.path).map { $0["event"] as? String }, ["info"])
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        XCTAssertEqual(leftovers, ["metrics.jsonl"])
    }

    func testClosedLogThrows() throws {
        let log = try MetricsLog(directory: directory.path)
        log.close()
        log.close()
        XCTAssertThrowsError(try log.log("train", step: 1)) { error in
            XCTAssertTrue("\(error)".contains("is closed"), "\(error)")
        }
    }

    func testUnwritableDirectoryIsAClearError() throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let blocker = directory.appendingPathComponent("file")
        try "x".write(to: blocker, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try MetricsLog(directory: blocker.appendingPathComponent("run").path)) { error in
            XCTAssertTrue("\(error)".hasPrefix("cannot create directory"), "\(error)")
        }
        XCTAssertEqual(try String(contentsOf: blocker, encoding: .utf8), "x")
    }

    // MARK: - Formatting

    func testFormatDuration() {
        XCTAssertEqual(formatDuration(0), "0.0s")
        XCTAssertEqual(formatDuration(12.34), "12.3s")
        XCTAssertEqual(formatDuration(59.94), "59.9s")
        XCTAssertEqual(formatDuration(59.96), "1m00s")
        XCTAssertEqual(formatDuration(185), "3m05s")
        XCTAssertEqual(formatDuration(3599.4), "59m59s")
        XCTAssertEqual(formatDuration(3599.6), "1h00m")
        XCTAssertEqual(formatDuration(3720), "1h02m")
        XCTAssertEqual(formatDuration(100 * 3600 + 5 * 60), "100h05m")
        XCTAssertEqual(formatDuration(-1), "--")
        XCTAssertEqual(formatDuration(.nan), "--")
        XCTAssertEqual(formatDuration(.infinity), "--")
        XCTAssertEqual(formatDuration(1e300), "--")
    }

    func testFormatCount() {
        XCTAssertEqual(formatCount(0), "0")
        XCTAssertEqual(formatCount(999), "999")
        XCTAssertEqual(formatCount(1000), "1.00k")
        XCTAssertEqual(formatCount(1234), "1.23k")
        XCTAssertEqual(formatCount(9996), "10.0k")
        XCTAssertEqual(formatCount(12_345), "12.3k")
        XCTAssertEqual(formatCount(123_456), "123k")
        XCTAssertEqual(formatCount(999_499), "999k")
        XCTAssertEqual(formatCount(999_500), "1.00M")
        XCTAssertEqual(formatCount(1_234_567), "1.23M")
        XCTAssertEqual(formatCount(10_660_000), "10.7M")
        XCTAssertEqual(formatCount(124_000_000), "124M")
        XCTAssertEqual(formatCount(1_500_000_000), "1.50B")
        XCTAssertEqual(formatCount(2_000_000_000_000), "2.00T")
        XCTAssertEqual(formatCount(-1_234_567), "-1.23M")
        XCTAssertEqual(formatCount(-5), "-5")
        XCTAssertEqual(formatCount(Int.min), "-9.22E")
    }

    // MARK: - ProgressLine

    /// A progress line with a hand-driven clock that records what it prints.
    private final class Harness {
        var now = 100.0
        var status = ""
        var log = ""
        var all = ""
        lazy var line = ProgressLine(total: 1000, label: "train", isTTY: isTTY, clock: { [unowned self] in self.now },
                                     output: { [unowned self] stream, text in
                                         if stream == .status { self.status += text } else { self.log += text }
                                         self.all += text
                                     })
        let isTTY: Bool
        init(isTTY: Bool, columns: Int = 0) {
            self.isTTY = isTTY
            line.columns = { columns }
        }
    }

    func testNotATerminalUpdatePrintsNothing() {
        let h = Harness(isTTY: false)
        h.line.update(step: 0)
        h.now += 1
        h.line.update(step: 10, extra: "loss 2.0")
        XCTAssertEqual(h.all, "")
        h.line.log("iter 10: loss 2.0000")
        h.line.finish()
        XCTAssertEqual(h.all, "iter 10: loss 2.0000\n")
        XCTAssertEqual(h.log, "iter 10: loss 2.0000\n")
        // Rate and ETA are still measured, for the caller's own log lines.
        XCTAssertEqual(h.line.stepsPerSecond!, 10, accuracy: 1e-9)
        XCTAssertEqual(h.line.etaSeconds!, 99, accuracy: 1e-9)
    }

    func testTerminalRedrawsInPlace() {
        let h = Harness(isTTY: true)
        h.line.update(step: 0)
        XCTAssertEqual(h.status, "\rtrain 0/1000    0.0%  elapsed 0.0s\u{1B}[K")
        h.now += 2
        h.line.update(step: 10, extra: "loss 2.0000")
        XCTAssertTrue(h.status.hasSuffix("\rtrain 10/1000    1.0%  5.00 it/s  elapsed 2.0s  eta 3m18s  loss 2.0000\u{1B}[K"),
                      h.status)
        XCTAssertFalse(h.all.contains("\n"))

        // A log line clears the status line, prints, and redraws the status line under it.
        h.status = ""; h.all = ""
        h.line.log("step 10: loss 2.0000")
        XCTAssertEqual(h.all, "\r\u{1B}[Kstep 10: loss 2.0000\n\rtrain 10/1000    1.0%  5.00 it/s  elapsed 2.0s  eta 3m18s  loss 2.0000\u{1B}[K")
        XCTAssertEqual(h.log, "step 10: loss 2.0000\n")

        // Redraws are throttled, except for the last step.
        h.all = ""
        h.now += 0.01
        h.line.update(step: 11)
        XCTAssertEqual(h.all, "")
        h.now += 0.01
        h.line.update(step: 1000)
        XCTAssertTrue(h.all.hasPrefix("\rtrain 1000/1000  100.0%"), h.all)
        h.line.finish()
        XCTAssertTrue(h.all.hasSuffix("\n"))
        h.all = ""
        h.line.finish()
        XCTAssertEqual(h.all, "")
        h.line.log("done")
        XCTAssertEqual(h.all, "done\n")
    }

    func testLongLinesAreCutToTheTerminalWidth() {
        let h = Harness(isTTY: true, columns: 20)
        h.line.update(step: 5, extra: "loss 2.0000")
        XCTAssertEqual(h.status, "\rtrain 5/1000    0.5\u{1B}[K")
    }

    func testETAFollowsAMovingAverageOfStepTime() {
        let h = Harness(isTTY: false)
        h.line.update(step: 0)
        XCTAssertNil(h.line.etaSeconds)
        XCTAssertNil(h.line.stepsPerSecond)
        for step in 1...100 {  // 1 s per step
            h.now += 1
            h.line.update(step: step)
        }
        XCTAssertEqual(h.line.etaSeconds!, 900, accuracy: 1e-6)
        for step in 101...200 {  // the speed doubles: the average follows it
            h.now += 0.5
            h.line.update(step: step)
        }
        XCTAssertEqual(h.line.stepsPerSecond!, 2, accuracy: 1e-3)
        XCTAssertEqual(h.line.etaSeconds!, 400, accuracy: 0.5)
        // Ten steps reported at once weigh like ten single steps.
        h.now += 10
        h.line.update(step: 210)  // 1 s per step again
        let weight: Double = 1 - pow(0.9 as Double, 10 as Double)
        let expected = 0.5 + weight * (1 - 0.5)
        XCTAssertEqual(1 / h.line.stepsPerSecond!, expected, accuracy: 1e-3)
        // Slow steps show seconds per step.
        h.now += 30
        h.line.update(step: 211)
        XCTAssertTrue(h.line.render(step: 211).contains(" s/it"), h.line.render(step: 211))
        let elapsed: Double = 100 * 1.0 + 100 * 0.5 + 10 + 30
        XCTAssertEqual(h.line.elapsedSeconds, elapsed, accuracy: 1e-9)
    }
}
