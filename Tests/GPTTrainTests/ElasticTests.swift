import Foundation
import XCTest
import GPTTrain
import TestSupport

/// The parts of `gpt supervise --elastic` that need no MPI: host lists, the world of the survivors,
/// the watchdog's report, the mpirun command, the probe and the change-of-world records.
final class ElasticTests: XCTestCase {
    func testHostfileAndDiscoveryScriptListTheHosts() throws {
        let tmp = try TemporaryDirectory()
        let hostfile = tmp.file("hosts")
        try "# the cluster\nnode1 slots=4\nnode2:2\n\nnode3   # one slot\nnode1 slots=3\n"
            .write(toFile: hostfile, atomically: false, encoding: .utf8)
        XCTAssertEqual(try HostSource.hostfile(hostfile).discover(defaultSlots: 1),
                       [ElasticHost("node1", slots: 3), ElasticHost("node2", slots: 2), ElasticHost("node3", slots: 1)])
        let script = tmp.file("discover.sh")
        try "#!/bin/sh\necho a:2\necho b\necho 'some diagnostics' >&2\n".write(toFile: script, atomically: false, encoding: .utf8)
        chmod(script, 0o755)
        XCTAssertEqual(try HostSource.script(script).discover(defaultSlots: 4), [ElasticHost("a", slots: 2), ElasticHost("b", slots: 4)])

        try "node1 slots=zero\n".write(toFile: hostfile, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try HostSource.hostfile(hostfile).discover(defaultSlots: 1)) {
            XCTAssertTrue("\($0)".contains("host:SLOTS"), "\($0)")
        }
        try "#!/bin/sh\nexit 3\n".write(toFile: script, atomically: false, encoding: .utf8)
        XCTAssertThrowsError(try HostSource.script(script).discover(defaultSlots: 1)) { XCTAssertTrue("\($0)".contains("status 3"), "\($0)") }
        XCTAssertThrowsError(try HostSource.hostfile(tmp.file("none")).discover(defaultSlots: 1))
    }

    func testASlurmNodeListIsExpandedByScontrol() throws {
        guard findExecutable("scontrol") != nil else { throw XCTSkip("scontrol is not installed (launch/install-deps.sh --slurm)") }
        let tmp = try TemporaryDirectory()
        // scontrol reads a slurm.conf even to expand a list; a minimal one will do.
        try "ClusterName=t\nSlurmctldHost=localhost\nNodeName=node[1-3] CPUs=1\n".write(toFile: tmp.file("slurm.conf"), atomically: false, encoding: .utf8)
        let old = ProcessInfo.processInfo.environment["SLURM_CONF"]
        setenv("SLURM_CONF", tmp.file("slurm.conf"), 1)
        defer { if let old { setenv("SLURM_CONF", old, 1) } else { unsetenv("SLURM_CONF") } }
        XCTAssertEqual(try HostSource.slurm("node[1-3]").discover(defaultSlots: 8).map(\.description), ["node1:8", "node2:8", "node3:8"])
    }

