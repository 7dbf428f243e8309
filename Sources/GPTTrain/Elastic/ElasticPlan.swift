// Which world an elastic job runs on: how many ranks on which hosts, and the
// gradient accumulation that keeps the tokens of an optimizer step what the
// full world had.
import Foundation

// MARK: - World

/// The ranks of one launch: hosts in rank order (ranks fill each host's slots in turn), and the
/// gradient accumulation each rank runs.
public struct ElasticWorld: Equatable, Sendable {
    /// The hosts used and the ranks each runs (its slots here may be fewer than the host offers).
    public var hosts: [ElasticHost]
    public var accumulation: Int

    public init(hosts: [ElasticHost], accumulation: Int) {
        self.hosts = hosts; self.accumulation = accumulation
    }

    public var ranks: Int { hosts.reduce(0) { $0 + $1.slots } }

    /// Open MPI's `--host` value: `a:2,b:1`.
    public var hostList: String { hosts.map(\.description).joined(separator: ",") }

    /// The host names, comma-separated (for logs).
    public var names: String { hosts.map(\.name).joined(separator: ",") }

    /// The host rank `rank` runs on (ranks are mapped by slot, host after host).
    public func host(ofRank rank: Int) -> ElasticHost? {
        var first = 0
        for h in hosts {
            if rank >= first && rank < first + h.slots { return h }
            first += h.slots
        }
        return nil
    }
}

// MARK: - Plan

/// The elastic job's invariants: micro-batches per optimizer step over all ranks
/// (`ranks * gradient_accumulation_steps` of the full world) and the smallest world allowed.
public struct ElasticPlan: Sendable {
    /// Micro-batches per optimizer step, over every rank; kept on every world.
    public let microBatchesPerStep: Int
    public let minRanks: Int, minHosts: Int

    public init(microBatchesPerStep: Int, minRanks: Int, minHosts: Int) {
        self.microBatchesPerStep = microBatchesPerStep
        self.minRanks = max(1, minRanks); self.minHosts = max(1, minHosts)
    }

    /// The largest world on `usable` hosts (in their order) whose rank count divides the micro-batches
    /// of a step, so that accumulation = micro-batches / ranks is whole and the global batch is kept
    /// exactly; throws one line when it would have fewer than `minRanks` ranks or `minHosts` hosts.
    public func world(on usable: [ElasticHost]) throws -> ElasticWorld {
        let slots = usable.reduce(0) { $0 + $1.slots }
        var n = min(slots, microBatchesPerStep)
        while n >= 1 && microBatchesPerStep % n != 0 { n -= 1 }
        let hosts = n >= 1 ? Self.fill(usable, ranks: n) : []
        guard n >= minRanks && hosts.count >= minHosts else {
            let names = usable.isEmpty ? "none" : usable.map(\.description).joined(separator: ",")
            let whole = n == slots ? "" : " (\(n) of their \(slots) slots keep the step's \(microBatchesPerStep) micro-batches whole)"
            throw TrainError("elastic: \(usable.count) usable host(s) with \(slots) slot(s) (\(names))\(whole) give "
                + "\(max(n, 0)) rank(s) on \(hosts.count) host(s), fewer than --min-np \(minRanks) / --min-hosts \(minHosts); "
                + "stopping, the newest good checkpoint is kept: bring hosts back and run the same command again")
        }
        return ElasticWorld(hosts: hosts, accumulation: microBatchesPerStep / n)
    }

    /// `ranks` ranks over `hosts` in order, each host up to its slots.
    static func fill(_ hosts: [ElasticHost], ranks: Int) -> [ElasticHost] {
        var left = ranks, out: [ElasticHost] = []
        for h in hosts where left > 0 {
            let k = min(h.slots, left)
            out.append(ElasticHost(h.name, slots: k))
            left -= k
        }
        return out
    }
}

// MARK: - Failure diagnosis

/// What the step watchdog's message (metrics.jsonl's "watchdog" event) says about the ranks.
public enum WatchdogReport {
    /// The ranks it names as not arrived or silent, ascending.
    public static func ranks(in message: String) -> [Int] {
        var ranks = Set<Int>()
        if let r = message.range(of: "ranks that did not arrive: ") {
            let list = message[r.upperBound...].prefix { $0 != ";" }
            for part in list.split(separator: ",") {
                if let n = Int(part.trimmingCharacters(in: .whitespaces).prefix { $0.isNumber }) { ranks.insert(n) }
            }
        }
        if let r = message.range(of: "(host or link lost?): ranks ") {
            let list = message[r.upperBound...].prefix { $0 != ";" }
            for part in list.split(separator: ",") { if let n = Int(part.trimmingCharacters(in: .whitespaces)) { ranks.insert(n) } }
        }
        return ranks.sorted()
    }

    /// The messages of the "watchdog" events in the metrics log at `path` after byte `offset`.
    public static func messages(metrics path: String, after offset: Int) -> [String] {
        guard let h = FileHandle(forReadingAtPath: path) else { return [] }
        defer { try? h.close() }
        guard (try? h.seek(toOffset: UInt64(offset))) != nil, let data = try? h.readToEnd() else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  o["event"] as? String == "watchdog" else { return nil }
            return o["message"] as? String ?? ""
        }
    }
}
