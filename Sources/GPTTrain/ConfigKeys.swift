import GPTCore
import GPTData
import GPTSupport

// MARK: - The table of keys

/// Every config key, in the order of `toTOML()`, docs/CONFIG.md and the "valid keys" of errors.
///
/// One entry per key: name, stored property, accepted range and meaning; the type comes from
/// the property and the default from `TrainConfig()`. Decoding (TOML, overrides, `Codable`),
/// the per-key range checks, `toTOML()` and the key table of docs/CONFIG.md all read it.
/// Adding a key is one stored property in `TrainConfig` plus one entry here.
extension ConfigKey {
    static let all: [ConfigKey] = section("I/O", io) + section("data", data) + section("model", model)
        + section("AdamW optimizer", adamW) + section("learning-rate schedule", schedule)
        + section("system", system) + section("distributed", distributed) + section("robustness", robustness)
        + section("task", task)

    // MARK: I/O

    private static let io: [ConfigKey] = [
        ConfigKey("out_dir", \.outDir, .nonEmpty("must not be empty"), """
            Directory of the run: checkpoints, `metrics.jsonl`, the resolved config. Created if missing. \
            A new run refuses a directory that already holds checkpoints: continue it with `--resume`, \
            or choose another `out_dir`.
            """),
        ConfigKey("eval_interval", \.evalInterval, .atLeast(1),
                  "Evaluate train and val loss every this many steps (and possibly checkpoint and sample)."),
        ConfigKey("log_interval", \.logInterval, .atLeast(1),
                  "Print a training line (loss, time per step, ...) every this many steps."),
        ConfigKey("eval_iters", \.evalIters, .atLeast(1), "Batches averaged per split at each evaluation."),
        ConfigKey("eval_only", \.evalOnly, "Evaluate once (after `init_from`) and exit without training."),
        ConfigKey("always_save_checkpoint", \.alwaysSaveCheckpoint,
                  "Save a checkpoint at every evaluation; when false, only when the val loss improves."),
        ConfigKey("init_from", \.initFrom, .nonEmpty("must be \"scratch\", \"resume\" or a checkpoint path (got \"\")"), """
            `"scratch"`: a new model. `"resume"`: continue from the latest checkpoint in `out_dir` (step, \
            optimizer and data state included). Anything else: the path of a checkpoint whose weights start \
            a new run (finetuning: step 0, fresh optimizer); its model shape must match.
            """),
        ConfigKey("keep_checkpoints", \.keepCheckpoints, .atLeast(0),
                  "Most recent checkpoints kept in `out_dir`; older ones are deleted. 0 keeps all."),
        ConfigKey("sample_tokens", \.sampleTokens, .atLeast(0),
                  "Tokens generated and printed at each evaluation. 0 disables sampling."),
        ConfigKey("sample_prompt", \.samplePrompt, """
            Text the sample starts from, encoded with the corpus tokenizer. Must not be empty when sampling.
            """),
        ConfigKey("tensorboard", \.tensorboard, """
            Also write the run's scalars (train loss, lr, grad norm, tokens/s, sgemm ratio, eval losses) and samples \
            as TensorBoard event files (`events.out.tfevents.*`) in `out_dir`: `tensorboard --logdir runs`.
            """),
        ConfigKey("check_interval", \.checkInterval, .atLeast(0), """
            Every this many steps, compare a checksum of the parameters across ranks and stop if the \
            replicas differ. 0 disables the check.
            """),
    ]

    // MARK: data

    private static let data: [ConfigKey] = [
        ConfigKey("dataset", \.dataset, """
            Path of the corpus HDF5 file (train and val splits, tokenizer, vocabulary size). Not given (and \
            must not be) with a `task`, which generates its data.
            """),
        ConfigKey("gradient_accumulation_steps", \.gradientAccumulationSteps, .atLeast(1), """
            Micro-batches per optimizer step **on each rank**. Unlike nanoGPT, it is not divided by the \
            number of ranks: one step sees `gradient_accumulation_steps * ranks * batch_size * block_size` tokens.
            """),
        ConfigKey("data_shards", \.dataShards, .atLeast(0), """
            Number of contiguous shards `/train` is cut into for sampling windows; `0` means one per rank, so \
            each rank reads only its own 1/ranks slice. Set it explicitly to keep exactly the same data stream \
            when the number of ranks changes (sample `u` of a step comes from shard \
            `u * data_shards / samples_per_step`).
            """),
        ConfigKey("batch_size", \.batchSize, .atLeast(1), "Sequences per micro-batch on each rank."),
        ConfigKey("block_size", \.blockSize, .model(.atLeast(1)),
                  "Context length in tokens (also the model's maximum context)."),
    ]

