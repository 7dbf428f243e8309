import Foundation
import GPTCore
import GPTData

// MARK: - TrainConfig

/// Everything that describes one training run: nanoGPT's `train.py` globals as a struct.
///
/// Keys are snake_case in TOML and on the command line (`batch_size`), camelCase in Swift
/// (`batchSize`). The defaults train nanoGPT's "baby GPT" on character-level Shakespeare.
/// Each key's name, range and meaning are its entry in `ConfigKey.all` (ConfigKeys.swift),
/// which also drives decoding, validation, `toTOML()` and docs/CONFIG.md's table.
/// `load(path:overrides:)` layers defaults, a TOML file and `key=value` overrides, and
/// rejects unknown keys, wrong types and out-of-range values.
public struct TrainConfig: Codable, Equatable, Sendable {
    // MARK: I/O
    public var outDir = "runs/default"
    public var evalInterval = 250
    public var logInterval = 10
    public var evalIters = 200
    public var evalOnly = false
    public var alwaysSaveCheckpoint = true
    public var initFrom = "scratch"
    public var keepCheckpoints = 3
    public var sampleTokens = 200
    public var samplePrompt = "\n"
    public var checkInterval = 100
    public var tensorboard = true

    // MARK: data
    public var dataset = "data/shakespeare_char/shakespeare_char.h5"
    public var gradientAccumulationSteps = 1
    public var dataShards = 0
    public var batchSize = 64
    public var blockSize = 256

    // MARK: model
    public var nLayer = 6
    public var nHead = 6
    public var nEmbd = 384
    public var dropout = 0.2
    public var bias = false
    public var tieWeights = true
    public var norm = NormKind.layerNorm
    public var position = PositionKind.learned
    public var ropeBase = 10_000.0
    public var mlp = MLPKind.gelu
    public var swigluMultiple = 8
    public var qkNorm = false

    // MARK: AdamW optimizer
    public var learningRate = 1e-3
    public var maxIters = 5000
    public var weightDecay = 0.1
    public var beta1 = 0.9
    public var beta2 = 0.99
    public var gradClip = 1.0

    // MARK: learning-rate schedule
    public var decayLR = true
    public var warmupIters = 100
    public var lrDecayIters = 5000
    public var minLR = 1e-4

    // MARK: system
    public var seed = 1337
    public var threads = 0
    public var rng = RandomStream.counter

    // MARK: distributed
    public var overlapComm = true
    public var bucketMB = 4.0
    public var zeroStage = 0
    public var overlapGather = true

    // MARK: robustness
    public var nonfinite = NonfinitePolicy.skip
    public var maxNonfiniteSkips = 10
    public var collectiveTimeout = 300.0

    // MARK: task
    public var task = TaskKind.none
    public var taskOperators = "+"
    public var taskMinDigits = 1
    public var taskMaxDigits = 3
    public var taskReverse = true
    public var taskPad = false
    public var taskTraces = false
    public var taskMaskPrompt = true
    public var taskTestProblems = 1000

    /// The defaults (nanoGPT's shakespeare_char baby GPT).
    public init() {}
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
        var c = GPTConfig(vocabSize: vocabSize, blockSize: blockSize, nLayer: nLayer, nHead: nHead,
                          nEmbd: nEmbd, dropout: Float(dropout), bias: bias, tieWeights: tieWeights)
        c.norm = norm; c.position = position; c.ropeBase = ropeBase
        c.mlp = mlp; c.swigluMultiple = swigluMultiple; c.qkNorm = qkNorm
        return c
    }

    /// The learning-rate schedule of this run (`learning_rate`, `min_lr`, `warmup_iters`,
    /// `lr_decay_iters`, `decay_lr`); `lrSchedule.lr(at: step)` is the rate of optimizer step `step`.
    public var lrSchedule: LRSchedule {
        LRSchedule(learningRate: Float(learningRate), minLR: Float(minLR),
                   warmupIters: warmupIters, decayIters: lrDecayIters, decay: decayLR)
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
    ///
    /// Each key's range (from its table entry), in table order; a rule over several keys
    /// follows the last key it reads.
    public func problems() -> [String] {
        var p: [String] = []
        for key in ConfigKey.all {
            p += key.range.problems(key.name, key.get(self))
            for rule in Self.crossKeyRules where rule.after == key.name { p += rule.check(self) }
        }
        return p
    }

    /// The rules that involve more than one key, and the model's own (`GPTConfig.problems()`).
    private static let crossKeyRules: [(after: String, check: (TrainConfig) -> [String])] = [
        ("sample_prompt", { c in
            c.sampleTokens > 0 && c.samplePrompt.isEmpty
                ? ["sample_prompt must not be empty when sample_tokens > 0 (the sample needs a first token)"] : []
        }),
        ("dataset", { c in
            c.dataset.isEmpty && c.task == .none ? ["dataset must be the path of a corpus HDF5 file"] : []
        }),
        // block_size, n_layer, n_head, n_embd, dropout, rope_base, swiglu_multiple: the model's own rules.
        ("qk_norm", { c in c.modelConfig(vocabSize: 1).problems() }),
        ("min_lr", { c in
            c.minLR > c.learningRate ? ["min_lr (\(c.minLR)) must not exceed learning_rate (\(c.learningRate))"] : []
        }),
        ("min_lr", { c in
            c.decayLR && c.warmupIters > c.lrDecayIters
                ? ["warmup_iters (\(c.warmupIters)) must not exceed lr_decay_iters (\(c.lrDecayIters)) when decay_lr = true"]
                : []
        }),
        ("task_test_problems", { c in c.taskProblems() }),
    ]

    /// Throws `ConfigError.invalid` listing every problem, if there is any.
    public func validate() throws {
        let p = problems()
        if !p.isEmpty { throw ConfigError.invalid(p) }
    }
}

