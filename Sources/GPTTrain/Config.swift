import Foundation
import GPTCore
import GPTData
import TOMLKit

// MARK: - TrainConfig

/// Everything that describes one training run: nanoGPT's `train.py` globals as a struct.
///
/// Keys are snake_case in TOML and on the command line (`batch_size`), camelCase in Swift
/// (`batchSize`). The defaults train nanoGPT's "baby GPT" on character-level Shakespeare.
/// `load(path:overrides:)` layers defaults, a TOML file and `key=value` overrides, and
/// rejects unknown keys, wrong types and out-of-range values. docs/CONFIG.md has the table.
public struct TrainConfig: Codable, Equatable, Sendable {
    // I/O
    /// Directory for checkpoints, `metrics.jsonl` and the resolved `config.toml`.
    public var outDir = "runs/default"
    /// Evaluate train/val loss every this many steps.
    public var evalInterval = 250
    /// Print a training log line every this many steps.
    public var logInterval = 10
    /// Batches averaged per split for each evaluation.
    public var evalIters = 200
    /// Evaluate once and exit, without training.
    public var evalOnly = false
    /// Save a checkpoint at every evaluation, not only when val loss improves.
    public var alwaysSaveCheckpoint = true
    /// "scratch", "resume" (latest checkpoint in `out_dir`) or a checkpoint path to finetune from.
    public var initFrom = "scratch"
    /// Most recent checkpoints kept in `out_dir`; 0 keeps all.
    public var keepCheckpoints = 3
    /// Tokens sampled and printed at each evaluation; 0 disables sampling.
    public var sampleTokens = 200
    /// Text the sample at each evaluation starts from.
    public var samplePrompt = "\n"
    /// Compare a parameter checksum across ranks every this many steps; 0 disables the check.
    public var checkInterval = 100

    // data
    /// Path of the corpus HDF5 file (`gpt prepare` writes it).
    public var dataset = "data/shakespeare_char/shakespeare_char.h5"
    /// Micro-batches per optimizer step on each rank.
    public var gradientAccumulationSteps = 1
    /// Contiguous shards /train is cut into for sampling; 0 = one per rank. Fix it to
    /// keep the same data stream when the number of ranks changes.
    public var dataShards = 0
    /// Sequences per micro-batch on each rank.
    public var batchSize = 64
    /// Context length in tokens.
    public var blockSize = 256

    // model
    public var nLayer = 6
    public var nHead = 6
    public var nEmbd = 384
    public var dropout = 0.2
    /// Biases in the linear layers and LayerNorms (nanoGPT's default: false).
    public var bias = false
    /// Share the token embedding with the output head.
    public var tieWeights = true

    // AdamW optimizer
    /// Peak learning rate.
    public var learningRate = 1e-3
    /// Total optimizer steps.
    public var maxIters = 5000
    public var weightDecay = 0.1
    public var beta1 = 0.9
    public var beta2 = 0.99
    /// Clip the global gradient norm to this value; 0 disables clipping.
    public var gradClip = 1.0

    // learning-rate schedule
    /// Linear warmup then cosine decay to `min_lr`; false keeps `learning_rate` constant.
    public var decayLR = true
    public var warmupIters = 100
    public var lrDecayIters = 5000
    public var minLR = 1e-4

    // system
    /// Base RNG seed; each rank adds its rank for its data order and dropout.
    public var seed = 1337
    /// Threads per rank (OpenBLAS and the row-parallel loops); 0 = cores on the node / ranks on the node.
    public var threads = 0
    /// Where the initial weights, the batch windows and the evaluation windows come from:
    /// "counter" (pure functions of (seed, step, sample): bit-exact resume on any number of
    /// ranks) or "torch" (PyTorch's generator, consumed as nanoGPT's train.py consumes it,
    /// so a run sees the weights and windows of nanoGPT's run with the same seed).
    public var rng = RandomStream.counter

    // distributed
    /// Start allreducing gradient buckets while backward is still running.
    public var overlapComm = true
    /// Size of one gradient bucket for the overlapped allreduce, in MiB of fp32 gradients.
    public var bucketMB = 4.0