    func testTheSurvivorsKeepTheMicroBatchesOfAStep() throws {
        let plan = ElasticPlan(microBatchesPerStep: 6, minRanks: 2, minHosts: 1)
        let three = try plan.world(on: [ElasticHost("a"), ElasticHost("b"), ElasticHost("c")])
        XCTAssertEqual(three.ranks, 3)
        XCTAssertEqual(three.accumulation, 2)
        XCTAssertEqual(three.hostList, "a:1,b:1,c:1")
        XCTAssertEqual(three.host(ofRank: 2), ElasticHost("c"))
        let two = try plan.world(on: [ElasticHost("a"), ElasticHost("c")])
        XCTAssertEqual(two.ranks * two.accumulation, 6)
        XCTAssertEqual(two.accumulation, 3)
        // 4 and 5 slots do not divide 6 micro-batches: 3 ranks, the rest of the slots idle.
        let odd = try plan.world(on: [ElasticHost("a", slots: 4), ElasticHost("b", slots: 1)])
        XCTAssertEqual(odd.hosts, [ElasticHost("a", slots: 3)])
        XCTAssertEqual(odd.accumulation, 2)
        XCTAssertEqual(odd.host(ofRank: 2)?.name, "a")
        XCTAssertNil(odd.host(ofRank: 3))
        XCTAssertThrowsError(try plan.world(on: [ElasticHost("a")])) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("fewer than --min-np 2"), text)
            XCTAssertFalse(text.contains("\n"), text)
        }
        let twoHosts = ElasticPlan(microBatchesPerStep: 4, minRanks: 1, minHosts: 2)
        XCTAssertThrowsError(try twoHosts.world(on: [ElasticHost("a", slots: 4), ElasticHost("b", slots: 4)]))
        XCTAssertEqual(try twoHosts.world(on: [ElasticHost("a", slots: 2), ElasticHost("b", slots: 2)]).ranks, 4)
    }

    func testTheWatchdogsReportNamesTheRanks() {
        let message = "watchdog: step 41 did not finish within 3 s (collective_timeout); rank 0 is stuck in gradient allreduce; "
            + "ranks that did not arrive: 2 (last seen in forward of step 41), 4 (never heard from); silent for more than "
            + "1.5 s (host or link lost?): ranks 2, 3; aborting so the job can be restarted from the last checkpoint"
        XCTAssertEqual(WatchdogReport.ranks(in: message), [2, 3, 4])
        XCTAssertEqual(WatchdogReport.ranks(in: "watchdog: step 3 ...; every rank reached it, so a rank or a link failed"), [])
    }

    func testTheCommandRunsTheWorldWithItsAccumulation() throws {
        let cmd = ElasticCommand(launcher: ["mpirun", "--bind-to", "none"], rshAgent: "ssh -p 2222",
                                 train: ["gpt", "train", "cfg.toml", "--set", "max_iters=10"], dataShards: 3)
        let world = ElasticWorld(hosts: [ElasticHost("a", slots: 2), ElasticHost("b")], accumulation: 4)
        XCTAssertEqual(cmd.words(for: world, resume: true),
                       ["mpirun", "--bind-to", "none", "-np", "3", "--host", "a:2,b:1", "--map-by", "slot",
                        "--mca", "plm_rsh_agent", "ssh -p 2222", "gpt", "train", "cfg.toml", "--set", "max_iters=10",
                        "--set", "gradient_accumulation_steps=4", "--set", "data_shards=3", "--resume"])
        let noConfig = ElasticCommand(launcher: ["mpirun"], rshAgent: nil, train: ["gpt", "train", "--set", "gradient_accumulation_steps=5"],
                                      dataShards: 0)
        XCTAssertEqual(try noConfig.config().gradientAccumulationSteps, 5)
        XCTAssertFalse(noConfig.words(for: world, resume: false).contains("--resume"))
        XCTAssertThrowsError(try ElasticCommand(launcher: ["mpirun"], rshAgent: nil, train: ["python", "x.py"], dataShards: 0).config())
    }

    func testTheProbeGoesThroughTheRemoteShell() throws {
        let tmp = try TemporaryDirectory()
        let agent = tmp.file("rsh")
        // A remote shell that reaches "up", refuses "down" like ssh (255), and hangs on "slow".
        try "#!/bin/sh\ncase $1 in up) shift; exec \"$@\" ;; down) echo 'no route to host' >&2; exit 255 ;; *) sleep 30 ;; esac\n"
            .write(toFile: agent, atomically: false, encoding: .utf8)
        chmod(agent, 0o755)
        let probe = HostProbe(agent: agent, timeout: 1)
        let started = Date()
        let failures = probe.failures([ElasticHost("up"), ElasticHost("down"), ElasticHost("slow")])
        XCTAssertLessThan(Date().timeIntervalSince(started), 5, "the probes run at once, each within its timeout")
        XCTAssertNil(failures[ElasticHost("up")])
        XCTAssertEqual(failures[ElasticHost("down")], "\(agent) exited with status 255: no route to host")
        XCTAssertEqual(failures[ElasticHost("slow")], "no answer through \(agent) within 1 s")
        XCTAssertEqual(HostProbe(agent: "ssh", timeout: 3).agent, ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=3"])
    }

    func testChangesOfWorldAreRecordedAndMarkedOnThePlot() throws {
        let tmp = try TemporaryDirectory()
        let a = ElasticWorld(hosts: [ElasticHost("h0"), ElasticHost("h1"), ElasticHost("h2")], accumulation: 2)
        let b = ElasticWorld(hosts: [ElasticHost("h0"), ElasticHost("h1")], accumulation: 3)
        let change = WorldChange(step: 40, old: a, new: b, reason: "lost host(s): h2")
        try change.record(in: tmp.path)
        try ElasticStart(step: 40, microBatches: 6, dataShards: 3).record(in: tmp.path, world: b)
        XCTAssertEqual(ElasticStart.read(outDir: tmp.path), ElasticStart(step: 40, microBatches: 6, dataShards: 3))
        XCTAssertNil(ElasticStart.read(outDir: tmp.file("elsewhere")))
        XCTAssertEqual(change.line, "world change at step 40: 3 -> 2 rank(s), hosts h0,h1,h2 -> h0,h1, "
            + "gradient_accumulation_steps 2 -> 3 (tokens per step kept); lost host(s): h2")
        let metrics = tmp.file("metrics.jsonl")
        let record = try XCTUnwrap(try readMetrics(tmp.path).first)
        XCTAssertEqual(record["event"] as? String, "world_change")
        XCTAssertEqual(record["old_hosts"] as? String, "h0,h1,h2")
        XCTAssertEqual(record["accumulation"] as? Int, 3)
        let marks = WorldChange.marks(metrics: metrics)
        XCTAssertEqual(marks.map(\.step), [40])
        XCTAssertEqual(marks.map(\.label), ["3\u{2192}2 ranks"])
        var plot = LossPlot(title: "loss")
        plot.series = [.init(label: "val", points: [(0, 4), (100, 2)])]
        plot.marks = [(40, "3\u{2192}2 ranks")]
        let svg = plot.svg()
        XCTAssertEqual(svg.components(separatedBy: "class=\"mark\"").count - 1, 1)
        XCTAssertTrue(svg.contains(">3\u{2192}2 ranks</text>"))
    }
}
