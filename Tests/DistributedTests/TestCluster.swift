// Bringing the network-namespace test cluster (launch/testcluster.sh) up and
// down around a test, shared by the tests that run ranks on several test hosts.
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

// MARK: - TestCluster

enum TestCluster {
    /// launch/testcluster.sh of this checkout.
    static var script: String { MPIHarness.packageRoot.appendingPathComponent("launch/testcluster.sh").path }

    /// Brings up a fresh cluster of `hosts` test hosts and registers its teardown on `test`,
    /// which runs even when the test fails. Skips when network namespaces cannot be created.
    static func bringUp(hosts: Int, for test: XCTestCase) throws {
        guard getuid() == 0 else {
            throw XCTSkip("the test cluster needs root to create network namespaces (run the tests as root)")
        }
        try skipUnlessNamespacesWork()
        // A cluster left behind by an interrupted run would make `up` refuse.
        _ = try MPIHarness.run([script, "down"], timeout: 60)
        test.addTeardownBlock {
            let down = try? MPIHarness.run([script, "down"], timeout: 60)
            if down?.exitCode != 0 { print("testcluster.sh down failed:\n\(down?.transcript ?? "did not start")") }
        }
        let up = try MPIHarness.run([script, "up", String(hosts)], timeout: 60)
        XCTAssertEqual(up.exitCode, 0, "testcluster.sh up failed:\n\(up.transcript)")
        guard up.exitCode == 0 else { throw XCTSkip("cluster did not come up (failure recorded above)") }
    }

    /// Skips when this machine does not let us create a network namespace (containers without CAP_SYS_ADMIN).
    static func skipUnlessNamespacesWork() throws {
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
    static func veth(_ index: Int) throws -> (rx: Int, tx: Int) {
        func counter(_ name: String) throws -> Int {
            let path = "/sys/class/net/swgpt-v\(index)/statistics/\(name)"
            let text = try String(contentsOfFile: path, encoding: .utf8)
            return try XCTUnwrap(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), "unreadable \(path)")
        }
        return (try counter("rx_bytes"), try counter("tx_bytes"))
    }
}