    // robustness
    /// What to do when the loss or gradient norm is NaN or infinite.
    public var nonfinite = NonfinitePolicy.skip
    /// With `nonfinite = "skip"`, stop after this many skipped steps in a row.
    public var maxNonfiniteSkips = 10
    /// Seconds a collective may wait before the run is aborted; 0 waits forever.
    public var collectiveTimeout = 300.0

    // task
    /// "none": train on `dataset`; "arithmetic": problems generated on the fly (no dataset).
    public var task = TaskKind.none
    /// Operators of the arithmetic task, from "+-*/"; a repeated character is drawn more often.
    public var taskOperators = "+"
    /// Fewest and most digits of an operand.
    public var taskMinDigits = 1
    public var taskMaxDigits = 3
    /// Answers least significant digit first (+ - *).
    public var taskReverse = true
    /// Operands and answers zero-padded to fixed lengths.
    public var taskPad = false
    /// Worked steps before the answer (* and /).
    public var taskTraces = false
    /// No loss on the prompt `a+b=`.
    public var taskMaskPrompt = true
    /// Held-out problems answered at each evaluation for the exact-match accuracy.
    public var taskTestProblems = 1000

    /// The defaults (nanoGPT's shakespeare_char baby GPT).
    public init() {}

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case outDir = "out_dir", evalInterval = "eval_interval", logInterval = "log_interval"
        case evalIters = "eval_iters", evalOnly = "eval_only", alwaysSaveCheckpoint = "always_save_checkpoint"
        case initFrom = "init_from", keepCheckpoints = "keep_checkpoints", sampleTokens = "sample_tokens"
        case samplePrompt = "sample_prompt", checkInterval = "check_interval"
        case dataset, gradientAccumulationSteps = "gradient_accumulation_steps", dataShards = "data_shards"
        case batchSize = "batch_size"
        case blockSize = "block_size"
        case nLayer = "n_layer", nHead = "n_head", nEmbd = "n_embd", dropout, bias, tieWeights = "tie_weights"
        case learningRate = "learning_rate", maxIters = "max_iters", weightDecay = "weight_decay"
        case beta1, beta2, gradClip = "grad_clip"
        case decayLR = "decay_lr", warmupIters = "warmup_iters", lrDecayIters = "lr_decay_iters", minLR = "min_lr"
        case seed, threads, rng
        case overlapComm = "overlap_comm", bucketMB = "bucket_mb"
        case nonfinite, maxNonfiniteSkips = "max_nonfinite_skips", collectiveTimeout = "collective_timeout"
        case task, taskOperators = "task_operators", taskMinDigits = "task_min_digits", taskMaxDigits = "task_max_digits"
        case taskReverse = "task_reverse", taskPad = "task_pad", taskTraces = "task_traces"
        case taskMaskPrompt = "task_mask_prompt", taskTestProblems = "task_test_problems"
    }

    /// Decodes a config, taking the default for every key that is absent.
    ///
    /// Unknown keys are ignored here; `load` is the strict entry point for user input.
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func take<T: Decodable>(_ value: inout T, _ key: CodingKeys) throws {
            if let v = try c.decodeIfPresent(T.self, forKey: key) { value = v }
        }
        try take(&outDir, .outDir); try take(&evalInterval, .evalInterval); try take(&logInterval, .logInterval)
        try take(&evalIters, .evalIters); try take(&evalOnly, .evalOnly)
        try take(&alwaysSaveCheckpoint, .alwaysSaveCheckpoint); try take(&initFrom, .initFrom)
        try take(&keepCheckpoints, .keepCheckpoints); try take(&sampleTokens, .sampleTokens)
        try take(&samplePrompt, .samplePrompt); try take(&checkInterval, .checkInterval)
        try take(&dataset, .dataset); try take(&gradientAccumulationSteps, .gradientAccumulationSteps)
        try take(&dataShards, .dataShards)
        try take(&batchSize, .batchSize); try take(&blockSize, .blockSize)
        try take(&nLayer, .nLayer); try take(&nHead, .nHead); try take(&nEmbd, .nEmbd)
        try take(&dropout, .dropout); try take(&bias, .bias); try take(&tieWeights, .tieWeights)
        try take(&learningRate, .learningRate); try take(&maxIters, .maxIters)
        try take(&weightDecay, .weightDecay); try take(&beta1, .beta1); try take(&beta2, .beta2)
        try take(&gradClip, .gradClip)
        try take(&decayLR, .decayLR); try take(&warmupIters, .warmupIters)
        try take(&lrDecayIters, .lrDecayIters); try take(&minLR, .minLR)
        try take(&seed, .seed); try take(&threads, .threads); try take(&rng, .rng)
        try take(&overlapComm, .overlapComm); try take(&bucketMB, .bucketMB)
        try take(&nonfinite, .nonfinite); try take(&maxNonfiniteSkips, .maxNonfiniteSkips)
        try take(&collectiveTimeout, .collectiveTimeout)
        try take(&task, .task); try take(&taskOperators, .taskOperators)
        try take(&taskMinDigits, .taskMinDigits); try take(&taskMaxDigits, .taskMaxDigits)
        try take(&taskReverse, .taskReverse); try take(&taskPad, .taskPad); try take(&taskTraces, .taskTraces)
        try take(&taskMaskPrompt, .taskMaskPrompt); try take(&taskTestProblems, .taskTestProblems)
    }
}

