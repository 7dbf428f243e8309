// Bringing the network-namespace test cluster (launch/testcluster.sh) up and
// down around a test, shared by the tests that run ranks on several test hosts.
import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

// MARK: - TestCluster

enum TestCluster {
    /// The names' prefix (SWGPT_CLUSTER_NAME, as testcluster.sh reads it): hosts NAME-h0..., veths NAME-v0...
    static var name: String { ProcessInfo.processInfo.environment["SWGPT_CLUSTER_NAME"] ?? "swgpt" }

    /// The hosts' addresses' first three bytes (SWGPT_NET_PREFIX, as testcluster.sh reads it).
    static var prefix: String { ProcessInfo.processInfo.environment["SWGPT_NET_PREFIX"] ?? "10.231.0" }

    /// launch/testcluster.sh of this checkout.
    static var script: String { MPIHarness.packageRoot.appendingPathComponent("launch/testcluster.sh").path }

    /// Brings up a fresh cluster of `hosts` test hosts and registers its teardown on `test`,
    /// which runs even when the test fails. Skips when network namespaces cannot be created.
    static func bringUp(hosts: Int, for test: XCTestCase) throws {
        guard getuid() == 0 else {
            throw XCTSkip("the test cluster needs root to create network namespaces (run the tests as root)")
        }
        try skipUnlessNamespacesWork()
        try cycle(script, up: hosts, for: test)
    }

    /// `script down` (a cluster left behind by an interrupted run would make `up` refuse), `script down` as
    /// `test`'s teardown (it runs even when the test fails), then `script up count`.
    static func cycle(_ script: String, up count: Int, for test: XCTestCase) throws {
        let name = (script as NSString).lastPathComponent
        _ = try MPIHarness.run([script, "down"], timeout: 60)
        test.addTeardownBlock {
            let down = try? MPIHarness.run([script, "down"], timeout: 60)
            if down?.exitCode != 0 { print("\(name) down failed:\n\(down?.transcript ?? "did not start")") }
        }
        let up = try MPIHarness.run([script, "up", String(count)], timeout: 90)
        XCTAssertEqual(up.exitCode, 0, "\(name) up failed:\n\(up.transcript)")
        guard up.exitCode == 0 else { throw XCTSkip("\(name) up failed (recorded above)") }
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
            let path = "/sys/class/net/\(TestCluster.name)-v\(index)/statistics/\(name)"
            let text = try String(contentsOfFile: path, encoding: .utf8)
            return try XCTUnwrap(Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), "unreadable \(path)")
        }
        return (try counter("rx_bytes"), try counter("tx_bytes"))
    }
}
