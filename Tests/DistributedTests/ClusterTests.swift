// Runs `gpt selftest comm` on a two-host test cluster (launch/testcluster.sh:
// network namespaces joined by a bridge) and checks that the ranks on
// different hosts really exchanged their data over TCP through the bridge.
// Needs root (network namespaces) and the release build of gpt.
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Tests

final class ClusterTests: XCTestCase {
    private var script: String { MPIHarness.packageRoot.appendingPathComponent("launch/testcluster.sh").path }

    /// 4 ranks on 2 test hosts: all checks pass, 2 nodes, and megabytes crossed both veths both ways.
    func testSelfTestAcrossTwoHostsGoesOverTCP() throws {
        _ = try MPIHarness.gptBinary()
        try bringUpCluster(hosts: 2)
        let before = try (0..<2).map { try veth($0) }

        let result = try MPIHarness.run([script, "run", "-np", "4", "--", "gpt", "selftest", "comm"], timeout: 240)
        try MPIHarness.assertSelfTestPassed(result, ranks: 4, nodes: 2)
        XCTAssertTrue(result.stdout.contains("(swgpt-h0: ranks [0, 1]; swgpt-h1: ranks [2, 3])"),
                      "ranks were not placed two per test host:\n\(result.transcript)")

        // The selftest reduces and broadcasts tens of MB; ranks 0-1 and 2-3 sit on different hosts,
        // so a large share of it must have crossed each host's link in both directions.
        let after = try (0..<2).map { try veth($0) }
        let minimum = 8_000_000
        for host in 0..<2 {
            let sent = after[host].rx - before[host].rx, received = after[host].tx - before[host].tx
            print("swgpt-h\(host): sent \(sent) bytes, received \(received) bytes over the bridge")
            XCTAssertGreaterThan(sent, minimum, "swgpt-h\(host) sent only \(sent) bytes over its link")
            XCTAssertGreaterThan(received, minimum, "swgpt-h\(host) received only \(received) bytes over its link")
        }
    }

    /// A rank killed on the second test host ends the whole job, across the network.
    func testRankKilledOnAnotherHostEndsTheJob() throws {
        _ = try MPIHarness.gptBinary()
        try bringUpCluster(hosts: 2)
        let result = try MPIHarness.run([script, "run", "-np", "4", "--", "gpt", "selftest", "comm", "--die-rank", "3"],
                                        timeout: 120)
        XCTAssertFalse(result.timedOut, "the job hung after rank 3 died:\n\(result.transcript)")
        XCTAssertNotEqual(result.exitCode, 0, result.transcript)
        let delay = try XCTUnwrap(MPIHarness.secondsFromEvent(in: result, marker: "sends itself SIGKILL at unix time "),
                                  result.transcript)
        print("rank 3 on swgpt-h1 killed: mpirun exited \(String(format: "%.2f", delay)) s later")
        XCTAssertLessThan(delay, 30)
    }

    // MARK: - Cluster lifetime

    /// Brings up a fresh cluster and registers its teardown, which runs even when the test fails.
    private func bringUpCluster(hosts: Int) throws {
        guard getuid() == 0 else {
            throw XCTSkip("the test cluster needs root to create network namespaces (run the tests as root)")
        }
        try skipUnlessNamespacesWork()
        // A cluster left behind by an interrupted run would make `up` refuse.
        _ = try MPIHarness.run([script, "down"], timeout: 60)
        addTeardownBlock { [script] in
            let down = try? MPIHarness.run([script, "down"], timeout: 60)
            if down?.exitCode != 0 { print("testcluster.sh down failed:\n\(down?.transcript ?? "did not start")") }
        }
        let up = try MPIHarness.run([script, "up", String(hosts)], timeout: 60)
        XCTAssertEqual(up.exitCode, 0, "testcluster.sh up failed:\n\(up.transcript)")
        guard up.exitCode == 0 else { throw XCTSkip("cluster did not come up (failure recorded above)") }
    }

    /// Skips when this machine does not let us create a network namespace (containers without CAP_SYS_ADMIN).
    private func skipUnlessNamespacesWork() throws {
        let name = "swgpt-probe\(getpid())"
        let add: ProcessResult
        do {
            add = try MPIHarness.run(["ip", "netns", "add", name], timeout: 30)
        } catch {
            throw XCTSkip("cannot create network namespaces here: `ip` is missing (apt-get install -y iproute2): \(error)")
        }
        guard add.exitCode == 0 else {
            throw XCTSkip("cannot create network namespaces here (`ip netns add` failed: "
                          + "\(add.stderr.trimmingCharacters(in: .whitespacesAndNewlines)))")
        }
        _ = try MPIHarness.run(["ip", "netns", "del", name], timeout: 30)
    }

    /// Byte counters of test host `index`'s veth in the root namespace (rx = sent by the host).
    private func veth(_ index: Int) throws -> (rx: Int, tx: Int) {
        func counter(_ name: String) throws -> Int {
            let path = "/sys/class/net/swgpt-v\(index)/statistics/\(name)"
            let text = try String(contentsOfFile: path, encoding: .utf8)
            return try XCTUnwrap(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), "unreadable \(path)")
        }
        return (try counter("rx_bytes"), try counter("tx_bytes"))
    }
}
