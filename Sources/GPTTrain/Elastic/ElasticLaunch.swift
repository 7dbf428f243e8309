// The mpirun command of one elastic launch, and the record of a change of world.
import Foundation

// MARK: - Command

/// Builds the mpirun command line of a world from the training command (`gpt train cfg.toml ...`).
public struct ElasticCommand: Sendable {
    /// The program that starts the job and its fixed options, e.g. ["mpirun", "--bind-to", "none"].
    public var launcher: [String]
    /// mpirun's remote shell (`--mca plm_rsh_agent`), when not its default.
    public var rshAgent: String?
    /// The training command, `gpt train ...`.
    public var train: [String]
    /// data_shards of every launch: the full world's, so that sample u of a step comes from the same
    /// shard whatever the world (0 would mean one shard per rank of each launch).
    public var dataShards: Int

    public init(launcher: [String], rshAgent: String?, train: [String], dataShards: Int) {
        self.launcher = launcher; self.rshAgent = rshAgent; self.train = train; self.dataShards = dataShards
    }

    /// `launcher -np N --host a:1,b:1 --map-by slot [--mca plm_rsh_agent X] gpt train ... --set ... [--resume]`.
    public func words(for world: ElasticWorld, resume: Bool) -> [String] {
        var w = launcher + ["-np", String(world.ranks), "--host", world.hostList, "--map-by", "slot"]
        if let rshAgent { w += ["--mca", "plm_rsh_agent", rshAgent] }
        w += train + ["--set", "gradient_accumulation_steps=\(world.accumulation)", "--set", "data_shards=\(dataShards)"]
        if resume && !train.contains("--resume") { w.append("--resume") }
        return w
    }

    /// The run config the training command gives (its config path and overrides after `train`).
    public func config() throws -> TrainConfig {
        guard let i = train.firstIndex(of: "train") else {
            throw TrainError("elastic: the command after -- must be a training command (gpt train cfg.toml ...), not \(train.joined(separator: " "))")
        }
        let words = try TrainArguments(parsing: train[(i + 1)...].filter { $0 != "--resume" })
        return try TrainConfig.load(path: words.configPath, overrides: words.overrides)
    }
}

// MARK: - Change of world

/// One change of an elastic job's world, as the supervisor logs it and metrics.jsonl records it.
public struct WorldChange: Equatable, Sendable {
    /// The step the new world continues from (its newest good checkpoint).
    public var step: Int
    public var old: ElasticWorld, new: ElasticWorld
    public var reason: String

    public init(step: Int, old: ElasticWorld, new: ElasticWorld, reason: String) {
        self.step = step; self.old = old; self.new = new; self.reason = reason
    }

    /// The metrics.jsonl event name.
    public static let event = "world_change"

    /// One line for the supervisor's log.
    public var line: String {
        "world change at step \(step): \(old.ranks) -> \(new.ranks) rank(s), hosts \(old.names) -> \(new.names), "
            + "gradient_accumulation_steps \(old.accumulation) -> \(new.accumulation) (tokens per step kept); \(reason)"
    }

    /// The event's fields in metrics.jsonl.
    public var fields: [String: MetricValue] {
        ["old_ranks": .int(old.ranks), "new_ranks": .int(new.ranks), "old_hosts": .string(old.names),
         "new_hosts": .string(new.names), "old_accumulation": .int(old.accumulation),
         "accumulation": .int(new.accumulation), "reason": .string(reason)]
    }

    /// Appends the event to the metrics log in `directory`.
    public func record(in directory: String) throws {
        let log = try MetricsLog(directory: directory)
        defer { log.close() }
        try log.log(Self.event, step: step, fields)
    }

    /// The changes of world recorded in the metrics log at `path`, as (step, label) for a chart.
    public static func marks(metrics path: String) -> [(step: Double, label: String)] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  o["event"] as? String == event, let s = (o["step"] as? NSNumber)?.doubleValue,
                  let a = o["old_ranks"] as? Int, let b = o["new_ranks"] as? Int else { return nil }
            return (s, "\(a)\u{2192}\(b) ranks")
        }
    }
}

// MARK: - Start

/// What an elastic run keeps the same on every world, recorded in metrics.jsonl when a supervisor
/// starts (event "elastic_start"), so that a supervisor started again on the run keeps it too.
public struct ElasticStart: Equatable, Sendable {
    public var step: Int
    /// Micro-batches (of batch_size) per optimizer step over all ranks.
    public var microBatches: Int
    public var dataShards: Int

    public init(step: Int, microBatches: Int, dataShards: Int) {
        self.step = step; self.microBatches = microBatches; self.dataShards = dataShards
    }

    public static let event = "elastic_start"

    /// Appends the record, with the world it starts on, to the metrics log in `directory`.
    public func record(in directory: String, world: ElasticWorld) throws {
        let log = try MetricsLog(directory: directory)
        defer { log.close() }
        try log.log(Self.event, step: step, ["micro_batches_per_step": .int(microBatches), "data_shards": .int(dataShards),
                                            "ranks": .int(world.ranks), "hosts": .string(world.names),
                                            "accumulation": .int(world.accumulation)])
    }

    /// The last record in the run's metrics log, if an earlier supervisor wrote one.
    public static func read(outDir: String) -> ElasticStart? {
        guard let text = try? String(contentsOfFile: outDir + "/metrics.jsonl", encoding: .utf8) else { return nil }
        var found: ElasticStart?
        for line in text.split(separator: "\n") where line.contains(event) {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  o["event"] as? String == event, let m = o["micro_batches_per_step"] as? Int,
                  let d = o["data_shards"] as? Int, let s = o["step"] as? Int else { continue }
            found = ElasticStart(step: s, microBatches: m, dataShards: d)
        }
        return found
    }
}