/// The source of a run's random numbers (the `rng` key).
public enum RandomStream: String, Codable, CaseIterable, Sendable {
    /// Counter-based: every window and dropout mask is a function of (seed, step, sample).
    case counter
    /// PyTorch's CPU generator (MT19937) seeded with seed + rank, drawn from in nanoGPT's order.
    case torch
}

/// What a run learns from (the `task` key).
public enum TaskKind: String, Codable, CaseIterable, Sendable {
    /// The corpus `dataset`.
    case none
    /// Arithmetic problems generated on the fly (`ArithmeticTask`).
    case arithmetic
}

/// What a step does when its loss or gradient norm is not finite.
public enum NonfinitePolicy: String, Codable, CaseIterable, Sendable {
    /// Drop the step (no parameter update) and go on.
    case skip
    /// Stop the run with an error; the last checkpoint stays the latest.
    case stop
}

// MARK: - Derived values

extension TrainConfig {
    /// The model shape this run trains; the vocabulary size comes from the corpus.
    public func modelConfig(vocabSize: Int) -> GPTConfig {
        GPTConfig(vocabSize: vocabSize, blockSize: blockSize, nLayer: nLayer, nHead: nHead,
                  nEmbd: nEmbd, dropout: Float(dropout), bias: bias, tieWeights: tieWeights)
    }

    /// The learning rate for optimizer step `step` (0-based), as nanoGPT's `get_lr`.
    ///
    /// Linear warmup over `warmup_iters` steps, cosine decay to `min_lr` at `lr_decay_iters`,
    /// `min_lr` after that; `learning_rate` throughout when `decay_lr` is false.
    public func learningRate(at step: Int) -> Double {
        guard decayLR else { return learningRate }
        if step < warmupIters {
            return learningRate * Double(step + 1) / Double(warmupIters + 1)
        }
        if step >= lrDecayIters { return minLR }
        let ratio = Double(step - warmupIters) / Double(lrDecayIters - warmupIters)
        let coeff = 0.5 * (1 + cos(Double.pi * ratio))
        return minLR + coeff * (learningRate - minLR)
    }

    /// Number of fp32 gradients in one allreduce bucket (`bucket_mb` MiB, at least one).
    public var bucketElements: Int {
        max(1, Int(bucketMB * 1_048_576 / Double(MemoryLayout<Float>.size)))
    }

    /// Tokens consumed by one optimizer step over all ranks.
    public func tokensPerIteration(worldSize: Int) -> Int {
        gradientAccumulationSteps * worldSize * batchSize * blockSize
    }
}

// MARK: - Validation