// MARK: - Codable

extension TrainConfig {
    /// The coding keys: the config keys of the table, snake_case.
    public struct CodingKeys: CodingKey, CaseIterable, Sendable {
        public let stringValue: String
        public var intValue: Int? { nil }
        /// The key's name, as for a `String` enum.
        public var rawValue: String { stringValue }

        public init?(stringValue: String) { self.stringValue = stringValue }
        public init?(intValue: Int) { return nil }

        /// Every config key, in table order.
        public static var allCases: [CodingKeys] { ConfigKey.all.map { CodingKeys(stringValue: $0.name)! } }
    }

    /// Decodes a config, taking the default for every key that is absent.
    ///
    /// Unknown keys are ignored here; `load` is the strict entry point for user input.
    public init(from decoder: Decoder) throws {
        self.init()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        for key in ConfigKey.all {
            let codingKey = CodingKeys(stringValue: key.name)!
            if let value = try key.kind.decodeIfPresent(from: c, forKey: codingKey) { key.set(&self, value) }
        }
    }

    /// Encodes every key under its snake_case name.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        for key in ConfigKey.all {
            let codingKey = CodingKeys(stringValue: key.name)!
            switch key.get(self) {
            case .int(let v): try c.encode(v, forKey: codingKey)
            case .double(let v): try c.encode(v, forKey: codingKey)
            case .bool(let v): try c.encode(v, forKey: codingKey)
            case .string(let v): try c.encode(v, forKey: codingKey)
            }
        }
    }
}

extension ConfigKind {
    /// The value at `key` decoded with this kind, or nil when the key is absent.
    fileprivate func decodeIfPresent(from c: KeyedDecodingContainer<TrainConfig.CodingKeys>,
                                     forKey key: TrainConfig.CodingKeys) throws -> ConfigValue? {
        switch self {
        case .int: return try c.decodeIfPresent(Int.self, forKey: key).map { .int($0) }
        case .double: return try c.decodeIfPresent(Double.self, forKey: key).map { .double($0) }
        case .bool: return try c.decodeIfPresent(Bool.self, forKey: key).map { .bool($0) }
        case .string: return try c.decodeIfPresent(String.self, forKey: key).map { .string($0) }
        case .choice(let options):
            guard let s = try c.decodeIfPresent(String.self, forKey: key) else { return nil }
            guard options.contains(s) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "\(key.stringValue) must be \(expected)")
            }
            return .string(s)
        }
    }
}

// MARK: - Writing

extension TrainConfig {
    /// The full config as a commented TOML document; `load(toml:source:)` of it gives this config back.
    public func toTOML() -> String {
        var out = "# SwiftGPT run configuration (every key, resolved). docs/CONFIG.md explains each one.\n"
        var section: String?
        for key in ConfigKey.all {
            if key.section != section {
                section = key.section
                out += "\n# \(key.section)\n"
            }
            out += "\(key.name) = \(key.get(self).tomlLiteral)\n"
        }
        return out
    }

    /// Every config key, in the order of docs/CONFIG.md.
    public static var keys: [String] { ConfigKey.all.map(\.name) }

    /// The key table of docs/CONFIG.md (header, then a row per section and per key), from the key table.
    ///
    /// Each row: `` | `key` | type and range | `default` | meaning | ``.
    public static func markdownKeyTable() -> String {
        var rows = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        var section: String?
        for key in ConfigKey.all {
            if key.section != section {
                section = key.section
                rows.append("| **\(key.section)** | | | |")
            }
            let type = key.kind.docName + key.range.docSuffix
            rows.append("| `\(key.name)` | \(type) | `\(key.defaultValue.tomlLiteral)` | \(key.doc) |")
        }
        return rows.joined(separator: "\n") + "\n"
    }
}