    // MARK: model

    private static let model: [ConfigKey] = [
        ConfigKey("n_layer", \.nLayer, .model(.atLeast(1)), "Transformer blocks."),
        ConfigKey("n_head", \.nHead, .model(.atLeast(1)), "Attention heads per block; must divide `n_embd`."),
        ConfigKey("n_embd", \.nEmbd, .model(.atLeast(1)), "Width of the residual stream."),
        ConfigKey("dropout", \.dropout, .model(.unit), """
            Dropout probability (attention weights, residual branches, embeddings); 0 for pretraining, \
            more when overfitting.
            """),
        ConfigKey("bias", \.bias, """
            Biases in the linear layers and LayerNorms (GPT-2 has them; nanoGPT's default, like ours, is false).
            """),
        ConfigKey("tie_weights", \.tieWeights, "The output head shares the token-embedding matrix."),
        ConfigKey("norm", \.norm, """
            The blocks' and the final norm: `"layernorm"` (GPT-2; a bias too when `bias`) or `"rmsnorm"` \
            (Zhang & Sennrich 2019: `x / rms(x)` times a learned scale, no mean, no bias).
            """),
        ConfigKey("position", \.position, """
            `"learned"`: a position table added to the token embedding (GPT-2). `"rope"`: rotary embeddings \
            (Su et al. 2021) turn q and k of every head in every layer by the token's position; no table. \
            Needs an even head size.
            """),
        ConfigKey("rope_base", \.ropeBase, .model(.positive), """
            With `position = "rope"`, pair i of a head turns by `position * rope_base^(-2i/head_size)`; \
            must exceed 1.
            """),
        ConfigKey("mlp", \.mlp, """
            The feed-forward: `"gelu"` (GPT-2, 4 `n_embd` wide) or `"swiglu"` (Shazeer 2020: \
            `c_proj(silu(W1 x) * W3 x)`, hidden width 2/3 of 4 `n_embd` rounded up to `swiglu_multiple`, \
            about the same parameters).
            """),
        ConfigKey("swiglu_multiple", \.swigluMultiple, .model(.atLeast(1)),
                  "With `mlp = \"swiglu\"`, the hidden width is rounded up to a multiple of this."),
        ConfigKey("qk_norm", \.qkNorm,
                  "An RMSNorm (learned scale of head size) on every head of q and of k before the dot product."),
    ]

    // MARK: AdamW optimizer

    private static let adamW: [ConfigKey] = [
        ConfigKey("learning_rate", \.learningRate, .positive, "Peak learning rate."),
        ConfigKey("max_iters", \.maxIters, .atLeast(1), "Total optimizer steps; training stops at this step."),
        ConfigKey("weight_decay", \.weightDecay, .nonNegative, """
            Decoupled weight decay, applied as in nanoGPT to tensors with 2 or more dimensions (weight \
            matrices and embeddings), not to biases or LayerNorm parameters.
            """),
        ConfigKey("beta1", \.beta1, .unit, "AdamW first-moment decay."),
        ConfigKey("beta2", \.beta2, .unit, """
            AdamW second-moment decay (nanoGPT uses 0.95 for large runs, 0.99 when tokens per step are few).
            """),
        ConfigKey("grad_clip", \.gradClip, .nonNegative,
                  "Clip the global gradient norm to this value; 0 disables clipping."),
    ]

    // MARK: learning-rate schedule

    private static let schedule: [ConfigKey] = [
        ConfigKey("decay_lr", \.decayLR,
                  "Warm up and decay the learning rate (below); false keeps `learning_rate` throughout."),
        ConfigKey("warmup_iters", \.warmupIters, .atLeast(0),
                  "Steps of linear warmup. At most `lr_decay_iters` when `decay_lr`."),
        ConfigKey("lr_decay_iters", \.lrDecayIters, .atLeast(1),
                  "Step at which the cosine decay reaches `min_lr`; usually `max_iters`."),
        ConfigKey("min_lr", \.minLR, .nonNegative,
                  "Final learning rate, at most `learning_rate`; usually `learning_rate / 10`."),
    ]

    // MARK: system