extension TrainConfig {
    /// Problems with the values, each phrased as what to change; empty when the config is valid.
    public func problems() -> [String] {
        var p: [String] = []
        func atLeast(_ key: String, _ value: Int, _ minimum: Int) {
            if value < minimum { p.append("\(key) must be at least \(minimum) (got \(value))") }
        }
        func nonNegative(_ key: String, _ value: Double) {
            if !(value >= 0 && value.isFinite) { p.append("\(key) must be a finite number >= 0 (got \(value))") }
        }
        func positive(_ key: String, _ value: Double) {
            if !(value > 0 && value.isFinite) { p.append("\(key) must be a finite number > 0 (got \(value))") }
        }
        func unit(_ key: String, _ value: Double) {
            if !(value >= 0 && value < 1) { p.append("\(key) must be in [0, 1) (got \(value))") }
        }

        // I/O
        if outDir.isEmpty { p.append("out_dir must not be empty") }
        atLeast("eval_interval", evalInterval, 1)
        atLeast("log_interval", logInterval, 1)
        atLeast("eval_iters", evalIters, 1)
        if initFrom.isEmpty { p.append("init_from must be \"scratch\", \"resume\" or a checkpoint path (got \"\")") }
        atLeast("keep_checkpoints", keepCheckpoints, 0)
        atLeast("sample_tokens", sampleTokens, 0)
        if sampleTokens > 0 && samplePrompt.isEmpty {
            p.append("sample_prompt must not be empty when sample_tokens > 0 (the sample needs a first token)")
        }
        atLeast("check_interval", checkInterval, 0)

        // data
        if dataset.isEmpty && task == .none { p.append("dataset must be the path of a corpus HDF5 file") }
        atLeast("gradient_accumulation_steps", gradientAccumulationSteps, 1)
        atLeast("data_shards", dataShards, 0)
        atLeast("batch_size", batchSize, 1)

        // model (block_size, n_layer, n_head, n_embd, dropout: the model's own rules)
        p += modelConfig(vocabSize: 1).problems()

        // AdamW optimizer
        positive("learning_rate", learningRate)
        atLeast("max_iters", maxIters, 1)
        nonNegative("weight_decay", weightDecay)
        unit("beta1", beta1)
        unit("beta2", beta2)
        nonNegative("grad_clip", gradClip)

        // learning-rate schedule
        nonNegative("min_lr", minLR)
        if minLR > learningRate {
            p.append("min_lr (\(minLR)) must not exceed learning_rate (\(learningRate))")
        }
        atLeast("warmup_iters", warmupIters, 0)
        atLeast("lr_decay_iters", lrDecayIters, 1)
        if decayLR && warmupIters > lrDecayIters {
            p.append("warmup_iters (\(warmupIters)) must not exceed lr_decay_iters (\(lrDecayIters)) when decay_lr = true")
        }

        // system
        atLeast("seed", seed, 0)
        atLeast("threads", threads, 0)

        // distributed
        positive("bucket_mb", bucketMB)
        if bucketMB > 1_048_576 { p.append("bucket_mb must be at most 1048576 (1 TiB) (got \(bucketMB))") }

        // robustness
        atLeast("max_nonfinite_skips", maxNonfiniteSkips, 0)
        nonNegative("collective_timeout", collectiveTimeout)

        // task
        p += taskProblems()
        return p
    }

    /// Throws `ConfigError.invalid` listing every problem, if there is any.
    public func validate() throws {
        let p = problems()
        if !p.isEmpty { throw ConfigError.invalid(p) }
    }
}

// MARK: - Loading

extension TrainConfig {
    /// The resolved config: defaults, then the TOML file at `path` (if any), then `key=value` overrides.
    ///
    /// Override values are parsed with the key's type: `batch_size=32`, `learning_rate=1e-3`,
    /// `decay_lr=false`, `out_dir=runs/x` or `out_dir="runs/x"`. A leading `--` is allowed
    /// (`--batch_size=32`, as nanoGPT's configurator). The result is validated.
    public static func load(path: String?, overrides: [String]) throws -> TrainConfig {
        var config = TrainConfig()
        config.dataset = unsetDataset
        if let path {
            try config.apply(toml: try readConfigFile(path), source: path)
        }
        try config.apply(overrides: overrides)
        config.resolveDataset()
        try config.validate()
        return config
    }

