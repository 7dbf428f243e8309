// Forged, malformed and foreign-key progress datagrams flood rank 0's step
// watchdog while rank 1 hangs (SIGSTOP): the watchdog still names rank 1, and
// only rank 1, as the rank that did not arrive, says how many datagrams it
// ignored, and listened on the job's addresses only (never 0.0.0.0).
import Foundation
import TestSupport
import XCTest

final class WatchdogForgeryTests: XCTestCase {
    func testForgedDatagramsDoNotChangeTheHungRankReport() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-forge")
        let out = dir.file("hung")
        let args = TrainingEquivalenceTests.baseSettings(corpus: try shakespeareCorpus(in: dir.path), outDir: out)
            + ["--set", "batch_size=4", "--set", "max_iters=50", "--set", "collective_timeout=3"]
        let forger = DatagramForger(marker: out, ranks: 4)
        forger.start()
        let result = try MPIHarness.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "4",
                                         try MPIHarness.gptBinary(), "train"] + args,
                                        timeout: 120,
                                        environment: ["SWIFTGPT_TEST_KILL_RANK": "1", "SWIFTGPT_TEST_KILL_STEP": "3",
                                                      "SWIFTGPT_TEST_KILL_SIGNAL": "STOP"])
        forger.stop()
        print("forger: \(forger.sent) datagrams to \(forger.endpoints)")
        XCTAssertFalse(result.timedOut, result.transcript)
        XCTAssertFalse(forger.endpoints.isEmpty, "the forger never found rank 0's watchdog port:\n\(result.transcript)")
        XCTAssertGreaterThan(forger.sent, 1000, "too few forged datagrams to prove anything")
        XCTAssertFalse(forger.endpoints.contains { $0.ip == "0.0.0.0" }, "rank 0 listens on every interface: \(forger.endpoints)")
        Self.assertReportNamesOnly(rank: 1, of: result.stderr, transcript: result.transcript)
    }

    /// The watchdog's "ranks that did not arrive" list names `rank` alone, and it says it ignored forged datagrams.
    static func assertReportNamesOnly(rank: Int, of stderr: String, transcript: String,
                                      file: StaticString = #filePath, line: UInt = #line) {
        let marker = "ranks that did not arrive: "
        guard let range = stderr.range(of: marker) else {
            return XCTFail("no hung-rank report:\n\(transcript)", file: file, line: line)
        }
        let missing = stderr[range.upperBound...].prefix { $0 != ";" && $0 != "\n" }
        print("watchdog report: \(marker)\(missing)")
        XCTAssertTrue(missing.hasPrefix("\(rank) (last seen in"), "\(missing)", file: file, line: line)
        XCTAssertEqual(missing.components(separatedBy: "(last seen in").count + missing.components(separatedBy: "(never").count,
                       3, "more than one rank named: \(missing)", file: file, line: line)
        XCTAssertTrue(stderr.contains("datagram(s) that failed authentication were ignored"), transcript, file: file, line: line)
    }
}
