// launch/bench-vs-pytorch.sh: its quick mode runs real `gpt train` and PyTorch steps on a tiny
// config, and its table and JSON say the same thing. Speed itself is never asserted.
import Foundation
import TestSupport
import XCTest

final class BenchVsPyTorchTests: XCTestCase {
    private let script = packageRootPath() + "/launch/bench-vs-pytorch.sh"

    private func requireTorch() throws {
        let python = findExecutable("python3")
        let ok = try python.map { try runProcess($0, ["-c", "import torch"]).status == 0 } ?? false
        try XCTSkipUnless(ok, "python3 with torch is not installed (pip install the CPU wheel in /opt/wheels)")
    }

    /// The table rows of the script's output: config, threads, impl, ms/step, tokens/s, ours x, RSS.
    private func rows(_ output: String) -> [[String]] {
        output.split(separator: "\n").filter { $0.hasPrefix("| ") && !$0.hasPrefix("| config") }
            .map { $0.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) } }
    }

    func testQuickModeTableAndJSONAgree() throws {
        try requireTorch()
        let dir = try TemporaryDirectory(prefix: "bench-vs-torch")
        let data = try shakespeareCorpus(in: dir.path)
        let json = dir.file("figures.json")
        let r = try TestSupport.run(script, ["--quick", "--json", json, "--label", "test"],
                        environment: ["SWIFTGPT_BIN": try GPTBinary.path(), "BENCH_DATA": data], timeout: 240)
        XCTAssertEqual(r.status, 0, r.output)
        let table = rows(r.output)
        XCTAssertEqual(table.map { $0[2] }, ["ours", "eager"], r.output)
        for row in table {
            XCTAssertEqual(row[0], "tiny"); XCTAssertEqual(row[1], "1")
            let ms = try XCTUnwrap(Double(row[3]), row.joined(separator: " ")), tokens = try XCTUnwrap(Double(row[4]))
            XCTAssertGreaterThan(ms, 0)
            XCTAssertEqual(tokens, 64 / ms * 1e3, accuracy: 0.02 * tokens, "tokens/s = 4 x 16 tokens / step time")
            XCTAssertGreaterThan(try XCTUnwrap(Double(row[6])), 10, "peak RSS in MiB")
        }
        XCTAssertEqual(table.first?[5], "1.00", "ours against itself")

        let figures = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        XCTAssertEqual(figures["label"] as? String, "test")
        XCTAssertTrue((figures["blas"] as? String ?? "").hasPrefix("OpenBLAS") || (figures["blas"] as? String ?? "").hasPrefix("BLIS"),
                      "the BLAS our runs linked: \(figures["blas"] ?? "none")")
        let results = try XCTUnwrap(figures["results"] as? [[String: Any]])
        XCTAssertEqual(results.count, 2)
        let params = Set(results.compactMap { $0["parameters"] as? Int })
        XCTAssertEqual(params.count, 1, "both implementations train the same model: \(params)")
        for (row, result) in zip(table, results) {
            let ms = try XCTUnwrap(result["ms_per_step"] as? Double)
            XCTAssertEqual(Double(row[3])!, ms, accuracy: 0.006 + 0.0006 * ms, "the table prints the JSON's figure")
        }
        let eager = try XCTUnwrap(results.last), ours = try XCTUnwrap(results.first)
        XCTAssertEqual(eager["ours_speedup"] as! Double,
                       (eager["ms_per_step"] as! Double) / (ours["ms_per_step"] as! Double), accuracy: 1e-9)
    }

    func testBadOptionsFailWithOneLine() throws {
        for (args, message) in [(["--threads", "0"], "--threads must be"), (["--impls", "jax"], "--impls takes"),
                                (["--steps", "x"], "--steps must be"), (["--bogus", "1"], "unknown option '--bogus'"),
                                (["--configs", "/no/such.toml", "--impls", "ours"], "neither baby, cpu, tiny nor")] {
            let dir = try TemporaryDirectory(prefix: "bench-vs-torch-bad")
            let r = try TestSupport.run(script, args, environment: ["SWIFTGPT_BIN": try GPTBinary.path(), "BENCH_DIR": dir.path,
                                                        "BENCH_DATA": dir.file("none.h5")], timeout: 60)
            XCTAssertNotEqual(r.status, 0, args.joined(separator: " "))
            XCTAssertTrue(r.output.contains(message), "\(args): \(r.output)")
        }
    }
}