    /// The config in a TOML document (e.g. one stored in a checkpoint), then `key=value` overrides.
    ///
    /// `source` names the document in error messages.
    public static func load(toml: String, source: String, overrides: [String] = []) throws -> TrainConfig {
        var config = TrainConfig()
        config.dataset = unsetDataset
        try config.apply(toml: toml, source: source)
        try config.apply(overrides: overrides)
        config.resolveDataset()
        try config.validate()
        return config
    }

    /// Sets the keys found in a TOML document; other keys keep their values. Does not validate.
    public mutating func apply(toml: String, source: String) throws {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: toml)
        } catch let error as TOMLParseError {
            throw ConfigError.malformedTOML(source: source, line: error.source.begin.line,
                                            column: error.source.begin.column, message: error.description)
        }
        // Report the first problem in file order, so fixing errors top to bottom works.
        let entries = table.map { (key: $0.0, value: $0.1, line: Self.line(ofKey: $0.0, in: toml)) }
            .sorted { ($0.line ?? Int.max, $0.key) < ($1.line ?? Int.max, $1.key) }
        for entry in entries {
            guard let field = Field.named(entry.key) else {
                if entry.value.type == .table {
                    throw ConfigError.nestedTable(source: source, line: entry.line, name: entry.key)
                }
                throw ConfigError.unknownKey(key: entry.key, source: source, line: entry.line,
                                             suggestion: Field.closest(to: entry.key))
            }
            let value = try field.value(fromTOML: entry.value, source: source, line: entry.line)
            field.set(&self, value)
        }
    }

    /// Sets the keys given as `key=value` strings (a leading `--` is allowed). Does not validate.
    public mutating func apply(overrides: [String]) throws {
        for override in overrides {
            var text = Substring(override)
            if text.hasPrefix("--") { text = text.dropFirst(2) }
            guard let eq = text.firstIndex(of: "=") else {
                throw ConfigError.malformedOverride(override)
            }
            let key = text[..<eq].trimmingCharacters(in: .whitespaces)
            let raw = String(text[text.index(after: eq)...])
            guard !key.isEmpty else { throw ConfigError.malformedOverride(override) }
            guard let field = Field.named(key) else {
                throw ConfigError.unknownKey(key: key, source: nil, line: nil, suggestion: Field.closest(to: key))
            }
            field.set(&self, try field.value(fromOverride: raw))
        }
    }

    /// The 1-based line on which top-level `key` is assigned or opened as a table, if found.
    private static func line(ofKey key: String, in toml: String) -> Int? {
        let names = [key, "\"\(key)\"", "'\(key)'"]
        for (i, line) in toml.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let t = line.trimmingCharacters(in: .whitespaces)
            for name in names where t.hasPrefix(name) {
                let after = t.dropFirst(name.count).drop(while: { $0 == " " || $0 == "\t" })
                if after.hasPrefix("=") || after.hasPrefix(".") { return i + 1 }  // key = ..., key.sub = ...
            }
            if t.hasPrefix("[\(key)]") || t.hasPrefix("[\(key).") || t.hasPrefix("[[\(key)]]") { return i + 1 }
        }
        return nil
    }

    private static func readConfigFile(_ path: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard !path.isEmpty, FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ConfigError.fileNotFound(path)
        }
        if isDirectory.boolValue { throw ConfigError.unreadableFile(path, reason: "it is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError.unreadableFile(path, reason: "permission denied or I/O error")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError.unreadableFile(path, reason: "it is not UTF-8 text")
        }
        return text
    }
}

// MARK: - Writing

extension TrainConfig {
    /// The full config as a commented TOML document; `load(toml:source:)` of it gives this config back.
    public func toTOML() -> String {
        var out = "# SwiftGPT run configuration (every key, resolved). docs/CONFIG.md explains each one.\n"
        var section: String?
        for field in Field.all {
            if field.section != section {
                section = field.section
                out += "\n# \(field.section)\n"
            }
            out += "\(field.key) = \(field.get(self).tomlLiteral)\n"
        }
        return out
    }

    /// Every config key, in the order of docs/CONFIG.md.
    public static var keys: [String] { Field.all.map(\.key) }
}

// MARK: - Errors

