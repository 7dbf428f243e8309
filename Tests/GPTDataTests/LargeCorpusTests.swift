import XCTest
import GPTCore
import TestSupport
import GPTData

final class LargeCorpusTests: XCTestCase {
    private var dir: TemporaryDirectory!

    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir = nil }

    private static let eot = "<|endoftext|>"

    /// Writes `text` to `relative` under the test directory (creating folders) and returns its path.
    @discardableResult
    private func write(_ text: String, _ relative: String) throws -> String {
        let path = dir.file(relative)
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        return path
    }

    /// A directory of `count` distinct documents (one big enough to span several read blocks), plus a hidden file.
    private func makeDocuments(_ folder: String, count: Int = 24) throws -> [String: String] {
        var docs: [String: String] = [:]
        var rng = SplitMix(seed: 99)
        let words = ["the", "king", "queen", "said", "and", "of", "river", "über", "naïve", "日本", "1,024", "don't",
                     "--", "\n", "\n\n", "  ", "\t", "!", "?", "🙂"]
        for i in 0..<count {
            let n = i == 5 ? 700_000 : 200 + Int(rng.next() % 3000) // document 5: ~2.5 MB
            var text = "Document \(i).\n"
            for _ in 0..<n { text += words[Int(rng.next() % UInt64(words.count))] + " " }
            let name = i % 3 == 0 ? "sub/doc\(i).txt" : "doc\(i).txt"
            docs[name] = text
            try write(text, "\(folder)/\(name)")
        }
        docs["empty.txt"] = ""
        try write("", "\(folder)/empty.txt")
        try write("hidden, never read", "\(folder)/.hidden.txt")
        return docs
    }

    /// Every token of `split` of the corpus at `path`.
    private func tokens(_ path: String, _ split: CorpusSplit) throws -> [Int32] {
        let source = try TokenSource(path: path, split: split)
        var out = [Int32](repeating: -1, count: source.count)
        try out.withUnsafeMutableBufferPointer { try source.read(offset: 0, count: source.count, into: $0.baseAddress!) }
        return out
    }

    /// The documents of a decoded split (each ends with the end token).
    private func documents(of text: String) -> [String] {
        XCTAssertTrue(text.hasSuffix(Self.eot), "a split ends with the end token")
        return Array(text.components(separatedBy: Self.eot).dropLast())
    }

    private func tokenizer(for docs: [String: String]) throws -> BPETokenizer {
        var words = WordCounts()
        for text in docs.values.sorted() { words.add(String(text.prefix(20_000))) }
        return try BPETrainer.train(words: words, vocabSize: 600)
    }

    // MARK: - Split by document

    func testPrepareSplitsByDocumentAndDecodesToTheDocuments() throws {
        let docs = try makeDocuments("corpus")
        let tok = try tokenizer(for: docs)
        let output = dir.file("corpus.h5")
        var options = BPECorpusOptions()
        options.threads = 2
        options.batchBytes = 256 << 10 // many batches
        let report = try prepareBPECorpus(inputs: [dir.file("corpus")], output: output, tokenizer: tok, options: options)

        // Documents: every file below the directory, in path order, hidden ones skipped.
        let names = docs.keys.sorted()
        XCTAssertEqual(report.documents, names.count)
        XCTAssertEqual(report.valDocuments, Int((Double(names.count) * 0.1).rounded()))
        XCTAssertEqual(report.trainDocuments + report.valDocuments, names.count)
        XCTAssertEqual(report.textBytes, docs.values.reduce(0) { $0 + $1.utf8.count })

        let info = report.info
        XCTAssertEqual(info.vocabSize, tok.vocabSize)
        XCTAssertEqual(info.tokenizer as? BPETokenizer, tok)
        XCTAssertEqual(info.dtype, .uint16)
        XCTAssertEqual(try dir.contents(), ["corpus", "corpus.h5"], "no temporary file is left")

        let file = try H5File.open(output)
        XCTAssertEqual(try file.stringAttribute("tokenizer_kind"), "bpe")
        XCTAssertEqual(try file.stringAttribute("tokenizer"), tok.serialized())
        XCTAssertEqual(try file.intAttribute("documents"), names.count)
        XCTAssertEqual(try file.intAttribute("train_documents"), report.trainDocuments)
        XCTAssertEqual(try file.intAttribute("val_documents"), report.valDocuments)
        XCTAssertEqual(try file.stringAttribute("split"), "by_document")
        XCTAssertEqual(try file.intAttribute("split_seed"), 1337)
        XCTAssertEqual(try file.doubleAttribute("split_fraction"), 0.1)
        XCTAssertEqual(try file.intAttribute("text_bytes"), report.textBytes)
        XCTAssertEqual(try file.stringAttribute("source"), dir.file("corpus"))
        XCTAssertEqual(try file.elementType(of: "/train"), .uint16)
        file.close()

        // decode(tokens) is the split's documents, in input order, each followed by the end token.
        let train = try tokens(output, .train), val = try tokens(output, .val)
        XCTAssertEqual(train.filter { $0 == tok.endOfTextID }.count, report.trainDocuments)
        XCTAssertEqual(val.filter { $0 == tok.endOfTextID }.count, report.valDocuments)
        let trainDocs = documents(of: tok.decode(train)), valDocs = documents(of: tok.decode(val))
        let byText = Dictionary(names.map { (docs[$0]!, $0) }, uniquingKeysWith: { a, _ in a })
        let trainNames = trainDocs.map { byText[$0] ?? "?" }, valNames = valDocs.map { byText[$0] ?? "?" }
        XCTAssertEqual((trainNames + valNames).sorted(), names)
        XCTAssertEqual(trainNames, names.filter(trainNames.contains), "train documents keep the input order")
        XCTAssertEqual(valNames, names.filter(valNames.contains))
        XCTAssertEqual(tok.decode(train), trainNames.map { docs[$0]! + Self.eot }.joined())
        XCTAssertEqual(try verifyBPECorpus(output, documents: CorpusInputs.documents([dir.file("corpus")]),
                                           options: options), report.textBytes)
    }

    func testSplitIsIndependentOfLocationAndOrder() throws {
        let docs = try makeDocuments("corpus", count: 12)
        let tok = try tokenizer(for: docs)
        var options = BPECorpusOptions()
        options.split = .byDocument(fraction: 0.1, documents: 3)
        let a = try CorpusInputs.documents([dir.file("corpus")])
        try FileManager.default.createDirectory(atPath: dir.file("x/y"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: dir.file("corpus"), toPath: dir.file("x/y/corpus"))
        let b = try CorpusInputs.documents([dir.file("x/y/corpus")]).reversed()
        XCTAssertEqual(a.map(\.name), b.reversed().map(\.name))
        XCTAssertTrue(a.allSatisfy { $0.name.hasPrefix("corpus/") }, "\(a.map(\.name))")
        let heldA = try heldOutDocuments(a, fraction: 0.1, count: 3, seed: 1337).map { a[$0].name }
        let bList = Array(b)
        let heldB = try heldOutDocuments(bList, fraction: 0.1, count: 3, seed: 1337).map { bList[$0].name }
        XCTAssertEqual(Set(heldA), Set(heldB))
        XCTAssertEqual(heldA.count, 3)
        let heldC = try heldOutDocuments(a, fraction: 0.1, count: 3, seed: 7).map { a[$0].name }
        XCTAssertNotEqual(Set(heldA), Set(heldC), "another seed holds out other documents")

        let output = dir.file("c.h5")
        let report = try prepareBPECorpus(documents: bList, sources: ["x"], output: output, tokenizer: tok,
                                          options: options)
        XCTAssertEqual(report.valDocuments, 3)
        let valText = tok.decode(try tokens(output, .val))
        XCTAssertEqual(valText, bList.indices.filter { heldB.contains(bList[$0].name) }
            .map { docs[String(bList[$0].name.dropFirst("corpus/".count))]! + Self.eot }.joined())
    }

    func testCompressedDocumentsAndIncludePatterns() throws {
        guard let gzip = findExecutable("gzip"), let xz = findExecutable("xz") else {
            throw XCTSkip("gzip or xz is not installed")
        }
        try write("plain text document\n", "mix/a.txt")
        try write("gzip compressed document\n", "mix/b.txt")
        try write("xz compressed document\n", "mix/c.txt")
        try write("not text at all", "mix/notes.md")
        XCTAssertEqual(try runProcess(gzip, [dir.file("mix/b.txt")]).status, 0)
        XCTAssertEqual(try runProcess(xz, [dir.file("mix/c.txt")]).status, 0)
        let documents = try CorpusInputs.documents([dir.file("mix")], include: ["*.txt", "*.txt.gz", "*.txt.xz"])
        XCTAssertEqual(documents.map(\.name), ["mix/a.txt", "mix/b.txt.gz", "mix/c.txt.xz"])
        XCTAssertEqual(documents.map(\.compression), [.none, .gzip, .xz])
        let tok = try BPETrainer.train(text: "compressed document text", vocabSize: 300)
        var options = BPECorpusOptions()
        options.split = .byDocument(fraction: 0.1, documents: 1)
        let output = dir.file("mix.h5")
        let report = try prepareBPECorpus(documents: documents, sources: [dir.file("mix")], output: output, tokenizer: tok,
                                          options: options)
        let all = tok.decode(try tokens(output, .train)) + tok.decode(try tokens(output, .val))
        for text in ["plain text document\n", "gzip compressed document\n", "xz compressed document\n"] {
            XCTAssertTrue(all.contains(text + Self.eot), all)
        }
        XCTAssertEqual(report.textBytes, 20 + 25 + 23)

        // A damaged compressed file is an error naming it.
        try write("this is not xz data", "bad/d.txt.xz")
        try write("fine", "bad/e.txt")
        XCTAssertThrowsError(try prepareBPECorpus(inputs: [dir.file("bad")], output: dir.file("bad.h5"), tokenizer: tok,
                                                  options: options)) { error in
            XCTAssertTrue("\(error)".contains("d.txt.xz") && "\(error)".contains("xz -dc"), "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("bad.h5")))
    }

    func testVocabulariesAbove65536UseUInt32Tokens() throws {
        // Every pair of bytes as a merge: 65,536 two-byte tokens, vocab 65,793, stored as a ~600 KB attribute.
        var merges: [BPEMerge] = []
        for a in 0..<256 { for b in 0..<256 { merges.append(BPEMerge(Int32(a), Int32(b))) } }
        let tok = try BPETokenizer(merges: merges)
        XCTAssertEqual(tok.vocabSize, 65_793)
        let docs = try makeDocuments("corpus", count: 4)
        var options = BPECorpusOptions()
        options.split = .byDocument(fraction: 0.1, documents: 1)
        let output = dir.file("wide.h5")
        let report = try prepareBPECorpus(inputs: [dir.file("corpus")], output: output, tokenizer: tok, options: options)
        XCTAssertEqual(report.info.dtype, .uint32)
        XCTAssertEqual(try H5File.open(output).elementType(of: "/val"), .uint32)
        let train = try tokens(output, .train), val = try tokens(output, .val)
        XCTAssertTrue((train + val).contains { $0 > 65_535 })
        let decoded = documents(of: tok.decode(train)) + documents(of: tok.decode(val))
        XCTAssertEqual(decoded.sorted(), docs.values.sorted())
        XCTAssertEqual(try storedTokenizer(in: output) as? BPETokenizer, tok)
    }

    // MARK: - Split at a fraction

    func testSplitAtFractionHasTheCharacterCorpusValText() throws {
        let text = String(repeating: "ROMEO:\nBut soft, what light through yonder window breaks?\nJULIET: ¿Qué? ", count: 300)
        let input = try write(text, "input.txt")
        let tok = try BPETrainer.train(text: text, vocabSize: 320)
        var options = BPECorpusOptions()
        options.split = .atFraction(0.9)
        let output = dir.file("bpe.h5")
        let report = try prepareBPECorpus(inputs: [input], output: output, tokenizer: tok, options: options)
        XCTAssertEqual(report.documents, 1)
        XCTAssertEqual(report.trainDocuments, 1)
        XCTAssertEqual(report.valDocuments, 1)

        // The char corpus of the same text: first 90% of the characters train, the rest val.
        let char = try prepareCharCorpus(inputs: [input], output: dir.file("char.h5"), valFraction: 0.1)
        let charVal = char.tokenizer.decode(try tokens(dir.file("char.h5"), .val))
        let charTrain = char.tokenizer.decode(try tokens(dir.file("char.h5"), .train))
        XCTAssertEqual(tok.decode(try tokens(output, .val)), charVal + Self.eot)
        XCTAssertEqual(tok.decode(try tokens(output, .train)), charTrain)
        let file = try H5File.open(output)
        XCTAssertEqual(try file.stringAttribute("split"), "at_fraction")
        XCTAssertEqual(try file.doubleAttribute("split_fraction"), 0.9)
        XCTAssertEqual(try verifyBPECorpus(output, documents: CorpusInputs.documents([input]), options: options),
                       text.utf8.count)
    }

    // MARK: - Failures

    func testInterruptedPrepareLeavesNoFileAndKeepsTheOldOne() throws {
        let docs = try makeDocuments("corpus", count: 10)
        let tok = try tokenizer(for: docs)
        let output = try write("an older corpus", "corpus.h5")
        var options = BPECorpusOptions()
        options.batchBytes = 64 << 10
        struct Stop: Error {}
        XCTAssertThrowsError(try prepareBPECorpus(documents: CorpusInputs.documents([dir.file("corpus")]), sources: [],
                                                  output: output, tokenizer: tok, options: options,
                                                  afterBatch: { if $0 == 3 { throw Stop() } })) { error in
            XCTAssertTrue(error is Stop)
        }
        XCTAssertEqual(try String(contentsOfFile: output, encoding: .utf8), "an older corpus")
        XCTAssertEqual(try dir.contents(), ["corpus", "corpus.h5"], "the temporary file is removed")
    }

    func testBadInputsAreClearErrors() throws {
        let tok = try BPETrainer.train(text: "some text some text", vocabSize: 300)
        let one = try write("just one document", "one/a.txt")
        func message(_ body: () throws -> Void) -> String {
            do { try body() } catch { return "\(error)" }
            return "no error"
        }
        XCTAssertTrue(message { try prepareBPECorpus(inputs: [one], output: self.dir.file("o.h5"), tokenizer: tok) }
            .contains("--split-at-fraction"))
        XCTAssertTrue(message { _ = try CorpusInputs.documents([self.dir.file("missing")]) }.contains("no such file"))
        XCTAssertTrue(message { _ = try CorpusInputs.documents([one, one]) }.contains("listed twice"))
        try write("x", "arch/data.tar.xz")
        XCTAssertTrue(message { _ = try CorpusInputs.documents([self.dir.file("arch")]) }.contains("unpack it first"))
        XCTAssertTrue(message { _ = try CorpusInputs.documents([self.dir.file("one/*.md")]) }.contains("no files match"))
        XCTAssertEqual(try CorpusInputs.documents([dir.file("one/*.txt")]).map(\.name), ["a.txt"])
        try write("second", "one/b.txt")
        let two = try CorpusInputs.documents([dir.file("one")])
        XCTAssertTrue(message { _ = try heldOutDocuments(two, fraction: 0.1, count: 2, seed: 1) }.contains("--val-docs"))
        // NUL bytes mean a binary file.
        try Data([0x61, 0x00, 0x62]).write(to: URL(fileURLWithPath: dir.file("one/c.bin")))
        var options = BPECorpusOptions()
        options.split = .byDocument(fraction: 0.1, documents: 1)
        let m = message { try prepareBPECorpus(inputs: [self.dir.file("one")], output: self.dir.file("o.h5"),
                                               tokenizer: tok, options: options) }
        XCTAssertTrue(m.contains("c.bin") && m.contains("NUL byte at offset 1"), m)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("o.h5")))
    }

    // MARK: - Tokenizer from another file

    func testTokenizerComesBackFromACorpusOrACheckpoint() throws {
        let docs = try makeDocuments("corpus", count: 4)
        let tok = try tokenizer(for: docs)
        let corpus = dir.file("corpus.h5")
        var options = BPECorpusOptions()
        options.split = .byDocument(fraction: 0.1, documents: 1)
        try prepareBPECorpus(inputs: [dir.file("corpus")], output: corpus, tokenizer: tok, options: options)
        XCTAssertEqual(try storedTokenizer(in: corpus) as? BPETokenizer, tok)

        let config = GPTConfig(vocabSize: tok.vocabSize, blockSize: 4, nLayer: 1, nHead: 1, nEmbd: 4)
        let checkpoint = Checkpoint(modelConfig: config, parameters: [Float](repeating: 0, count: ParameterLayout(config: config).count),
                                    tokenizerKind: tok.kind, tokenizer: tok.serialized())
        try checkpoint.write(to: dir.file("ckpt.h5"))
        XCTAssertEqual(try storedTokenizer(in: dir.file("ckpt.h5")) as? BPETokenizer, tok)

        let char = try prepareCharCorpus(inputs: [try write("abc abc", "t.txt")], output: dir.file("char.h5"))
        XCTAssertEqual(try storedTokenizer(in: dir.file("char.h5")) as? CharTokenizer, char.tokenizer as? CharTokenizer)
        let plain = try H5File.create(dir.file("plain.h5"))
        try plain.setAttribute("format", "something-else")
        plain.close()
        XCTAssertThrowsError(try storedTokenizer(in: dir.file("plain.h5"))) { error in
            XCTAssertTrue("\(error)".contains("neither a swiftgpt corpus nor a checkpoint"), "\(error)")
        }
    }
}