    private static let system: [ConfigKey] = [
        ConfigKey("seed", \.seed, .atLeast(0), """
            Base seed; rank r uses `seed + r` for its batches and dropout, so runs are reproducible for a \
            given number of ranks.
            """),
        ConfigKey("threads", \.threads, .atLeast(0), """
            Threads per rank for OpenBLAS and the row-parallel loops. 0 = the node's cores divided by the \
            ranks on that node.
            """),
        ConfigKey("rng", \.rng, """
            Where the initial weights, the batch windows and the evaluation windows come from. `"counter"`: \
            each is a pure function of (seed, step, sample), so a resumed run, or a run on another number of \
            ranks with `data_shards` fixed, draws the same windows. `"torch"`: PyTorch's CPU generator \
            (MT19937) seeded with `seed + rank` and drawn from exactly as nanoGPT's train.py does (the model's \
            init in `GPT.__init__`, then one `torch.randint` per window, the first batch of a step before its \
            evaluation, evaluation batches on rank 0's stream), so a one-rank run sees the weights and windows \
            of nanoGPT's run with the same seed and its losses follow nanoGPT's line by line \
            (Tests/reference/make_nanogpt_run.py). Checkpoints hold every rank's stream; resuming on the same \
            number of ranks is bit-identical. Dropout masks are SwiftGPT's own in both modes (with \
            `dropout > 0` a run is no longer draw-for-draw nanoGPT's).
            """),
    ]

    // MARK: distributed

    private static let distributed: [ConfigKey] = [
        ConfigKey("overlap_comm", \.overlapComm, """
            Allreduce gradients in buckets while backward is still running; false does one allreduce of the \
            whole gradient buffer after backward.
            """),
        ConfigKey("bucket_mb", \.bucketMB, .positiveAtMost(1_048_576, "1048576 (1 TiB)"), """
            Size of one gradient bucket in MiB of fp32 gradients (`bucket_mb * 2^20 / 4` floats, at least \
            one). Smaller buckets start sooner: on the 1 Gbit/s test cluster 4 MiB hid 89% of the baby GPT's \
            allreduce against 71% with 25 MiB (docs/DISTRIBUTED.md). Buckets are consecutive slices of the \
            flat gradient buffer, launched as soon as backward has finished every tensor in them.
            """),
        ConfigKey("zero_stage", \.zeroStage, .within(0...1), """
            0: every rank holds the whole AdamW state (plain data parallel). 1 (ZeRO-1): each rank holds the \
            moments of its own 1/N slice of the flat parameter buffer; the gradient buckets are reduce-scattered \
            instead of allreduced, each rank updates its slice, and the parameters are all-gathered. Same \
            results as 0; checkpoints are the same files either way (docs/DISTRIBUTED.md).
            """),
        ConfigKey("overlap_gather", \.overlapGather, """
            With zero_stage = 1 and overlap_comm: all-gather the updated parameters on the communication \
            thread in one bucket per block (embeddings first), while the next forward runs, which waits only \
            for the block it is about to use; false does one blocking all-gather after the update. The \
            same parameters, bit for bit, either way.
            """),
    ]

    // MARK: robustness

    private static let robustness: [ConfigKey] = [
        ConfigKey("nonfinite", \.nonfinite, """
            When the loss or gradient norm is NaN or infinite on any rank: `"skip"` drops the step on every \
            rank (no update) and goes on; `"stop"` ends the run with an error, the last checkpoint intact.
            """),
        ConfigKey("max_nonfinite_skips", \.maxNonfiniteSkips, .atLeast(0),
                  "With `\"skip\"`, stop anyway after this many skipped steps in a row."),
        ConfigKey("collective_timeout", \.collectiveTimeout, .nonNegative, """
            Watchdog: a training step (its collectives included), an evaluation or a checkpoint that takes \
            longer than this many seconds aborts the job with a message naming the step and, from rank 0, the \
            ranks that did not arrive; `gpt supervise` can then restart it. 0 disables the watchdog.
            """),
    ]

    // MARK: task