/// A config that cannot be used; `description` is one line that says what to fix.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(String)
    case unreadableFile(String, reason: String)
    case malformedTOML(source: String, line: Int, column: Int, message: String)
    case nestedTable(source: String, line: Int?, name: String)
    /// `source` is nil for a command-line override.
    case unknownKey(key: String, source: String?, line: Int?, suggestion: String?)
    case wrongType(key: String, expected: String, got: String, source: String?, line: Int?)
    case malformedOverride(String)
    case invalid([String])

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "config file \"\(path)\" not found; pass the path of a TOML file such as configs/shakespeare_char.toml"
        case .unreadableFile(let path, let reason):
            return "cannot read config file \"\(path)\": \(reason)"
        case .malformedTOML(let source, let line, let column, let message):
            return "\(source):\(line):\(column): malformed TOML: \(Self.oneLine(message))"
        case .nestedTable(let source, let line, let name):
            return "\(Self.place(source, line)): [\(name)] is a table, but run configs are flat; "
                + "write its keys as top-level \"key = value\" lines"
        case .unknownKey(let key, let source, let line, let suggestion):
            let where_ = source.map { Self.place($0, line) + ": " } ?? "command-line override: "
            let hint = suggestion.map { " (did you mean \"\($0)\"?)" } ?? ""
            return "\(where_)unknown config key \"\(key)\"\(hint); valid keys: \(TrainConfig.keys.joined(separator: ", "))"
        case .wrongType(let key, let expected, let got, let source, let line):
            let where_ = source.map { Self.place($0, line) + ": " } ?? "command-line override: "
            return "\(where_)\(key) must be \(expected), got \(got)"
        case .malformedOverride(let text):
            return "override \"\(text)\" must look like key=value, e.g. batch_size=32"
        case .invalid(let problems):
            return "invalid config: " + problems.joined(separator: "; ")
        }
    }

    private static func place(_ source: String, _ line: Int?) -> String {
        line.map { "\(source):\($0)" } ?? source
    }

    private static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    }
}

// MARK: - Keys and their types

/// A config value of one of the four TOML scalar kinds we use.
private enum Value {
    case int(Int), double(Double), bool(Bool), string(String)

    var tomlLiteral: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return v.description  // shortest round-trip form; inf/nan are TOML too
        case .bool(let v): return v ? "true" : "false"
        case .string(let v): return quotedStringLiteral(v)
        }
    }
}


/// One config key: its name, section, type and how to read and write it in a `TrainConfig`.
private struct Field {
    enum Kind {
        case int, double, bool, string
        case choice([String])

        var expected: String {
            switch self {
            case .int: return "an integer"
            case .double: return "a number"
            case .bool: return "true or false"
            case .string: return "a string"
            case .choice(let options):
                let quoted = options.map { "\"\($0)\"" }
                return quoted.dropLast().joined(separator: ", ") + " or " + quoted.last!
            }
        }
    }

    let key: String
    let section: String
    let kind: Kind
    let get: (TrainConfig) -> Value
    let set: (inout TrainConfig, Value) -> Void

    // MARK: Constructors

    static func int(_ key: TrainConfig.CodingKeys, _ path: WritableKeyPath<TrainConfig, Int>, _ section: String) -> Field {
        Field(key: key.rawValue, section: section, kind: .int, get: { .int($0[keyPath: path]) },
              set: { if case .int(let v) = $1 { $0[keyPath: path] = v } })
    }

    static func double(_ key: TrainConfig.CodingKeys, _ path: WritableKeyPath<TrainConfig, Double>, _ section: String) -> Field {
        Field(key: key.rawValue, section: section, kind: .double, get: { .double($0[keyPath: path]) },
              set: { if case .double(let v) = $1 { $0[keyPath: path] = v } })
    }

    static func bool(_ key: TrainConfig.CodingKeys, _ path: WritableKeyPath<TrainConfig, Bool>, _ section: String) -> Field {
        Field(key: key.rawValue, section: section, kind: .bool, get: { .bool($0[keyPath: path]) },
              set: { if case .bool(let v) = $1 { $0[keyPath: path] = v } })
    }

