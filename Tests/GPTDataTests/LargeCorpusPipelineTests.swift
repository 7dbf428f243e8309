import XCTest
import TestSupport
import GPTData

/// The EX3 pipeline through the `gpt` binary and the dataset scripts, with the real configs shrunk by overrides.
final class LargeCorpusPipelineTests: XCTestCase {
    private var dir: TemporaryDirectory!

    override func setUpWithError() throws { dir = try TemporaryDirectory() }
    override func tearDown() { dir = nil }

    /// A directory of a few small documents and a Shakespeare-like text.
    private func makeInputs() throws -> (docs: String, play: String) {
        let docs = dir.file("docs")
        try FileManager.default.createDirectory(atPath: docs, withIntermediateDirectories: true)
        var rng = SplitMix(seed: 5)
        let words = ["the", "king", "and", "queen", "spoke", "of", "war", "peace", "love", ",", ".", "\n", "my", "lord"]
        for i in 0..<8 {
            var text = ""
            for _ in 0..<3000 { text += words[Int(rng.next() % UInt64(words.count))] + " " }
            try text.write(toFile: "\(docs)/doc\(i).txt", atomically: false, encoding: .utf8)
        }
        let play = dir.file("play.txt")
        try String(repeating: "ROMEO:\nMy lord, the king spoke of love and war.\n\nJULIET:\nPeace, my love.\n\n", count: 400)
            .write(toFile: play, atomically: false, encoding: .utf8)
        return (docs, play)
    }

    /// Overrides that shrink a config's model and run to a few seconds (the same shape for every run).
    private let tiny = ["n_layer=1", "n_head=2", "n_embd=16", "block_size=16", "batch_size=2", "eval_iters=1",
                        "threads=1", "sample_tokens=8", "max_iters=2", "eval_interval=2", "warmup_iters=1",
                        "lr_decay_iters=2"].flatMap { ["--set", $0] }

    private func config(_ name: String) -> String { packageRootPath() + "/configs/" + name }

    func testPretrainFinetuneAndScratchConfigsRunEndToEnd() throws {
        let (docs, play) = try makeInputs()
        let tok = dir.file("tok.json"), corpus = dir.file("corpus.h5")
        try gpt(["tokenizer", "train", "--vocab-size", "400", "--sample-mb", "1", "--out", tok, docs])
        let prepared = try gpt(["prepare", "--tokenizer", "bpe", "--tokenizer-file", tok, "--val-docs", "2", "--verify",
                                "--out", corpus, docs])
        XCTAssertTrue(prepared.output.contains("8 documents (6 train, 2 val)"), prepared.output)
        XCTAssertTrue(prepared.output.contains("verified: the tokens decode to the documents"), prepared.output)

        // Phase 1: the pretraining config.
        let pre = dir.file("pre")
        let pretrain = try gpt(["train", config("pretrain_large.toml"), "--set", "dataset=\(corpus)",
                                "--set", "out_dir=\(pre)"] + tiny)
        XCTAssertTrue(pretrain.output.contains("(bpe tokenizer)"), pretrain.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: pre + "/best.h5"), pretrain.output)
        let resolved = try String(contentsOfFile: pre + "/config.toml", encoding: .utf8)
        XCTAssertTrue(resolved.contains("learning_rate = 0.0006"), resolved)

        // Shakespeare with the checkpoint's tokenizer, split like the char corpus.
        let data = dir.file("sbpe")
        let script = try TestSupport.run("/bin/bash", [packageRootPath() + "/datasets/shakespeare_bpe/prepare.sh", play, pre + "/best.h5", data],
                             environment: ["GPT": try GPTBinary.path()], timeout: 120)
        XCTAssertEqual(script.status, 0, script.output)
        let finetuneData = data + "/shakespeare_bpe.h5"
        XCTAssertEqual(try storedTokenizer(in: finetuneData) as? BPETokenizer, try readBPETokenizerFile(tok))

        // Phase 2: finetune from the checkpoint; the control from scratch.
        let ft = try gpt(["train", config("finetune_shakespeare.toml"), "--set", "init_from=\(pre)/best.h5",
                          "--set", "dataset=\(finetuneData)", "--set", "out_dir=\(dir.file("ft"))"] + tiny)
        XCTAssertTrue(ft.output.contains("initialising from \(pre)/best.h5"), ft.output)
        XCTAssertTrue(ft.output.contains("lr 3.00e-04"), "the finetune's learning rate: \(ft.output)")
        let scratch = try gpt(["train", config("shakespeare_bpe_scratch.toml"), "--set", "dataset=\(finetuneData)",
                               "--set", "out_dir=\(dir.file("scratch"))"] + tiny)
        XCTAssertFalse(scratch.output.contains("initialising from"), scratch.output)
        XCTAssertTrue(scratch.output.contains("step 2: train loss"), scratch.output)
        XCTAssertTrue(scratch.output.contains("lr 6.00e-04"), "the control keeps its own learning rate: \(scratch.output)")

