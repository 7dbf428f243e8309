// The hosts of an elastic job: where they come from (a hostfile, a Slurm
// allocation, a discovery script) and how many ranks each may run.
import Foundation

// MARK: - Host

/// One host of an elastic job and the ranks (slots) it may run.
public struct ElasticHost: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var name: String
    public var slots: Int

    public init(_ name: String, slots: Int = 1) {
        self.name = name; self.slots = slots
    }

    public var description: String { "\(name):\(slots)" }

    /// Parses one line of a hostfile or of a discovery script's output: `host`, `host:N`,
    /// `host slots=N` (Open MPI's hostfile form); nil for blank lines and `#` comments.
    static func parse(line raw: Substring, defaultSlots: Int, source: String) throws -> ElasticHost? {
        let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let first = words.first else { return nil }
        var name = String(first), slots = defaultSlots
        if let colon = name.lastIndex(of: ":") {
            guard let n = Int(name[name.index(after: colon)...]), n >= 1 else { throw bad(raw, source) }
            slots = n
            name = String(name[..<colon])
        }
        for word in words.dropFirst() {
            let kv = word.split(separator: "=", maxSplits: 1).map(String.init)
            guard kv.count == 2, kv[0] == "slots" || kv[0] == "max_slots" else { throw bad(raw, source) }
            guard let n = Int(kv[1]), n >= 1 else { throw bad(raw, source) }
            if kv[0] == "slots" { slots = n }
        }
        guard !name.isEmpty else { throw bad(raw, source) }
        return ElasticHost(name, slots: slots)
    }

    private static func bad(_ line: Substring, _ source: String) -> TrainError {
        TrainError("\(source): cannot read the host line \"\(line)\"; write one host a line as `host`, `host:SLOTS` "
            + "or `host slots=SLOTS` (SLOTS at least 1)")
    }

    /// Every host of `text`, one a line; a host named twice keeps its last line.
    static func parseList(_ text: String, defaultSlots: Int, source: String) throws -> [ElasticHost] {
        var hosts: [ElasticHost] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let h = try parse(line: line, defaultSlots: defaultSlots, source: source) else { continue }
            if let i = hosts.firstIndex(where: { $0.name == h.name }) { hosts[i] = h } else { hosts.append(h) }
        }
        return hosts
    }
}

// MARK: - Discovery

/// Where the hosts of an elastic job are listed; `discover()` is asked again at every decision,
/// so a discovery script (or an edited hostfile) can add and remove hosts while the job runs.
public enum HostSource: Sendable, CustomStringConvertible {
    /// An Open MPI style hostfile.
    case hostfile(String)
    /// A Slurm node list (SLURM_JOB_NODELIST), expanded by `scontrol show hostnames`.
    case slurm(String)
    /// A program that prints the usable hosts, one a line, `host` or `host:SLOTS` (as Horovod's).
    case script(String)

    public var description: String {
        switch self {
        case .hostfile(let p): return "hostfile \(p)"
        case .slurm(let l): return "Slurm node list \(l)"
        case .script(let s): return "discovery script \(s)"
        }
    }

    /// The hosts listed now; hosts without a slot count get `defaultSlots`.
    public func discover(defaultSlots: Int, timeout: Double = 30) throws -> [ElasticHost] {
        let hosts: [ElasticHost]
        switch self {
        case .hostfile(let path):
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw TrainError("cannot read the hostfile \(path); give a readable file with one host a line")
            }
            hosts = try ElasticHost.parseList(text, defaultSlots: defaultSlots, source: path)
        case .slurm(let list):
            let out = try Self.output(of: ["scontrol", "show", "hostnames", list], timeout: timeout, what: "scontrol show hostnames")
            hosts = try ElasticHost.parseList(out, defaultSlots: defaultSlots, source: "scontrol show hostnames \(list)")
        case .script(let path):
            let out = try Self.output(of: [path], timeout: timeout, what: "the host discovery script \(path)")
            hosts = try ElasticHost.parseList(out, defaultSlots: defaultSlots, source: path)
        }
        return hosts
    }

    /// What `command` prints; throws when it cannot start, fails, or outlasts `timeout`.
    static func output(of command: [String], timeout: Double, what: String) throws -> String {
        let r = BoundedCommand.run(command, timeout: timeout)
        guard r.started else { throw TrainError("cannot run \(what): \(r.output)") }
        guard !r.timedOut else { throw TrainError("\(what) did not finish within \(Int(timeout)) s") }
        guard r.status == 0 else {
            throw TrainError("\(what) failed with status \(r.status): \(TrainError.oneLine(r.output))")
        }
        return r.output
    }
}
