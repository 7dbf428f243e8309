import XCTest
import TestSupport
import GPTData

final class CorpusTests: XCTestCase {
    private var dir: TemporaryDirectory!

    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir = nil }

    private func write(_ text: String, _ name: String) throws -> String {
        let path = dir.file(name)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    /// Every token of `split`, read in windows of `window` tokens.
    private func allTokens(_ path: String, _ split: CorpusSplit, window: Int = 1000) throws -> [Int32] {
        let source = try TokenSource(path: path, split: split)
        var tokens = [Int32](repeating: -1, count: source.count)
        try tokens.withUnsafeMutableBufferPointer { buffer in
            var offset = 0
            while offset < source.count {
                let n = min(window, source.count - offset)
                try source.read(offset: offset, count: n, into: buffer.baseAddress! + offset)
                offset += n
            }
        }
        return tokens
    }

    // MARK: - Writing and reading

    func testSmallTextCorpusRoundTrips() throws {
        let text = String(repeating: "First Citizen:\nBefore we proceed, hear me speak.\r\n¿Qué? 🙂\n", count: 9)
        let input = try write(text, "input.txt")
        let output = dir.file("corpus.h5")
        let info = try prepareCharCorpus(inputs: [input], output: output)

        let n = text.unicodeScalars.count
        let expected = CharTokenizer(training: text)
        XCTAssertEqual(info.vocabSize, expected.vocabSize)
        XCTAssertEqual(info.tokenizer as? CharTokenizer, expected)
        XCTAssertEqual(info.trainTokens, Int(Double(n) * 0.9))
        XCTAssertEqual(info.valTokens, n - Int(Double(n) * 0.9))
        XCTAssertEqual(info.dtype, .uint16)
        XCTAssertEqual(info.source, input)
        XCTAssertEqual(info.formatVersion, 1)
        XCTAssertFalse(info.created.isEmpty)
        XCTAssertEqual(try dir.contents(), ["corpus.h5", "input.txt"], "no temporary file is left")

        let file = try H5File.open(output)
        XCTAssertEqual(try file.stringAttribute("format"), "swiftgpt-corpus")
        XCTAssertEqual(try file.stringAttribute("tokenizer_kind"), "char")
        XCTAssertEqual(try file.stringAttribute("tokenizer"), expected.serialized())
        XCTAssertEqual(try file.intAttribute("vocab_size"), expected.vocabSize)
        XCTAssertEqual(try file.intAttribute("train_tokens"), info.trainTokens)
        XCTAssertEqual(try file.intAttribute("val_tokens"), info.valTokens)
        XCTAssertEqual(try file.elementType(of: "/train"), .uint16)

        let train = try allTokens(output, .train, window: 7)
        let val = try allTokens(output, .val)
        XCTAssertEqual(train + val, expected.encode(text))
        XCTAssertEqual(info.tokenizer.decode(train) + info.tokenizer.decode(val), text)
        XCTAssertEqual(try CorpusFile.validate(output, scanTokens: 13).trainTokens, info.trainTokens)
    }

    func testH5dumpShowsTheVocabularyAsPlainText() throws {
        guard let h5dump = findExecutable("h5dump") else { throw XCTSkip("h5dump is not installed") }
        let input = try write("The quick brown fox jumps over the lazy dog!?\n", "fox.txt")
        let output = dir.file("fox.h5")
        try prepareCharCorpus(inputs: [input], output: output)
        let (status, dump) = try runProcess(h5dump, ["-A", output])
        XCTAssertEqual(status, 0, dump)
        XCTAssertTrue(dump.contains(" !?Tabcdefghijklmnopqrstuvwxyz\""), dump)
        XCTAssertTrue(dump.contains("\"swiftgpt-corpus\""), dump)
        XCTAssertTrue(dump.contains("DATASET \"train\"") && dump.contains("H5T_STD_U16LE"), dump)
    }

    func testSeveralInputsAreConcatenatedAndCanUseAGivenVocabulary() throws {
        let a = try write("abc\n", "a.txt")
        let b = try write("cab\nbca\n", "b.txt")
        let vocabulary = CharTokenizer(training: "\nabcdefgh")
        let output = dir.file("ab.h5")
        let info = try prepareCharCorpus(inputs: [a, b], output: output, valFraction: 0.25, tokenizer: vocabulary)
        XCTAssertEqual(info.vocabSize, 9)
        XCTAssertEqual(info.trainTokens, 9)
        XCTAssertEqual(info.valTokens, 3)
        XCTAssertEqual(info.source, "\(a)\n\(b)")
        XCTAssertEqual(vocabulary.decode(try allTokens(output, .train)), "abc\ncab\nb")
        XCTAssertEqual(vocabulary.decode(try allTokens(output, .val)), "ca\n")

        let c = try write("abz\nxé", "c.txt")
        XCTAssertThrowsError(try prepareCharCorpus(inputs: [a, c], output: output, tokenizer: vocabulary)) {
            XCTAssertEqual("\($0)", "\(c): characters not in the given vocabulary: 'x' (U+0078), 'z' (U+007A), "
                           + "'é' (U+00E9)")
        }
        XCTAssertEqual(try CorpusFile.open(output).trainTokens, 9, "the existing corpus is kept")
    }

    func testLargeVocabulariesUseUInt32() throws {
        // 70,000 distinct characters need ids above 65535.
        let text = String(String.UnicodeScalarView((0x100...).lazy.compactMap(Unicode.Scalar.init).prefix(70_000)))
        let output = dir.file("wide.h5")
        let info = try prepareCharCorpus(inputs: [try write(text, "wide.txt")], output: output)
        XCTAssertEqual(info.vocabSize, 70_000)
        XCTAssertEqual(info.dtype, .uint32)
        XCTAssertEqual(try H5File.open(output).elementType(of: "/val"), .uint32)
        let val = try allTokens(output, .val)
        XCTAssertEqual(val.first, 63_000)
        XCTAssertEqual(val.last, 69_999)
        XCTAssertEqual(info.tokenizer.decode(try allTokens(output, .train) + val), text)
    }

    func testTinyShakespeareMatchesNanoGPT() throws {
        let input = try tinyShakespearePath()
        let output = dir.file("shakespeare_char.h5")
        let info = try prepareCharCorpus(inputs: [input], output: output)
        XCTAssertEqual(info.vocabSize, 65)
        XCTAssertEqual(info.trainTokens, 1_003_854)
        XCTAssertEqual(info.valTokens, 111_540)
        XCTAssertEqual(info.tokenizer.serialized(),
                       "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
        _ = try CorpusFile.validate(output)
        let train = try allTokens(output, .train, window: 1 << 18)
        let val = try allTokens(output, .val, window: 1 << 18)
        XCTAssertEqual(train.min(), 0)
        XCTAssertEqual(train.max(), 64)
        XCTAssertTrue(val.allSatisfy { (0..<65).contains($0) })
        let text = try String(contentsOfFile: input, encoding: .utf8)
        XCTAssertEqual(info.tokenizer.decode(train) + info.tokenizer.decode(val), text)
        // The lecture's first training example: "First Citizen" = [18, 47, 56, 57, 58, 1, 15, 47, 58, 47, ...].
        XCTAssertEqual(Array(train.prefix(10)), [18, 47, 56, 57, 58, 1, 15, 47, 58, 47])
    }

    // MARK: - Reading windows and shards

    func testTokenSourceWindowsAndShards() throws {
        let letters = Array("abcdefghij")
        let text = String((0..<1000).map { letters[($0 * 7 + $0 / 13) % 10] })
        let output = dir.file("w.h5")
        try prepareCharCorpus(inputs: [try write(text, "w.txt")], output: output)
        let source = try TokenSource(path: output, split: .train, chunkCacheBytes: 1 << 10)
        XCTAssertEqual(source.count, 900)
        XCTAssertEqual(source.split, .train)
        let expected = CharTokenizer(training: text).encode(text)
        var window = [Int32](repeating: -1, count: 65)
        try source.read(offset: 835, count: 65, into: &window)
        XCTAssertEqual(window, Array(expected[835..<900]))
        XCTAssertThrowsError(try source.read(offset: 836, count: 65, into: &window)) {
            XCTAssertEqual("\($0)", "\(output): slice [836, 901) is outside dataset '/train' of 900 elements")
        }
        for world in 1...7 {
            let shards = (0..<world).map { source.shard(rank: $0, world: world) }
            XCTAssertEqual(shards.first?.lowerBound, 0)
            XCTAssertEqual(shards.last?.upperBound, 900)
            for (a, b) in zip(shards, shards.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
            XCTAssertLessThanOrEqual(shards.map(\.count).max()! - shards.map(\.count).min()!, 1)
        }
    }

    // MARK: - Bad input and bad files

    func testPrepareRejectsBadInputAndKeepsTheExistingCorpus() throws {
        let output = dir.file("keep.h5")
        let good = try write("good enough text\n", "good.txt")
        try prepareCharCorpus(inputs: [good], output: output)
        let before = try Data(contentsOf: URL(fileURLWithPath: output))

        let invalid = dir.file("latin1.txt")
        try Data([0x61, 0x62, 0xE9, 0x0A]).write(to: URL(fileURLWithPath: invalid))
        let binary = dir.file("binary.txt")
        try Data([0x61, 0x00, 0x62]).write(to: URL(fileURLWithPath: binary))
        let empty = try write("", "empty.txt")
        let tiny = try write("a", "tiny.txt")
        let cases: [([String], String, Double, String)] = [
            ([dir.file("missing.txt")], output, 0.1, "\(dir.file("missing.txt")): no such file"),
            ([invalid], output, 0.1, "\(invalid): not UTF-8 text (invalid bytes between offsets 0 and 4)"),
            ([binary], output, 0.1, "\(binary): contains NUL characters (a binary file?) between offsets 0 and 3"),
            ([empty], output, 0.1, "the input text is empty: \(empty)"),
            ([tiny], output, 0.1, "the input text (1 characters) is too short to split into train and val with a "
                + "validation fraction of 0.1; give more text"),
            ([good], output, 0, "the validation fraction must be between 0 and 1 (got 0.0)"),
            ([good], output, 1, "the validation fraction must be between 0 and 1 (got 1.0)"),
            ([], output, 0.1, "no input text files given"),
            ([good], good, 0.1, "\(good): the output would overwrite the input text file; choose another output path"),
            ([good], dir.file("nowhere/x.h5"), 0.1,
             "\(dir.file("nowhere/x.h5")): directory '\(dir.file("nowhere"))' does not exist; create it first"),
            ([good], dir.path, 0.1, "\(dir.path): is a directory; give a file name"),
        ]
        for (inputs, out, fraction, message) in cases {
            XCTAssertThrowsError(try prepareCharCorpus(inputs: inputs, output: out, valFraction: fraction)) {
                XCTAssertEqual("\($0)", message)
            }
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: output)), before)
        XCTAssertEqual(try dir.contents(), ["binary.txt", "empty.txt", "good.txt", "keep.h5", "latin1.txt", "tiny.txt"])
    }

    func testTextBlocksMaySplitInsideACharacter() throws {
        let text = "aé€😀\r\nz" + String(repeating: "ü😀", count: 5)
        let path = try write(text, "utf8.txt")
        for blockBytes in 1...9 {
            var scalars = String.UnicodeScalarView()
            try TextFileReader.forEachBlock(of: path, blockBytes: blockBytes) { scalars.append(contentsOf: $0) }
            XCTAssertEqual(String(scalars), text, "block size \(blockBytes)")
        }
        let truncated = dir.file("cut.txt")
        try Data(Array("ab€".utf8).dropLast()).write(to: URL(fileURLWithPath: truncated))
        XCTAssertThrowsError(try TextFileReader.forEachBlock(of: truncated, blockBytes: 2) { _ in }) {
            XCTAssertEqual("\($0)", "\(truncated): not UTF-8 text (invalid bytes between offsets 2 and 4)")
        }
    }

    func testAFailedWriteLeavesNoFileAndKeepsTheOldOne() throws {
        struct Interrupted: Error {}
        let path = dir.file("target.h5")
        XCTAssertThrowsError(try AtomicFile.write(to: path) { temporary in
            XCTAssertEqual(temporary, "\(path).tmp-\(getpid())")
            try H5File.create(temporary).setAttribute("format", CorpusFile.format)
            throw Interrupted()
        }) { XCTAssertTrue($0 is Interrupted) }
        XCTAssertEqual(try dir.contents(), [])
        try "old".write(toFile: path, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try AtomicFile.write(to: path) { temporary in
            try "new, partial".write(toFile: temporary, atomically: false, encoding: .utf8)
            throw Interrupted()
        })
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "old")
        XCTAssertEqual(try dir.contents(), ["target.h5"])
        try AtomicFile.write(to: path) { try "new".write(toFile: $0, atomically: false, encoding: .utf8) }
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "new")
        XCTAssertEqual(try dir.contents(), ["target.h5"])
    }

    /// Writes a corpus by hand, so each test can break one thing.
    private func makeCorpus(_ name: String, vocabulary: String = "abc", attributes skip: Set<String> = [],
                            format: String = CorpusFile.format,
                            _ datasets: (H5File) throws -> Void) throws -> String {
        let path = dir.file(name)
        let file = try H5File.create(path)
        let attributes: [(String, Any)] = [
            ("format", format), ("format_version", 1), ("vocab_size", vocabulary.unicodeScalars.count),
            ("tokenizer_kind", "char"), ("tokenizer", vocabulary),
        ]
        for (key, value) in attributes where !skip.contains(key) {
            if let value = value as? String { try file.setAttribute(key, value) }
            if let value = value as? Int { try file.setAttribute(key, value) }
        }
        try datasets(file)
        return path
    }

    private func assertOpenFails(_ path: String, _ message: String, line: UInt = #line) {
        XCTAssertThrowsError(try CorpusFile.open(path), line: line) { XCTAssertEqual("\($0)", message, line: line) }
        XCTAssertThrowsError(try TokenSource(path: path, split: .train), line: line) {
            XCTAssertEqual("\($0)", message, line: line)
        }
    }

    func testDamagedCorporaGiveClearErrors() throws {
        let good: (H5File) throws -> Void = { file in
            try file.write([UInt16(0), 1, 2, 1], shape: [4], to: "/train", chunk: 2)
            try file.write([UInt16(2)], shape: [1], to: "/val", chunk: 1)
        }
        let ok = try makeCorpus("ok.h5", good)
        XCTAssertEqual(try CorpusFile.validate(ok).trainTokens, 4)

        let missing = dir.file("missing.h5")
        assertOpenFails(missing, "\(missing): no such file")
        let text = try write("hello", "text.h5")
        assertOpenFails(text, "\(text): not an HDF5 file (no HDF5 signature found)")
        let noFormat = try makeCorpus("noformat.h5", attributes: ["format"], good)
        assertOpenFails(noFormat, "\(noFormat): not a swiftgpt corpus (no 'format' attribute); make one with "
                        + "`gpt prepare`")
        let checkpoint = try makeCorpus("ckpt.h5", format: "swiftgpt-checkpoint", good)
        assertOpenFails(checkpoint, "\(checkpoint): not a swiftgpt corpus (its format is 'swiftgpt-checkpoint', "
                        + "expected 'swiftgpt-corpus')")
        let noTokenizer = try makeCorpus("notok.h5", attributes: ["tokenizer"], good)
        assertOpenFails(noTokenizer, "\(noTokenizer): corpus is missing the 'tokenizer' attribute; prepare it again")
        let noVal = try makeCorpus("noval.h5") { try $0.write([UInt16(0)], shape: [1], to: "/train") }
        assertOpenFails(noVal, "\(noVal): missing dataset '/val' (a corpus needs /train and /val); prepare it again")
        let floats = try makeCorpus("float.h5") { file in
            try file.write([Float(0)], shape: [1], to: "/train")
            try file.write([UInt16(0)], shape: [1], to: "/val")
        }
        assertOpenFails(floats, "\(floats): dataset '/train' holds float32; token ids must be uint16 or uint32")
        let matrix = try makeCorpus("matrix.h5") { file in
            try file.write([UInt32(0), 1], shape: [1, 2], to: "/train")
            try file.write([UInt32(0)], shape: [1], to: "/val")
        }
        assertOpenFails(matrix, "\(matrix): dataset '/train' has shape [1, 2]; token datasets are 1-D")
        let emptyVal = try makeCorpus("emptyval.h5") { file in
            try file.write([UInt16(0)], shape: [1], to: "/train")
            _ = try file.createExtendible("/val", type: UInt16.self, chunk: 8)
        }
        assertOpenFails(emptyVal, "\(emptyVal): split 'val' is empty; prepare the corpus from more text")
        let badVocab = try makeCorpus("badvocab.h5", vocabulary: "abb", good)
        assertOpenFails(badVocab, "\(badVocab): invalid serialized 'char' tokenizer: character 'b' (U+0062) "
                        + "appears twice in the vocabulary")
        let incomplete = try makeCorpus("incomplete.h5") { file in
            try good(file)
            try file.setAttribute("train_tokens", 1000)
        }
        assertOpenFails(incomplete, "\(incomplete): train_tokens says 1000 but '/train' holds 4 tokens; "
                        + "the file is incomplete, prepare it again")
        let newer = try makeCorpus("newer.h5") { file in
            try good(file)
            try file.setAttribute("format_version", 2)
        }
        assertOpenFails(newer, "\(newer): corpus format_version 2 is newer than this build reads (1); update SwiftGPT")
    }

    func testATokenOutsideTheVocabularyIsFound() throws {
        // A token id outside the vocabulary: found by validation and by every window read that covers it.
        let outOfRange = try makeCorpus("range.h5") { file in
            try file.write([UInt16(0), 1, 2, 3, 0], shape: [5], to: "/train", chunk: 2)
            try file.write([UInt16(2)], shape: [1], to: "/val")
        }
        let message = "\(outOfRange): token id 3 at /train[3] is not below vocab_size 3; the file is damaged or "
            + "its tokens were made with another tokenizer"
        XCTAssertNoThrow(try CorpusFile.open(outOfRange), "open does not scan the tokens")
        XCTAssertThrowsError(try CorpusFile.validate(outOfRange, scanTokens: 2)) { XCTAssertEqual("\($0)", message) }
        let source = try TokenSource(path: outOfRange, split: .train)
        var window = [Int32](repeating: 0, count: 5)
        XCTAssertNoThrow(try source.read(offset: 0, count: 3, into: &window))
        XCTAssertThrowsError(try source.read(offset: 1, count: 4, into: &window)) { XCTAssertEqual("\($0)", message) }
    }
}