    static func string(_ key: TrainConfig.CodingKeys, _ path: WritableKeyPath<TrainConfig, String>, _ section: String) -> Field {
        Field(key: key.rawValue, section: section, kind: .string, get: { .string($0[keyPath: path]) },
              set: { if case .string(let v) = $1 { $0[keyPath: path] = v } })
    }

    static func choice<E: RawRepresentable & CaseIterable>(
        _ key: TrainConfig.CodingKeys, _ path: WritableKeyPath<TrainConfig, E>, _ section: String
    ) -> Field where E.RawValue == String {
        Field(key: key.rawValue, section: section, kind: .choice(E.allCases.map(\.rawValue)),
              get: { .string($0[keyPath: path].rawValue) },
              set: { if case .string(let v) = $1, let e = E(rawValue: v) { $0[keyPath: path] = e } })
    }

    // MARK: The table of keys

    static let all: [Field] = {
        let io = "I/O", data = "data", model = "model", adamw = "AdamW optimizer"
        let schedule = "learning-rate schedule", system = "system", dist = "distributed", robust = "robustness"
        let task = "task"
        let fields: [Field] = [
            .string(.outDir, \.outDir, io), .int(.evalInterval, \.evalInterval, io),
            .int(.logInterval, \.logInterval, io), .int(.evalIters, \.evalIters, io),
            .bool(.evalOnly, \.evalOnly, io), .bool(.alwaysSaveCheckpoint, \.alwaysSaveCheckpoint, io),
            .string(.initFrom, \.initFrom, io), .int(.keepCheckpoints, \.keepCheckpoints, io),
            .int(.sampleTokens, \.sampleTokens, io), .string(.samplePrompt, \.samplePrompt, io),
            .int(.checkInterval, \.checkInterval, io),

            .string(.dataset, \.dataset, data),
            .int(.gradientAccumulationSteps, \.gradientAccumulationSteps, data),
            .int(.dataShards, \.dataShards, data),
            .int(.batchSize, \.batchSize, data), .int(.blockSize, \.blockSize, data),

            .int(.nLayer, \.nLayer, model), .int(.nHead, \.nHead, model), .int(.nEmbd, \.nEmbd, model),
            .double(.dropout, \.dropout, model), .bool(.bias, \.bias, model),
            .bool(.tieWeights, \.tieWeights, model),

            .double(.learningRate, \.learningRate, adamw), .int(.maxIters, \.maxIters, adamw),
            .double(.weightDecay, \.weightDecay, adamw), .double(.beta1, \.beta1, adamw),
            .double(.beta2, \.beta2, adamw), .double(.gradClip, \.gradClip, adamw),

            .bool(.decayLR, \.decayLR, schedule), .int(.warmupIters, \.warmupIters, schedule),
            .int(.lrDecayIters, \.lrDecayIters, schedule), .double(.minLR, \.minLR, schedule),

            .int(.seed, \.seed, system), .int(.threads, \.threads, system), .choice(.rng, \.rng, system),

            .bool(.overlapComm, \.overlapComm, dist), .double(.bucketMB, \.bucketMB, dist),

            .choice(.nonfinite, \.nonfinite, robust), .int(.maxNonfiniteSkips, \.maxNonfiniteSkips, robust),
            .double(.collectiveTimeout, \.collectiveTimeout, robust),

            .choice(.task, \.task, task), .string(.taskOperators, \.taskOperators, task),
            .int(.taskMinDigits, \.taskMinDigits, task), .int(.taskMaxDigits, \.taskMaxDigits, task),
            .bool(.taskReverse, \.taskReverse, task), .bool(.taskPad, \.taskPad, task),
            .bool(.taskTraces, \.taskTraces, task), .bool(.taskMaskPrompt, \.taskMaskPrompt, task),
            .int(.taskTestProblems, \.taskTestProblems, task),
        ]
        precondition(Set(fields.map(\.key)) == Set(TrainConfig.CodingKeys.allCases.map(\.rawValue)),
                     "every TrainConfig key needs exactly one Field")
        return fields
    }()

    private static let byKey: [String: Field] = Dictionary(uniqueKeysWithValues: all.map { ($0.key, $0) })

    static func named(_ key: String) -> Field? { byKey[key] }

