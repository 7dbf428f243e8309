import Foundation
import GPTData
import GPTTrain

// MARK: - Elastic supervisor

/// The loop of `gpt supervise --elastic`: launch on the usable hosts; when the job fails, drop the
/// hosts that are gone (named by the watchdog, failing the probe, or no longer listed) and relaunch
/// on the survivors from the newest good checkpoint; when a lost host answers again, stop the job at
/// its next checkpoint and relaunch on the larger world. Every world keeps the full world's
/// micro-batches per step (ranks x gradient_accumulation_steps), so tokens per step never change.
final class ElasticSupervisor {
    let source: HostSource, slotsPerHost: Int
    let probe: HostProbe
    let command: ElasticCommand
    let plan: ElasticPlan
    let job: SupervisedJob
    let maxRestarts: Int, delay: Double, rejoinInterval: Double
    private(set) var world: ElasticWorld
    private var restarts = 0
    private let say: (String) -> Void

    init(options o: ElasticOptions, train: [String], job: SupervisedJob, maxRestarts: Int, delay: Double) throws {
        source = try o.hostSource()
        slotsPerHost = o.slotsPerHost
        let agent = o.rshAgent ?? ProcessInfo.processInfo.environment["OMPI_MCA_plm_rsh_agent"] ?? "ssh"
        probe = HostProbe(agent: agent, timeout: o.probeTimeout)
        self.job = job; self.maxRestarts = maxRestarts; self.delay = delay; rejoinInterval = o.rejoinInterval
        say = job.say
        var cmd = ElasticCommand(launcher: o.launcher.split(separator: " ").map(String.init), rshAgent: o.rshAgent,
                                 train: train, dataShards: 0)
        let config = try cmd.config()
        let usable = try Self.usable(source.discover(defaultSlots: o.slotsPerHost), probe: probe, say: job.say)
        // The full world: an earlier supervisor's record of this run, else all usable slots now.
        let earlier = ElasticStart.read(outDir: job.outDir)
        let fullRanks = usable.reduce(0) { $0 + $1.slots }
        let micro = earlier?.microBatches ?? fullRanks * config.gradientAccumulationSteps
        plan = ElasticPlan(microBatchesPerStep: micro, minRanks: o.minNp, minHosts: o.minHosts)
        cmd.dataShards = earlier?.dataShards ?? (config.dataShards > 0 ? config.dataShards : fullRanks)
        command = cmd
        world = try plan.world(on: usable)
        let start = ElasticStart(step: Self.newestStep(job.outDir), microBatches: micro, dataShards: cmd.dataShards)
        try start.record(in: job.outDir, world: world)
        say("elastic: \(usable.count) usable host(s) from the \(source); each step takes \(micro) micro-batches "
            + "of batch_size (ranks x gradient_accumulation_steps), data_shards \(cmd.dataShards)"
            + (earlier != nil ? " (as recorded in \(job.metricsPath))" : ""))
        noteRounding(usable)
        if config.rng == .torch {
            say("rng = \"torch\": a launch on another number of ranks starts new random streams; "
                + "with rng = \"counter\" every step keeps the windows of the full world")
        }
    }

    func run() throws {
        while true {
            let resume = CheckpointStore(directory: job.outDir, keep: 0).hasCheckpoints
            say("launching \(world.ranks) rank(s) on \(world.hostList), gradient_accumulation_steps \(world.accumulation)"
                + (resume ? ", from the newest good checkpoint" : ""))
            let watch = RejoinWatch(interval: rejoinInterval)
            let outcome = job.run(command.words(for: world, resume: resume)) { _ in self.shouldStop(watch) }
            if outcome.status == 0 {  // gpt train exits 0 only when its steps are done (a stop is 143)
                say("job finished" + (restarts > 0 ? " after \(restarts) restart(s)" : "") + " on \(world.ranks) rank(s)")
                return
            }
            if outcome.stopped, let bigger = watch.pending {
                change(to: bigger.world, reason: "host(s) back: " + bigger.back.map(\.name).joined(separator: ","))
                continue
            }
            try recover(from: outcome)
            Thread.sleep(forTimeInterval: delay)
        }
    }

    // MARK: Failure

