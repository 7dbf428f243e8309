// `gpt supervise --elastic` on the network-namespace test cluster (3 test hosts,
// 1 rank each): a host lost for good, a host that comes back, and too few
// survivors.
import Foundation
import XCTest
import GPTData
import GPTTrain
import TestSupport

final class ElasticClusterTests: XCTestCase {
    func testALostHostIsDroppedAndTheRunContinuesOnTheSurvivorsWithTheSameBatch() throws {
        let run = try ElasticRun(for: self)
        let steps = 120
        let reference = try run.reference(steps: steps)
        let out = run.tmp.file("elastic")
        let sup = try run.supervise(out, steps: steps, minNp: 2, rejoin: 0)
        defer { if sup.process.isRunning { sup.process.terminate() } }
        try run.cut(2, once: out, checkpointed: 40, sup)  // for good
        let log = run.finish(sup)
        XCTAssertEqual(sup.process.terminationStatus, 0, log.suffix(4000).description)
        XCTAssertTrue(log.contains("dropping host \(run.address(2)): rank(s) 2 did not arrive (watchdog); probe failed"), log.suffix(4000).description)
        XCTAssertTrue(log.contains("3 -> 2 rank(s)") && log.contains("gradient_accumulation_steps 2 -> 3"), log.suffix(4000).description)
        let changes = try run.worldChanges(out)
        XCTAssertEqual(changes.count, 1)
        let at = try XCTUnwrap(changes.first?["step"] as? Int)
        XCTAssertGreaterThanOrEqual(at, 40)
        XCTAssertEqual(changes.first?["new_hosts"] as? String, "\(run.address(0)),\(run.address(1))")
        XCTAssertEqual(changes.first?["accumulation"] as? Int, 3)

        try run.assertClose(reference, out, steps: steps, changedAt: [at])
    }

    func testAHostThatComesBackRejoinsAtTheNextCheckpoint() throws {
        let run = try ElasticRun(for: self)
        let steps = 160
        let reference = try run.reference(steps: steps)
        let out = run.tmp.file("rejoin")
        let sup = try run.supervise(out, steps: steps, minNp: 2, rejoin: 1)
        defer { if sup.process.isRunning { sup.process.terminate() } }
        try run.cut(2, once: out, checkpointed: 20, sup)
        XCTAssertTrue(run.wait(sup, seconds: 60) { sup.log.contains("3 -> 2 rank(s)") }, "no change to 2 ranks:\n\(sup.log.suffix(3000))")
        XCTAssertTrue(run.wait(sup, seconds: 60) { sup.log.contains("launching 2 rank(s)") })
        try run.link("restore", 2)
        XCTAssertTrue(run.wait(sup, seconds: 60) { sup.log.contains("2 -> 3 rank(s)") }, "the host did not rejoin:\n\(sup.log.suffix(3000))")
        let log = run.finish(sup)
        XCTAssertEqual(sup.process.terminationStatus, 0, log.suffix(4000).description)
        XCTAssertTrue(log.contains("host(s) \(run.address(2)) answer again"), log.suffix(4000).description)
        XCTAssertTrue(log.contains("job finished after 1 restart(s) on 3 rank(s)"), log.suffix(4000).description)
        let changes = try run.worldChanges(out)
        XCTAssertEqual(changes.map { $0["new_ranks"] as? Int }, [2, 3])
        XCTAssertEqual(changes.map { $0["accumulation"] as? Int }, [3, 2])
        XCTAssertEqual(changes.last?["reason"] as? String, "host(s) back: \(run.address(2))")
        // It rejoined at a checkpoint boundary: the world changed at a checkpointed step, after the drop.
        let steps2 = changes.compactMap { $0["step"] as? Int }
        guard steps2.count == 2 else { return XCTFail("two changes of world expected: \(changes)") }
        XCTAssertGreaterThan(steps2[1], steps2[0])
        XCTAssertEqual(steps2[1] % 10, 0, "the world grew at a checkpoint (every 10 steps)")
        // gpt plot marks both changes on the curves.
        let svg = run.tmp.file("curves.svg")
        let plot = try TestSupport.run(try GPTBinary.path(), ["plot", "--out", svg, out + ":elastic"], timeout: 30)
        XCTAssertEqual(plot.status, 0, plot.output)
        let chart = try String(contentsOfFile: svg, encoding: .utf8)
        XCTAssertEqual(chart.components(separatedBy: "class=\"mark\"").count - 1, 2)
        XCTAssertTrue(chart.contains("3\u{2192}2 ranks") && chart.contains("2\u{2192}3 ranks"))
        try run.assertClose(reference, out, steps: steps, changedAt: steps2)
    }

    func testFewerSurvivorsThanTheMinimumStopWithOneLineAndKeepTheCheckpoint() throws {
        let run = try ElasticRun(for: self)
        let out = run.tmp.file("minimum")
        let sup = try run.supervise(out, steps: 400, minNp: 2, rejoin: 0)
        defer { if sup.process.isRunning { sup.process.terminate() } }
        try run.cut(1, once: out, checkpointed: 20, sup)
        try run.link("cut", 2)
        XCTAssertTrue(run.wait(sup, seconds: 60) { sup.log.contains("job failed") }, "the job did not fail:\n\(sup.log.suffix(3000))")
        let store = CheckpointStore(directory: out, keep: 0)
        let (_, newest, _) = try store.loadNewestGood(includeOptimizer: false)
        let before = try XCTUnwrap(FileManager.default.contents(atPath: newest))
        let log = run.finish(sup, seconds: 30)
        XCTAssertNotEqual(sup.process.terminationStatus, 0)
        let last = try XCTUnwrap(log.split(separator: "\n").last.map(String.init))
        XCTAssertTrue(last.contains("1 usable host(s) with 1 slot(s) (\(run.address(0)):1)") && last.contains("fewer than --min-np 2"), last)
        XCTAssertEqual(log.components(separatedBy: "launching ").count - 1, 1, "no second launch")
        XCTAssertEqual(try store.loadNewestGood(includeOptimizer: false).1, newest)
        XCTAssertEqual(FileManager.default.contents(atPath: newest), before, "the newest good checkpoint is byte-identical")
    }
}
