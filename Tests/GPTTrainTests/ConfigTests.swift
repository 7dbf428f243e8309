import Foundation
import GPTCore
import GPTTrain
import XCTest

final class ConfigTests: XCTestCase {
    // MARK: - Helpers

    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ConfigTests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: directory)
    }

    /// Writes `text` to a file in the test directory and returns its path.
    func write(_ text: String, name: String = "run.toml") throws -> String {
        let url = directory.appendingPathComponent(name)
        try text.write(to: url, atomically: false, encoding: .utf8)
        return url.path
    }

    /// The one-line message of the `ConfigError` that `body` throws.
    func message(_ body: () throws -> Any, file: StaticString = #filePath, line: UInt = #line) -> String {
        do {
            _ = try body()
            XCTFail("expected a ConfigError", file: file, line: line)
            return ""
        } catch let error as ConfigError {
            let text = error.description
            XCTAssertFalse(text.contains("\n"), "error message must be one line: \(text)", file: file, line: line)
            return text
        } catch {
            XCTFail("expected a ConfigError, got \(error)", file: file, line: line)
            return ""
        }
    }

    /// The package root (for configs/ and docs/).
    private var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    // MARK: - Defaults

    func testDefaults() throws {
        let c = try TrainConfig.load(path: nil, overrides: [])
        XCTAssertEqual(c, TrainConfig())
        XCTAssertEqual(c.problems(), [])
        XCTAssertEqual(c.outDir, "runs/default")
        XCTAssertEqual(c.evalInterval, 250)
        XCTAssertEqual(c.logInterval, 10)
        XCTAssertEqual(c.evalIters, 200)
        XCTAssertFalse(c.evalOnly)
        XCTAssertTrue(c.alwaysSaveCheckpoint)
        XCTAssertEqual(c.initFrom, "scratch")
        XCTAssertEqual(c.keepCheckpoints, 3)
        XCTAssertEqual(c.sampleTokens, 200)
        XCTAssertEqual(c.samplePrompt, "\n")
        XCTAssertEqual(c.checkInterval, 100)
        XCTAssertEqual(c.dataset, "data/shakespeare_char/shakespeare_char.h5")
        XCTAssertEqual(c.gradientAccumulationSteps, 1)
        XCTAssertEqual(c.batchSize, 64)
        XCTAssertEqual(c.blockSize, 256)
        XCTAssertEqual(c.nLayer, 6)
        XCTAssertEqual(c.nHead, 6)
        XCTAssertEqual(c.nEmbd, 384)
        XCTAssertEqual(c.dropout, 0.2)
        XCTAssertFalse(c.bias)
        XCTAssertTrue(c.tieWeights)
        XCTAssertEqual(c.learningRate, 1e-3)
        XCTAssertEqual(c.maxIters, 5000)
        XCTAssertEqual(c.weightDecay, 0.1)
        XCTAssertEqual(c.beta1, 0.9)
        XCTAssertEqual(c.beta2, 0.99)
        XCTAssertEqual(c.gradClip, 1.0)
        XCTAssertTrue(c.decayLR)
        XCTAssertEqual(c.warmupIters, 100)
        XCTAssertEqual(c.lrDecayIters, 5000)
        XCTAssertEqual(c.minLR, 1e-4)
        XCTAssertEqual(c.seed, 1337)
        XCTAssertEqual(c.threads, 0)
        XCTAssertTrue(c.overlapComm)
        XCTAssertEqual(c.bucketMB, 4)
        XCTAssertEqual(c.nonfinite, .skip)
        XCTAssertEqual(c.maxNonfiniteSkips, 10)
        XCTAssertEqual(c.collectiveTimeout, 300)
    }

    func testEveryCodingKeyIsAConfigKey() {
        XCTAssertEqual(TrainConfig.keys.count, TrainConfig.CodingKeys.allCases.count)
        XCTAssertEqual(Set(TrainConfig.keys), Set(TrainConfig.CodingKeys.allCases.map(\.rawValue)))
        XCTAssertEqual(TrainConfig.keys.first, "out_dir")
    }

    // MARK: - File and overrides

    func testFileOverridesSomeKeys() throws {
        let path = try write("""
            # a comment
            out_dir = "runs/test"   # trailing comment
            batch_size = 8
            learning_rate = 3e-4
            bucket_mb = 4            # an integer is fine for a number key
            decay_lr = false
            nonfinite = "stop"
            sample_prompt = "ROMEO:\\n"
            """)
        let c = try TrainConfig.load(path: path, overrides: [])
        var expected = TrainConfig()
        expected.outDir = "runs/test"
        expected.batchSize = 8
        expected.learningRate = 3e-4
        expected.bucketMB = 4
        expected.decayLR = false
        expected.nonfinite = .stop
        expected.samplePrompt = "ROMEO:\n"
        XCTAssertEqual(c, expected)
    }

    func testOverridesOfEveryValueType() throws {
        let path = try write("batch_size = 8\nout_dir = \"runs/file\"\n")
        let c = try TrainConfig.load(path: path, overrides: [
            "batch_size=32",                // int, beats the file
            "max_iters=10_000",             // int with TOML digit separators
            "--eval_iters=5",               // nanoGPT's --key=value form
            "learning_rate=1e-3",           // float in exponent form
            "min_lr=0.0001",                // float in decimal form
            "weight_decay=0",               // an integer for a float key
            "dropout = 0.1",                // spaces around '='
            "decay_lr=False",               // Python-style bool
            "bias=true",
            "eval_only=\"true\"",           // quoted bool
            "out_dir=runs/cli",             // string without quotes, beats the file
            "dataset=\"data/a b.h5\"",      // string in double quotes
            "init_from='ckpt/base.h5'",     // string in single quotes
            "sample_prompt=\"First:\\n\"",  // TOML escapes apply inside double quotes
            "nonfinite=stop",               // choice
            "collective_timeout=2.5",
        ])
        XCTAssertEqual(c.batchSize, 32)
        XCTAssertEqual(c.maxIters, 10_000)
        XCTAssertEqual(c.evalIters, 5)
        XCTAssertEqual(c.learningRate, 1e-3)
        XCTAssertEqual(c.minLR, 1e-4)
        XCTAssertEqual(c.weightDecay, 0)
        XCTAssertEqual(c.dropout, 0.1)
        XCTAssertFalse(c.decayLR)
        XCTAssertTrue(c.bias)
        XCTAssertTrue(c.evalOnly)
        XCTAssertEqual(c.outDir, "runs/cli")
        XCTAssertEqual(c.dataset, "data/a b.h5")
        XCTAssertEqual(c.initFrom, "ckpt/base.h5")
        XCTAssertEqual(c.samplePrompt, "First:\n")
        XCTAssertEqual(c.nonfinite, .stop)
        XCTAssertEqual(c.collectiveTimeout, 2.5)
        // Quotes that do not make one TOML string are an error, not silently kept.
        XCTAssertEqual(message { try TrainConfig.load(path: nil, overrides: ["init_from='it''s'"]) },
                       "command-line override: init_from must be a correctly quoted string (TOML escapes inside double quotes), got \"'it''s'\"")
        // Single quotes are literal: no escapes.
        let literal = try TrainConfig.load(path: nil, overrides: ["init_from='C:\\ckpt'"])
        XCTAssertEqual(literal.initFrom, "C:\\ckpt")
    }

    func testRNGIsCounterOrTorch() throws {
        XCTAssertEqual(try TrainConfig.load(path: nil, overrides: []).rng, .counter)
        XCTAssertEqual(try TrainConfig.load(path: nil, overrides: ["rng=torch"]).rng, .torch)
        let m = message { try TrainConfig.load(path: nil, overrides: ["rng=numpy"]) }
        XCTAssertEqual(m, "command-line override: rng must be \"counter\" or \"torch\", got \"numpy\"")
    }

    func testLaterOverrideWins() throws {
        let c = try TrainConfig.load(path: nil, overrides: ["seed=1", "seed=2"])
        XCTAssertEqual(c.seed, 2)
    }

    func testMalformedOverride() {
        let m = message { try TrainConfig.load(path: nil, overrides: ["batch_size"]) }
        XCTAssertTrue(m.contains("\"batch_size\" must look like key=value"), m)
        let empty = message { try TrainConfig.load(path: nil, overrides: ["=3"]) }
        XCTAssertTrue(empty.contains("key=value"), empty)
    }

    // MARK: - Unknown keys

    func testUnknownKeyInFile() throws {
        let path = try write("batch_size = 8\n\nbatch_szie = 16\n")
        let m = message { try TrainConfig.load(path: path, overrides: []) }
        XCTAssertTrue(m.hasPrefix("\(path):3: unknown config key \"batch_szie\""), m)
        XCTAssertTrue(m.contains("did you mean \"batch_size\"?"), m)
        XCTAssertTrue(m.contains("valid keys: out_dir, eval_interval"), m)
        for key in TrainConfig.keys { XCTAssertTrue(m.contains(key), "\(key) missing from: \(m)") }
    }

    func testUnknownKeyInOverride() {
        let m = message { try TrainConfig.load(path: nil, overrides: ["n_layers=4"]) }
        XCTAssertTrue(m.hasPrefix("command-line override: unknown config key \"n_layers\""), m)
        XCTAssertTrue(m.contains("did you mean \"n_layer\"?"), m)
        XCTAssertTrue(m.contains("valid keys: "), m)
        XCTAssertTrue(m.contains("collective_timeout"), m)

        let far = message { try TrainConfig.load(path: nil, overrides: ["device=cpu"]) }
        XCTAssertTrue(far.contains("unknown config key \"device\""), far)
        XCTAssertFalse(far.contains("did you mean"), far)

        let alias = message { try TrainConfig.load(path: nil, overrides: ["lr=1e-3"]) }
        XCTAssertTrue(alias.contains("unknown config key \"lr\" (did you mean \"learning_rate\"?)"), alias)

        let dashed = message { try TrainConfig.load(path: nil, overrides: ["--learning-rate=1"]) }
        XCTAssertTrue(dashed.contains("did you mean \"learning_rate\"?"), dashed)
    }

    func testTablesAreRejected() throws {
        let path = try write("seed = 1\n[model]\nn_layer = 4\n")
        let m = message { try TrainConfig.load(path: path, overrides: []) }
        XCTAssertTrue(m.hasPrefix("\(path):2: [model] is a table"), m)
        XCTAssertTrue(m.contains("top-level"), m)
    }

    // MARK: - Types and ranges

    func testWrongTypeInFile() throws {
        let cases: [(String, String)] = [
            ("batch_size = \"big\"", "batch_size must be an integer, got \"big\""),
            ("batch_size = 2.5", "batch_size must be an integer, got 2.5"),
            ("learning_rate = \"fast\"", "learning_rate must be a number, got \"fast\""),
            ("decay_lr = 1", "decay_lr must be true or false, got 1"),
            ("out_dir = 5", "out_dir must be a string, got 5"),
            ("dataset = [\"a\", \"b\"]", "dataset must be a string, got an array"),
            ("nonfinite = \"ignore\"", "nonfinite must be \"skip\" or \"stop\", got \"ignore\""),
        ]
        for (line, expected) in cases {
            let path = try write("seed = 1\n" + line + "\n")
            let m = message { try TrainConfig.load(path: path, overrides: []) }
            XCTAssertEqual(m, "\(path):2: \(expected)")
        }
    }

    func testWrongTypeInOverride() {
        let cases: [(String, String)] = [
            ("batch_size=big", "batch_size must be an integer, got \"big\""),
            ("batch_size=\"big\"", "batch_size must be an integer, got \"\\\"big\\\"\""),
            ("max_iters=5e3", "max_iters must be an integer, got \"5e3\""),
            ("learning_rate=fast", "learning_rate must be a number, got \"fast\""),
            ("learning_rate=", "learning_rate must be a number, got \"\""),
            ("bias=yes", "bias must be true or false, got \"yes\""),
            ("nonfinite=ignore", "nonfinite must be \"skip\" or \"stop\", got \"ignore\""),
        ]
        for (override, expected) in cases {
            let m = message { try TrainConfig.load(path: nil, overrides: [override]) }
            XCTAssertEqual(m, "command-line override: \(expected)")
        }
    }

    func testOutOfRange() throws {
        let cases: [([String], String)] = [
            (["batch_size=0"], "batch_size must be at least 1 (got 0)"),
            (["block_size=0"], "block_size must be at least 1"),
            (["learning_rate=0"], "learning_rate must be a finite number > 0 (got 0.0)"),
            (["learning_rate=nan"], "learning_rate must be a finite number > 0 (got nan)"),
            (["dropout=1"], "dropout must be in [0, 1)"),
            (["dropout=-0.1"], "dropout must be in [0, 1)"),
            (["n_embd=100"], "n_embd (100) must be divisible by n_head (6)"),
            (["warmup_iters=6000"], "warmup_iters (6000) must not exceed lr_decay_iters (5000) when decay_lr = true"),
            (["min_lr=0.01"], "min_lr (0.01) must not exceed learning_rate (0.001)"),
            (["eval_iters=0"], "eval_iters must be at least 1"),
            (["gradient_accumulation_steps=0"], "gradient_accumulation_steps must be at least 1"),
            (["eval_interval=0"], "eval_interval must be at least 1"),
            (["log_interval=0"], "log_interval must be at least 1"),
            (["max_iters=0"], "max_iters must be at least 1"),
            (["beta2=1"], "beta2 must be in [0, 1)"),
            (["weight_decay=-1"], "weight_decay must be a finite number >= 0"),
            (["grad_clip=-1"], "grad_clip must be a finite number >= 0"),
            (["threads=-1"], "threads must be at least 0"),
            (["bucket_mb=0"], "bucket_mb must be a finite number > 0"),
            (["keep_checkpoints=-1"], "keep_checkpoints must be at least 0"),
            (["sample_prompt="], "sample_prompt must not be empty when sample_tokens > 0"),
            (["out_dir="], "out_dir must not be empty"),
            (["dataset=\"\""], "dataset must be the path of a corpus HDF5 file"),
            (["init_from="], "init_from must be \"scratch\", \"resume\" or a checkpoint path"),
            (["max_nonfinite_skips=-1"], "max_nonfinite_skips must be at least 0"),
            (["collective_timeout=-1"], "collective_timeout must be a finite number >= 0"),
        ]
        for (overrides, expected) in cases {
            let m = message { try TrainConfig.load(path: nil, overrides: overrides) }
            XCTAssertTrue(m.hasPrefix("invalid config: "), m)
            XCTAssertTrue(m.contains(expected), "\(overrides): expected \"\(expected)\" in: \(m)")
        }
        // Every problem is reported at once, on one line.
        let both = message { try TrainConfig.load(path: nil, overrides: ["batch_size=0", "eval_iters=0"]) }
        XCTAssertTrue(both.contains("eval_iters must be at least 1 (got 0); batch_size must be at least 1 (got 0)"), both)
        // The cross-key rules only apply when they mean something.
        XCTAssertNoThrow(try TrainConfig.load(path: nil, overrides: ["decay_lr=false", "warmup_iters=6000"]))
        XCTAssertNoThrow(try TrainConfig.load(path: nil, overrides: ["sample_tokens=0", "sample_prompt="]))
        XCTAssertNoThrow(try TrainConfig.load(path: nil, overrides: ["dropout=0", "grad_clip=0", "check_interval=0"]))
    }

    // MARK: - Bad files

    func testMalformedTOML() throws {
        let path = try write("seed = 1\nbatch_size = 8\nlearning_rate = = 3\n")
        let m = message { try TrainConfig.load(path: path, overrides: []) }
        XCTAssertTrue(m.hasPrefix("\(path):3:"), m)
        XCTAssertTrue(m.contains("malformed TOML"), m)

        let duplicate = try write("seed = 1\nseed = 2\n", name: "dup.toml")
        let d = message { try TrainConfig.load(path: duplicate, overrides: []) }
        XCTAssertTrue(d.hasPrefix("\(duplicate):2:"), d)
    }

    func testMissingFile() {
        let path = directory.appendingPathComponent("nope.toml").path
        let m = message { try TrainConfig.load(path: path, overrides: []) }
        XCTAssertEqual(m, "config file \"\(path)\" not found; pass the path of a TOML file such as configs/shakespeare_char.toml")
        let dir = message { try TrainConfig.load(path: directory.path, overrides: []) }
        XCTAssertTrue(dir.contains("is a directory"), dir)
    }

    // MARK: - Writing

    func testToTOMLRoundTrip() throws {
        var c = TrainConfig()
        c.outDir = "runs/quote\" back\\slash tab\t ünïcode"
        c.samplePrompt = "\nKING RICHARD III:\r\u{1}"
        c.initFrom = "resume"
        c.batchSize = 7
        c.learningRate = 3e-5
        c.minLR = 1e-7
        c.dropout = 0.1
        c.bucketMB = 0.5
        c.decayLR = false
        c.tieWeights = false
        c.nonfinite = .stop
        c.collectiveTimeout = 0
        c.seed = 0
        let text = c.toTOML()
        XCTAssertTrue(text.contains("\n# AdamW optimizer\nlearning_rate = 3e-05\n"), text)
        XCTAssertEqual(try TrainConfig.load(toml: text, source: "config.toml"), c)
        // Through a file, as it is stored in a run directory.
        let path = try write(text, name: "config.toml")
        XCTAssertEqual(try TrainConfig.load(path: path, overrides: []), c)
        // Every key appears exactly once.
        for key in TrainConfig.keys {
            XCTAssertEqual(text.components(separatedBy: "\n\(key) = ").count, 2, key)
        }
        XCTAssertEqual(try TrainConfig.load(toml: TrainConfig().toTOML(), source: "defaults"), TrainConfig())
    }

    func testCodable() throws {
        let partial = try JSONDecoder().decode(TrainConfig.self, from: Data(#"{"batch_size": 8, "nonfinite": "stop"}"#.utf8))
        var expected = TrainConfig()
        expected.batchSize = 8
        expected.nonfinite = .stop
        XCTAssertEqual(partial, expected)
        let json = try JSONEncoder().encode(expected)
        XCTAssertTrue(String(decoding: json, as: UTF8.self).contains(#""learning_rate":"#))
        XCTAssertEqual(try JSONDecoder().decode(TrainConfig.self, from: json), expected)
    }

    // MARK: - Derived values

    func testModelConfig() {
        var c = TrainConfig()
        c.nLayer = 4; c.nHead = 4; c.nEmbd = 128; c.blockSize = 64; c.dropout = 0.25; c.bias = false
        let m = c.modelConfig(vocabSize: 65)
        XCTAssertEqual(m, GPTConfig(vocabSize: 65, blockSize: 64, nLayer: 4, nHead: 4, nEmbd: 128,
                                    dropout: 0.25, bias: false, tieWeights: true))
    }

    func testLearningRateSchedule() {
        var c = TrainConfig()  // lr 1e-3, min 1e-4, warmup 100, decay to 5000
        XCTAssertEqual(c.lrSchedule, LRSchedule(learningRate: 1e-3, minLR: 1e-4, warmupIters: 100, decayIters: 5000))
        var s = c.lrSchedule
        XCTAssertEqual(s.lr(at: 0), 1e-3 / 101, accuracy: 1e-9)
        XCTAssertEqual(s.lr(at: 99), 1e-3 * 100 / 101, accuracy: 1e-9)
        XCTAssertEqual(s.lr(at: 100), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(s.lr(at: 2550), (1e-3 + 1e-4) / 2, accuracy: 1e-9)
        XCTAssertEqual(s.lr(at: 5000), 1e-4)  // the cosine ends exactly at min_lr
        XCTAssertEqual(s.lr(at: 9000), 1e-4)
        for step in 100..<5000 { XCTAssertGreaterThanOrEqual(s.lr(at: step), s.lr(at: step + 1)) }
        c.warmupIters = 0
        XCTAssertEqual(c.lrSchedule.lr(at: 0), 1e-3, accuracy: 1e-9)
        c.warmupIters = 5000
        s = c.lrSchedule
        XCTAssertEqual(s.lr(at: 5000), 1e-3, accuracy: 1e-9)  // warmup == decay end: no division by zero
        XCTAssertEqual(s.lr(at: 5001), 1e-4)
        c.decayLR = false
        XCTAssertEqual(c.lrSchedule.lr(at: 0), 1e-3)
        XCTAssertEqual(c.lrSchedule.lr(at: 9000), 1e-3)
    }

    func testBucketsAndTokens() {
        var c = TrainConfig()
        XCTAssertEqual(c.bucketElements, 4 * 1_048_576 / 4)
        c.bucketMB = 1e-9
        XCTAssertEqual(c.bucketElements, 1)
        XCTAssertEqual(TrainConfig().tokensPerIteration(worldSize: 8), 8 * 64 * 256)
    }

    // MARK: - Shipped files

    func testShakespeareCharConfig() throws {
        let c = try TrainConfig.load(path: packageRoot.appendingPathComponent("configs/shakespeare_char.toml").path, overrides: [])
        var expected = TrainConfig()
        expected.outDir = "runs/shakespeare_char"
        expected.alwaysSaveCheckpoint = false
        XCTAssertEqual(c, expected)  // the rest are the defaults
        XCTAssertEqual([c.nLayer, c.nHead, c.nEmbd, c.blockSize, c.batchSize], [6, 6, 384, 256, 64])
        XCTAssertEqual([c.dropout, c.learningRate, c.minLR, c.beta2], [0.2, 1e-3, 1e-4, 0.99])
        XCTAssertEqual([c.warmupIters, c.maxIters, c.lrDecayIters, c.evalInterval, c.evalIters, c.logInterval],
                       [100, 5000, 5000, 250, 200, 10])
        XCTAssertEqual(c.dataset, "data/shakespeare_char/shakespeare_char.h5")
    }

    func testShakespeareCharCPUConfig() throws {
        let c = try TrainConfig.load(path: packageRoot.appendingPathComponent("configs/shakespeare_char_cpu.toml").path, overrides: [])
        // nanoGPT's command line, on top of the shakespeare_char config.
        let nanoGPT = try TrainConfig.load(
            path: packageRoot.appendingPathComponent("configs/shakespeare_char.toml").path,
            overrides: ["--eval_iters=20", "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4",
                        "--n_head=4", "--n_embd=128", "--max_iters=2000", "--lr_decay_iters=2000", "--dropout=0.0",
                        "out_dir=runs/shakespeare_char_cpu", "rng=torch"])
        XCTAssertEqual(c, nanoGPT)
        XCTAssertEqual(c.rng, .torch, "the CPU run draws from PyTorch's stream as nanoGPT's does")
        XCTAssertEqual([c.nLayer, c.nHead, c.nEmbd, c.blockSize, c.batchSize], [4, 4, 128, 64, 12])
        XCTAssertEqual([c.maxIters, c.lrDecayIters, c.evalIters, c.evalInterval, c.warmupIters], [2000, 2000, 20, 250, 100])
        XCTAssertEqual([c.dropout, c.learningRate, c.minLR], [0, 1e-3, 1e-4])
        XCTAssertEqual(c.outDir, "runs/shakespeare_char_cpu")
    }

    func testDocsDescribeEveryKey() throws {
        let docs = try String(contentsOf: packageRoot.appendingPathComponent("docs/CONFIG.md"), encoding: .utf8)
        let defaults = TrainConfig()
        let resolved = defaults.toTOML().split(separator: "\n").filter { !$0.hasPrefix("#") && $0.contains(" = ") }
        XCTAssertEqual(resolved.count, TrainConfig.keys.count)
        for line in resolved {
            let parts = line.components(separatedBy: " = ")
            let row = "| `\(parts[0])` |"
            XCTAssertTrue(docs.contains(row), "docs/CONFIG.md has no row for \(parts[0])")
            let rowText = docs.components(separatedBy: "\n").first { $0.hasPrefix(row) } ?? ""
            XCTAssertTrue(rowText.contains("`\(parts[1])`"), "docs/CONFIG.md: default of \(parts[0]) should read `\(parts[1])`")
        }
    }

    /// The key table of docs/CONFIG.md is the one the code generates from its key table.
    ///
    /// To regenerate it: `SWIFTGPT_WRITE_CONFIG_DOCS=1 swift test --filter ConfigTests/testDocsKeyTableIsGenerated`.
    func testDocsKeyTableIsGenerated() throws {
        let url = packageRoot.appendingPathComponent("docs/CONFIG.md")
        let docs = try String(contentsOf: url, encoding: .utf8)
        var lines = docs.components(separatedBy: "\n")
        let start = try XCTUnwrap(lines.firstIndex(of: "| key | type | default | meaning |"), "docs/CONFIG.md has no key table")
        let end = lines[start...].firstIndex { !$0.hasPrefix("|") } ?? lines.endIndex
        let generated = TrainConfig.markdownKeyTable()
        let documented = lines[start..<end].joined(separator: "\n") + "\n"
        if documented != generated, ProcessInfo.processInfo.environment["SWIFTGPT_WRITE_CONFIG_DOCS"] == "1" {
            lines.replaceSubrange(start..<end, with: generated.split(separator: "\n").map(String.init))
            try lines.joined(separator: "\n").write(to: url, atomically: false, encoding: .utf8)
            return
        }
        XCTAssertEqual(documented, generated, """
            docs/CONFIG.md's key table differs from the code's; regenerate it with \
            SWIFTGPT_WRITE_CONFIG_DOCS=1 swift test --filter ConfigTests/testDocsKeyTableIsGenerated. The table:
            \(generated)
            """)
    }

    func testKeyTable() {
        let table = TrainConfig.markdownKeyTable().components(separatedBy: "\n")
        XCTAssertTrue(table.contains("| `batch_size` | int >= 1 | `64` | Sequences per micro-batch on each rank. |"))
        XCTAssertTrue(table.contains("| **AdamW optimizer** | | | |"))
        XCTAssertTrue(table.contains { $0.hasPrefix("| `rng` | `\"counter\"` or `\"torch\"` | `\"counter\"` |") })
        XCTAssertTrue(table.contains { $0.hasPrefix("| `dropout` | float in [0, 1) | `0.2` |") })
        XCTAssertEqual(Set(TrainConfig.keys).count, TrainConfig.keys.count, "a key is listed twice")
        for key in TrainConfig.keys {
            XCTAssertEqual(table.filter { $0.hasPrefix("| `\(key)` |") }.count, 1, key)
        }
    }
}