    private static let task: [ConfigKey] = [
        ConfigKey("task", \.task, """
            `"none"`: learn the corpus `dataset`. `"arithmetic"`: learn arithmetic problems generated on the fly \
            (`a+b=c`, never stored; datasets/arithmetic/README.md, docs/EX2.md), each a function of (seed, step, \
            sample); 1 problem in 10, chosen by a hash of the problem, is held out for the test set. Each \
            evaluation then also reports the exact-match accuracy of greedy answers on `task_test_problems` \
            held-out problems. Needs `rng = "counter"` and no `dataset`.
            """),
        ConfigKey("task_operators", \.taskOperators, """
            Operators drawn from, characters of `"+-*/"`; a repeated character is drawn more often (`"+-**//"`). \
            `-` keeps the result >= 0 (the larger operand first); `/` is the quotient and the remainder (`17/5=3r2`).
            """),
        ConfigKey("task_min_digits", \.taskMinDigits, .atLeast(1),
                  "Fewest digits of an operand (an operand's length is uniform in min...max)."),
        ConfigKey("task_max_digits", \.taskMaxDigits, "Most digits of an operand, in `task_min_digits...9`."),
        ConfigKey("task_reverse", \.taskReverse, """
            Write answers of + - * and a division's remainder least significant digit first (`123+45=861$` \
            for 168), the order the digits are computed in; a quotient is written most significant digit first.
            """),
        ConfigKey("task_pad", \.taskPad, """
            Zero-pad operands to `task_max_digits` and answers to their longest length (`003+045=8400$`): \
            every problem has the same length.
            """),
        ConfigKey("task_traces", \.taskTraces, """
            Worked steps before the answer: the partial products and running sums of a long multiplication, \
            the steps of a long division, each with its product and subtraction (`+` and `-` have none).
            """),
        ConfigKey("task_mask_prompt", \.taskMaskPrompt, """
            Targets -1 on the prompt `a+b=`, so the loss is on the answer (and the end marker) only; false \
            learns the prompt too.
            """),
        ConfigKey("task_test_problems", \.taskTestProblems, .atLeast(1),
                  "Held-out problems answered (greedy, with the key/value cache) at each evaluation."),
    ]

    // MARK: Lookup

    /// The entries of one section, each told its section's name.
    private static func section(_ name: String, _ keys: [ConfigKey]) -> [ConfigKey] {
        keys.map { var key = $0; key.section = name; return key }
    }

    private static let byName: [String: ConfigKey] = {
        let table = Dictionary(all.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        precondition(table.count == all.count, "every config key needs exactly one entry")
        return table
    }()

    /// The entry of `name`, if it is a config key.
    static func named(_ name: String) -> ConfigKey? { byName[name] }
}

// MARK: - One key

/// One config key: its name, section, type, accepted range, meaning, and its stored property.
struct ConfigKey {
    let name: String
    fileprivate(set) var section = ""
    let kind: ConfigKind
    let range: ConfigRange
    /// The meaning, as one Markdown paragraph (the last column of docs/CONFIG.md's table).
    let doc: String
    let get: (TrainConfig) -> ConfigValue
    let set: (inout TrainConfig, ConfigValue) -> Void

    /// The key `name`, stored at `path`, accepting `range`, meaning `doc`.
    init<T: ConfigType>(_ name: String, _ path: WritableKeyPath<TrainConfig, T>,
                        _ range: ConfigRange, _ doc: String) {
        self.name = name
        kind = T.kind
        self.range = range
        self.doc = doc
        get = { T.wrap($0[keyPath: path]) }
        set = { config, value in
            if let v = T.unwrap(value) { config[keyPath: path] = v }
        }
    }

    /// A key that accepts every value of its type.
    init<T: ConfigType>(_ name: String, _ path: WritableKeyPath<TrainConfig, T>, _ doc: String) {
        self.init(name, path, .any, doc)
    }

    /// The default value (`TrainConfig()`'s).
    var defaultValue: ConfigValue { self.get(TrainConfig()) }
}

// MARK: - Values and types

/// A config value of one of the four TOML scalar kinds we use.
enum ConfigValue: Equatable {
    case int(Int), double(Double), bool(Bool), string(String)

    /// The Int, Double, Bool or String inside.
    var payload: Any {
        switch self {
        case .int(let v): return v
        case .double(let v): return v
        case .bool(let v): return v
        case .string(let v): return v
        }
    }

    /// The value as TOML writes it.
    var tomlLiteral: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return v.description  // shortest round-trip form; inf/nan are TOML too
        case .bool(let v): return v ? "true" : "false"
        case .string(let v): return quotedStringLiteral(v)
        }
    }
}

/// The type of a key as the user sees it: a TOML scalar kind, or one string of a fixed set.
enum ConfigKind {
    case int, double, bool, string
    case choice([String])

    /// What a value must be, as error messages say it ("an integer", `"skip" or "stop"`).
    var expected: String {
        switch self {
        case .int: return "an integer"
        case .double: return "a number"
        case .bool: return "true or false"
        case .string: return "a string"
        case .choice(let options): return Self.alternatives(options.map { "\"\($0)\"" })
        }
    }

    /// The type as docs/CONFIG.md names it ("int", "float", `` `"skip"` or `"stop"` ``).
    var docName: String {
        switch self {
        case .int: return "int"
        case .double: return "float"
        case .bool: return "bool"
        case .string: return "string"
        case .choice(let options): return Self.alternatives(options.map { "`\"\($0)\"`" })
        }
    }

