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
    private var script: String { TestCluster.script }

    /// 4 ranks on 2 test hosts: all checks pass, 2 nodes, and megabytes crossed both veths both ways.
    func testSelfTestAcrossTwoHostsGoesOverTCP() throws {
        _ = try MPIHarness.gptBinary()
        try bringUpCluster(hosts: 2)
        let before = try (0..<2).map { try veth($0) }

        let result = try MPIHarness.run([script, "run", "-np", "4", "--", "gpt", "selftest", "comm"], timeout: 240)
        try MPIHarness.assertSelfTestPassed(result, ranks: 4, nodes: 2)
        XCTAssertTrue(result.stdout.contains("(\(TestCluster.name)-h0: ranks [0, 1]; \(TestCluster.name)-h1: ranks [2, 3])"),
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

    private func bringUpCluster(hosts: Int) throws { try TestCluster.bringUp(hosts: hosts, for: self) }

    private func veth(_ index: Int) throws -> (rx: Int, tx: Int) { try TestCluster.veth(index) }
}