        // A finetuning corpus made with another tokenizer is refused.
        let char = dir.file("char.h5")
        try gpt(["prepare", "--tokenizer", "char", "--out", char, play])
        let refused = try gpt(["train", config("finetune_shakespeare.toml"), "--set", "init_from=\(pre)/best.h5",
                               "--set", "dataset=\(char)", "--set", "out_dir=\(dir.file("bad"))"] + tiny,
                              expectSuccess: false)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.output.contains("different tokenizer"), refused.output)
    }

    func testPrepareCommandLineChoosesTheTokenizer() throws {
        let (docs, play) = try makeInputs()
        func fails(_ arguments: [String], _ expected: String) throws {
            let r = try gpt(["prepare", "--out", dir.file("x.h5")] + arguments, expectSuccess: false)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.output.contains(expected), "\(arguments): \(r.output)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir.file("x.h5")))
        }
        try fails(["--tokenizer", "bpe", docs], "needs --tokenizer-file tok.json, --vocab-size N or --tokenizer-from")
        try fails(["--tokenizer", "wordpiece", docs], "unknown tokenizer")
        try fails(["--vocab-size", "300", "--tokenizer-file", "t.json", docs], "give one of")
        try fails(["--vocab-size", "300", play], "--split-at-fraction")
        try fails(["--tokenizer", "char", "--val-docs", "2", play], "--val-docs")
        try fails(["--vocab-size", "200", docs], "at least 257")

        // --vocab-size trains a tokenizer on the train documents first and can save it.
        let out = dir.file("c.h5"), saved = dir.file("saved.json")
        let r = try gpt(["prepare", "--vocab-size", "300", "--save-tokenizer", saved, "--val-fraction", "0.25",
                         "--out", out, docs])
        XCTAssertTrue(r.output.contains("8 documents (6 train, 2 val)"), r.output)
        XCTAssertEqual(try CorpusFile.open(out).tokenizer as? BPETokenizer, try readBPETokenizerFile(saved))

        // --tokenizer-from a char corpus makes a char corpus with its vocabulary.
        let charCorpus = dir.file("char.h5")
        try gpt(["prepare", "--out", charCorpus, play])
        let again = dir.file("again.h5")
        try gpt(["prepare", "--tokenizer-from", charCorpus, "--split-at-fraction", "0.8", "--out", again, play])
        let info = try CorpusFile.open(again)
        XCTAssertEqual(info.tokenizer.kind, "char")
        XCTAssertEqual(info.trainTokens, Int(Double(info.trainTokens + info.valTokens) * 0.8))
    }

    func testInterruptedPrepareRemovesItsTemporaryFile() throws {
        // A stand-in for xz that sends some text and then stalls, so the interrupt lands mid-prepare.
        let bin = dir.file("bin")
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try "#!/bin/sh\nprintf 'some text that never ends '\nexec sleep 15\n"
            .write(toFile: bin + "/xz", atomically: false, encoding: .utf8)
        chmod(bin + "/xz", 0o755)
        let docs = dir.file("docs")
        try FileManager.default.createDirectory(atPath: docs, withIntermediateDirectories: true)
        try "first document".write(toFile: docs + "/a.txt", atomically: false, encoding: .utf8)
        try "stalled".write(toFile: docs + "/b.txt.xz", atomically: false, encoding: .utf8)
        let tok = try BPETrainer.train(text: "some text some text", vocabSize: 300)
        try tok.serialized().write(toFile: dir.file("tok.json"), atomically: false, encoding: .utf8)
        let output = dir.file("corpus.h5")
        try "an older corpus".write(toFile: output, atomically: false, encoding: .utf8)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: try GPTBinary.path())
        process.arguments = ["prepare", "--tokenizer-file", dir.file("tok.json"), "--val-docs", "1", "--quiet",
                             "--out", output, docs]
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = bin + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        // Wait for the temporary file, then interrupt.
        let temporary = "\(output).tmp-\(process.processIdentifier)"
        let deadline = Date().addingTimeInterval(30)
        while !FileManager.default.fileExists(atPath: temporary) && Date() < deadline { usleep(10_000) }
        XCTAssertTrue(FileManager.default.fileExists(atPath: temporary), "prepare did not start writing")
        usleep(200_000)
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temporary), "the temporary file is removed")
        XCTAssertEqual(try String(contentsOfFile: output, encoding: .utf8), "an older corpus", "the old file stays")
    }
}