    private static func alternatives(_ quoted: [String]) -> String {
        quoted.dropLast().joined(separator: ", ") + " or " + quoted.last!
    }
}

/// A Swift type that a config key can be stored as.
protocol ConfigType {
    static var kind: ConfigKind { get }
    /// The value as a `ConfigValue` (the `ConfigValue` case of its kind).
    static var wrap: (Self) -> ConfigValue { get }
    /// The value in a `ConfigValue` of this type's kind; nil for another kind.
    static func unwrap(_ value: ConfigValue) -> Self?
}

extension ConfigType {
    static func unwrap(_ value: ConfigValue) -> Self? { value.payload as? Self }
}

extension Int: ConfigType { static let kind = ConfigKind.int, wrap = ConfigValue.int }
extension Double: ConfigType { static let kind = ConfigKind.double, wrap = ConfigValue.double }
extension Bool: ConfigType { static let kind = ConfigKind.bool, wrap = ConfigValue.bool }
extension String: ConfigType { static let kind = ConfigKind.string, wrap = ConfigValue.string }

/// An enum stored as one of its raw strings (`rng = "torch"`).
protocol ConfigChoice: ConfigType, RawRepresentable, CaseIterable where RawValue == String {}

extension ConfigChoice {
    static var kind: ConfigKind { .choice(allCases.map(\.rawValue)) }
    static var wrap: (Self) -> ConfigValue { { .string($0.rawValue) } }
    static func unwrap(_ value: ConfigValue) -> Self? { (value.payload as? String).flatMap(Self.init(rawValue:)) }
}

extension RandomStream: ConfigChoice {}
extension NormKind: ConfigChoice {}
extension PositionKind: ConfigChoice {}
extension MLPKind: ConfigChoice {}
extension NonfinitePolicy: ConfigChoice {}
extension TaskKind: ConfigChoice {}

// MARK: - Ranges

/// The values a key accepts beyond its type; `problems` phrases a value outside as what to change.
indirect enum ConfigRange {
    /// Every value of the type.
    case any
    /// An integer >= the bound.
    case atLeast(Int)
    /// An integer in the range.
    case within(ClosedRange<Int>)
    /// A finite number >= 0.
    case nonNegative
    /// A finite number > 0.
    case positive
    /// A finite number > 0 and at most the bound (written as `label` in the message).
    case positiveAtMost(Double, _ label: String)
    /// A number in [0, 1).
    case unit
    /// A non-empty string; `requirement` follows the key name in the message.
    case nonEmpty(_ requirement: String)
    /// A rule of the model's own (`GPTConfig.problems()` checks it); shown in the docs only.
    case model(ConfigRange)

    /// What is wrong with `value` as the value of `key`; empty when it is in range.
    func problems(_ key: String, _ value: ConfigValue) -> [String] {
        switch (self, value) {
        case (.atLeast(let minimum), .int(let v)) where v < minimum:
            return ["\(key) must be at least \(minimum) (got \(v))"]
        case (.within(let range), .int(let v)) where !range.contains(v):
            return ["\(key) must be one of \(range.map(String.init).joined(separator: ", ")) (got \(v))"]
        case (.nonNegative, .double(let v)) where !(v >= 0 && v.isFinite):
            return ["\(key) must be a finite number >= 0 (got \(v))"]
        case (.positive, .double(let v)) where !(v > 0 && v.isFinite):
            return ["\(key) must be a finite number > 0 (got \(v))"]
        case (.positiveAtMost(let maximum, let label), .double(let v)):
            let tooLarge = v > maximum ? ["\(key) must be at most \(label) (got \(v))"] : []
            return ConfigRange.positive.problems(key, value) + tooLarge
        case (.unit, .double(let v)) where !(v >= 0 && v < 1):
            return ["\(key) must be in [0, 1) (got \(v))"]
        case (.nonEmpty(let requirement), .string(let v)) where v.isEmpty:
            return ["\(key) \(requirement)"]
        default:
            return []
        }
    }

    /// The range as docs/CONFIG.md writes it after the type (" >= 1", " in [0, 1)").
    var docSuffix: String {
        switch self {
        case .any, .nonEmpty: return ""
        case .atLeast(let minimum): return " >= \(minimum)"
        case .within(let range): return " in \(range.lowerBound)...\(range.upperBound)"
        case .nonNegative: return " >= 0"
        case .positive, .positiveAtMost: return " > 0"
        case .unit: return " in [0, 1)"
        case .model(let rule): return rule.docSuffix
        }
    }
}