    /// After a failed job: which hosts are gone, and the world of the survivors.
    private func recover(from outcome: SupervisedJob.Outcome) throws {
        restarts += 1
        guard restarts <= maxRestarts else {
            throw TrainError("job failed with exit status \(outcome.status); giving up after \(restarts - 1) restart(s) "
                + "(--max-restarts \(maxRestarts)); the newest good checkpoint in \(job.outDir) is kept")
        }
        say("job failed with exit status \(outcome.status); restart \(restarts)/\(maxRestarts); finding the hosts that are gone")
        let messages = WatchdogReport.messages(metrics: job.metricsPath, after: outcome.metricsOffset)
        let named = Set(messages.flatMap(WatchdogReport.ranks(in:)))
        var notArrived: [String: [Int]] = [:]
        for r in named.sorted() { if let h = world.host(ofRank: r) { notArrived[h.name, default: []].append(r) } }
        let listed = try source.discover(defaultSlots: slotsPerHost)
        let failures = probe.failures(listed)
        let usable = ordered(listed.filter { failures[$0] == nil })
        for h in world.hosts where !usable.contains(where: { $0.name == h.name }) {
            let ranks = notArrived[h.name].map { "rank(s) \($0.map(String.init).joined(separator: ",")) did not arrive (watchdog); " } ?? ""
            let why = listed.first { $0.name == h.name }.flatMap { failures[$0] }.map { "probe failed: \($0)" } ?? "no longer listed"
            say("dropping host \(h.name): \(ranks)\(why)")
        }
        for (name, ranks) in notArrived where usable.contains(where: { $0.name == name }) {
            say("rank(s) \(ranks.map(String.init).joined(separator: ",")) on \(name) did not arrive, but \(name) answers the probe; keeping it")
        }
        let survivors = try plan.world(on: usable)
        noteRounding(usable)
        guard survivors != world else {
            say("every host of the world answers the probe; relaunching on the same \(world.ranks) rank(s)")
            return
        }
        let lost = world.hosts.filter { h in !survivors.hosts.contains { $0.name == h.name } }.map(\.name)
        change(to: survivors, reason: lost.isEmpty ? "hosts changed" : "lost host(s): " + lost.joined(separator: ","))
    }

    // MARK: Growing

    /// Asked while the job runs: looks for returning hosts every `interval` s; once a larger world is
    /// possible, true at the job's next checkpoint.
    private func shouldStop(_ watch: RejoinWatch) -> Bool {
        if watch.pending != nil { return watch.checkpointed(metrics: job.metricsPath) }
        guard rejoinInterval > 0, watch.due() else { return false }
        guard let listed = try? source.discover(defaultSlots: slotsPerHost) else { return false }
        let candidates = listed.filter { h in !world.hosts.contains { $0.name == h.name } }
        guard !candidates.isEmpty else { return false }
        let failures = probe.failures(candidates)
        let back = candidates.filter { failures[$0] == nil }
        let current = listed.filter { h in world.hosts.contains { $0.name == h.name } }
        guard !back.isEmpty, let bigger = try? plan.world(on: ordered(current + back)), bigger.ranks > world.ranks else { return false }
        watch.expect(bigger, back: back, metrics: job.metricsPath)
        say("host(s) \(back.map(\.name).joined(separator: ",")) answer again; growing to \(bigger.ranks) rank(s) at the next checkpoint")
        return false
    }

    // MARK: Helpers

    /// Records and logs a change to `new`, continuing from the newest good checkpoint.
    private func change(to new: ElasticWorld, reason: String) {
        let c = WorldChange(step: Self.newestStep(job.outDir), old: world, new: new, reason: reason)
        do { try c.record(in: job.outDir) } catch { say("cannot record the change of world in \(job.metricsPath): \(error)") }
        say(c.line)
        world = new
    }

    /// The current world's hosts first (rank 0 stays where it was), then the others in listed order.
    private func ordered(_ hosts: [ElasticHost]) -> [ElasticHost] {
        let kept = world.hosts.compactMap { h in hosts.first { $0.name == h.name } }
        return kept + hosts.filter { h in !kept.contains { $0.name == h.name } }
    }

    private func noteRounding(_ usable: [ElasticHost]) {
        let slots = usable.reduce(0) { $0 + $1.slots }
        if world.ranks < slots {
            say("using \(world.ranks) of the \(slots) usable slots: \(plan.microBatchesPerStep) micro-batches per step "
                + "divide evenly over \(world.ranks) rank(s), not over \(slots)")
        }
    }

    /// The listed hosts that answer the probe; the others are logged.
    static func usable(_ listed: [ElasticHost], probe: HostProbe, say: (String) -> Void) -> [ElasticHost] {
        let failures = probe.failures(listed)
        for h in listed { if let f = failures[h] { say("host \(h.name) left out: probe failed: \(f)") } }
        return listed.filter { failures[$0] == nil }
    }

    /// The step of the newest good checkpoint in `dir` (0 when there is none).
    static func newestStep(_ dir: String) -> Int {
        (try? CheckpointStore(directory: dir, keep: 0).loadNewestGood(includeOptimizer: false))?.0.step ?? 0
    }
}

/// What the job does about returning hosts while it runs.
final class RejoinWatch {
    let interval: Double
    private var last = Date()
    private(set) var pending: (world: ElasticWorld, back: [ElasticHost])?
    private var offset = 0

    init(interval: Double) { self.interval = interval }

    /// True once every `interval` s.
    func due() -> Bool {
        guard Date().timeIntervalSince(last) >= interval else { return false }
        last = Date()
        return true
    }

    /// A larger world is possible: wait for the next checkpoint after now.
    func expect(_ world: ElasticWorld, back: [ElasticHost], metrics: String) {
        pending = (world, back)
        offset = (try? FileManager.default.attributesOfItem(atPath: metrics)[.size] as? Int) ?? 0
    }

    /// True when the metrics log has a checkpoint event since `expect`.
    func checkpointed(metrics path: String) -> Bool {
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        guard (try? h.seek(toOffset: UInt64(offset))) != nil, let data = try? h.readToEnd() else { return false }
        return String(decoding: data, as: UTF8.self).contains("\"event\":\"checkpoint\"")
    }
}
