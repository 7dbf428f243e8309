import XCTest
import TestSupport

/// `gpt tokenizer train` on input without text, through the real binary.
///
/// As in the bad-input catalogue: exit status 1, one `error:` line on stderr
/// saying what to fix, and no tokenizer file written.
final class TokenizerCommandTests: XCTestCase {
    private var dir: TemporaryDirectory!

    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir = nil }

    func testTrainOnAnEmptyFileIsAnError() throws {
        let empty = dir.file("empty.txt")
        XCTAssertTrue(FileManager.default.createFile(atPath: empty, contents: Data()))
        try expectNoText([empty], mentions: ["empty.txt is empty"])
    }

    func testTrainOnADirectoryOfEmptyFilesIsAnError() throws {
        let docs = dir.file("docs")
        try FileManager.default.createDirectory(atPath: docs, withIntermediateDirectories: true)
        for name in ["a.txt", "b.txt"] {
            XCTAssertTrue(FileManager.default.createFile(atPath: docs + "/" + name, contents: Data()))
        }
        try expectNoText([docs], mentions: ["a.txt", "b.txt", "are empty"])
    }

    /// Runs `gpt tokenizer train` on `inputs` and checks the failure: status, the one error line, no output file.
    private func expectNoText(_ inputs: [String], mentions: [String], line: UInt = #line) throws {
        let out = dir.file("tok.json")
        let stderrPath = dir.file("stderr.txt")
        let args = ["tokenizer", "train", "--vocab-size", "300", "--out", out] + inputs
        // sh sends stderr to its own file and then becomes gpt (exec).
        let shell = ["-c", "exec \"$@\" 2>\"$GPT_STDERR\"", "sh", try GPTBinary.path()] + args
        let result = try TestSupport.run("/bin/sh", shell, environment: ["GPT_STDERR": stderrPath], timeout: 60)
        let stderr = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
        let lines = stderr.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        XCTAssertEqual(result.status, 1, "must exit with 1:\n\(result.output)\n\(stderr)", line: line)
        XCTAssertEqual(lines.count, 1, "stderr must be one line:\n\(stderr)", line: line)
        let message = lines.first ?? ""
        XCTAssertTrue(message.hasPrefix("error: no text to learn merges from"), message, line: line)
        XCTAssertTrue(message.contains("give files that hold text"), message, line: line)
        for word in mentions { XCTAssertTrue(message.contains(word), "must mention \"\(word)\": \(message)", line: line) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no tokenizer file may be written", line: line)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasPrefix("tok") }, [],
                       "no temporary file may be left", line: line)
    }
}