    /// Names other trainers use for our keys.
    private static let aliases: [String: String] = [
        "lr": "learning_rate", "max_lr": "learning_rate", "batch": "batch_size", "micro_batch_size": "batch_size",
        "context_length": "block_size", "seq_len": "block_size", "sequence_length": "block_size",
        "layers": "n_layer", "num_layers": "n_layer", "heads": "n_head", "num_heads": "n_head",
        "d_model": "n_embd", "hidden_size": "n_embd", "max_steps": "max_iters", "steps": "max_iters",
        "warmup_steps": "warmup_iters", "grad_accum": "gradient_accumulation_steps",
        "grad_accum_steps": "gradient_accumulation_steps", "clip": "grad_clip", "num_threads": "threads",
        "data": "dataset", "output_dir": "out_dir", "resume": "init_from",
    ]

    /// The valid key closest to a misspelt one, if any is close enough to be a likely typo.
    static func closest(to key: String) -> String? {
        let k = key.lowercased().replacingOccurrences(of: "-", with: "_")
        if byKey[k] != nil { return k }
        if let alias = aliases[k] { return alias }
        let limit = max(2, k.count / 3)
        let best = all.map { ($0.key, editDistance(k, $0.key)) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= limit else { return nil }
        return best.0
    }

    // MARK: Parsing values

    func value(fromTOML v: TOMLValueConvertible, source: String, line: Int?) throws -> Value {
        func wrong() -> ConfigError {
            .wrongType(key: key, expected: kind.expected, got: Self.describe(v), source: source, line: line)
        }
        switch kind {
        case .int:
            guard let i = v.int else { throw wrong() }
            return .int(i)
        case .double:
            if let d = v.double { return .double(d) }
            guard let i = v.int else { throw wrong() }
            return .double(Double(i))
        case .bool:
            guard let b = v.bool else { throw wrong() }
            return .bool(b)
        case .string:
            guard let s = v.string else { throw wrong() }
            return .string(s)
        case .choice(let options):
            guard let s = v.string, options.contains(s) else { throw wrong() }
            return .string(s)
        }
    }

    func value(fromOverride raw: String) throws -> Value {
        let text = raw.trimmingCharacters(in: .whitespaces)
        func wrong() -> ConfigError {
            .wrongType(key: key, expected: kind.expected, got: quotedStringLiteral(raw), source: nil, line: nil)
        }
        // The string inside matching quotes, TOML escapes applied for double quotes.
        func unquoted() throws -> String {
            guard text.count >= 2, let first = text.first, first == text.last, first == "\"" || first == "'" else {
                return text
            }
            guard let s = (try? TOMLTable(string: "v = " + text))?["v"]?.string else {
                throw ConfigError.wrongType(key: key, expected: "a correctly quoted string (TOML escapes inside double quotes)",
                                            got: quotedStringLiteral(raw), source: nil, line: nil)
            }
            return s
        }
        switch kind {
        case .int:
            let digits = try unquoted().replacingOccurrences(of: "_", with: "")
            guard let i = Int(digits) else { throw wrong() }
            return .int(i)
        case .double:
            let number = try unquoted().replacingOccurrences(of: "_", with: "")
            guard !number.isEmpty, let d = Double(number) else { throw wrong() }
            return .double(d)
        case .bool:
            switch try unquoted().lowercased() {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default: throw wrong()
            }
        case .string:
            return .string(try unquoted())
        case .choice(let options):
            let s = try unquoted()
            guard options.contains(s) else { throw wrong() }
            return .string(s)
        }
    }

    /// A TOML value as shown after "got" in an error message.
    private static func describe(_ v: TOMLValueConvertible) -> String {
        switch v.type {
        case .string: return quotedStringLiteral(v.string ?? "")
        case .int: return v.int.map(String.init) ?? "an integer"
        case .double: return v.double.map { $0.description } ?? "a number"
        case .bool: return v.bool.map { $0 ? "true" : "false" } ?? "a boolean"
        case .array: return "an array"
        case .table: return "a table"
        case .date: return "a date"
        case .time: return "a time"
        case .dateTime: return "a date-time"
        }
    }
}

/// Levenshtein distance between two strings.
private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
            current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
