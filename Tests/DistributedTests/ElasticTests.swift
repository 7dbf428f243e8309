// `gpt supervise --elastic` on the network-namespace test cluster (3 test hosts,
// 1 rank each): a host lost for good, a host that comes back, and too few
// survivors.
import Foundation
import XCTest
import GPTData
import GPTTrain
import TestSupport

final class ElasticClusterTests: XCTestCase {
    /// Final parameters of a run whose world changed vs the uninterrupted run: max |difference|.
    /// Measured 1.8e-7 (3 -> 2 ranks at step 40 of 120) and 1.3e-5 (3 -> 2 -> 3 at steps 20 and 60
    /// of 160): the same gradients summed in another grouping, a rounding that training then carries.
    /// Parameters reach 1.1 (median 0.02); a 3-rank run drawing other windows (data_shards = 1) differs by 0.24.
    static let parameterTolerance: Float = 1e-4
    /// Logged training losses after the change vs the uninterrupted run: max |difference|
    /// (measured 2.8e-7 and 3.2e-6, losses of about 2.5 to 4).
    static let lossTolerance = 1e-4

    func testALostHostIsDroppedAndTheRunContinuesOnTheSurvivorsWithTheSameBatch() throws {
        try TestCluster.bringUp(hosts: 3, for: self)
        let run = try ElasticRun()
        let steps = 120
        let reference = try run.reference(steps: steps)
        let out = run.tmp.file("elastic")
        let sup = try run.supervise(out, steps: steps, minNp: 2, rejoin: 0)
        defer { if sup.process.isRunning { sup.process.terminate() } }
        XCTAssertTrue(run.wait(sup, seconds: 60) { run.checkpointed(out, 40) }, "no checkpoint at step 40:\n\(sup.log.suffix(3000))")
        try run.link("cut", 2)  // for good
        XCTAssertTrue(run.wait(sup, seconds: 90) { !sup.process.isRunning }, "the run did not finish:\n\(sup.log.suffix(3000))")
        sup.waitUntilExit()
        let log = sup.log
        print(ElasticRun.supervisorLines(log))
        XCTAssertEqual(sup.process.terminationStatus, 0, log.suffix(4000).description)
        XCTAssertTrue(log.contains("dropping host \(run.address(2)): rank(s) 2 did not arrive (watchdog); probe failed"), log.suffix(4000).description)
        XCTAssertTrue(log.contains("3 -> 2 rank(s)") && log.contains("gradient_accumulation_steps 2 -> 3"), log.suffix(4000).description)
        let changes = try run.worldChanges(out)
        XCTAssertEqual(changes.count, 1)
        let at = try XCTUnwrap(changes.first?["step"] as? Int)
        XCTAssertGreaterThanOrEqual(at, 40)
        XCTAssertEqual(changes.first?["new_hosts"] as? String, "\(run.address(0)),\(run.address(1))")
        XCTAssertEqual(changes.first?["accumulation"] as? Int, 3)

        let (dp, dl) = try run.closeness(reference, out, steps: steps, after: at)
        print(String(format: "elastic 3 -> 2 ranks at step %d: final parameters max |diff| %.3g, losses after the cut max |diff| %.3g",
                     at, dp, dl))
        XCTAssertLessThan(dp, Self.parameterTolerance)
        XCTAssertLessThan(dl, Self.lossTolerance)
    }

    func testAHostThatComesBackRejoinsAtTheNextCheckpoint() throws {
        try TestCluster.bringUp(hosts: 3, for: self)
        let run = try ElasticRun()
        let steps = 160
        let reference = try run.reference(steps: steps)
        let out = run.tmp.file("rejoin")
        let sup = try run.supervise(out, steps: steps, minNp: 2, rejoin: 1)
        defer { if sup.process.isRunning { sup.process.terminate() } }
        XCTAssertTrue(run.wait(sup, seconds: 60) { run.checkpointed(out, 20) }, "no checkpoint at step 20:\n\(sup.log.suffix(3000))")
        try run.link("cut", 2)
        XCTAssertTrue(run.wait(sup, seconds: 60) { sup.log.contains("3 -> 2 rank(s)") }, "no change to 2 ranks:\n\(sup.log.suffix(3000))")
        XCTAssertTrue(run.wait(sup, seconds: 60) { sup.log.contains("launching 2 rank(s)") })
        try run.link("restore", 2)
        XCTAssertTrue(run.wait(sup, seconds: 60) { sup.log.contains("2 -> 3 rank(s)") }, "the host did not rejoin:\n\(sup.log.suffix(3000))")
        XCTAssertTrue(run.wait(sup, seconds: 90) { !sup.process.isRunning }, "the run did not finish:\n\(sup.log.suffix(3000))")
        sup.waitUntilExit()
        let log = sup.log
        print(ElasticRun.supervisorLines(log))
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
        let (dp, dl) = try run.closeness(reference, out, steps: steps, after: steps2[0])
        print(String(format: "elastic 3 -> 2 -> 3 ranks at steps %d, %d: final parameters max |diff| %.3g, "
                     + "losses after the cut max |diff| %.3g", steps2[0], steps2[1], dp, dl))
        XCTAssertLessThan(dp, Self.parameterTolerance)
        XCTAssertLessThan(dl, Self.lossTolerance)
    }

    func testFewerSurvivorsThanTheMinimumStopWithOneLineAndKeepTheCheckpoint() throws {
        try TestCluster.bringUp(hosts: 3, for: self)
        let run = try ElasticRun()
        let out = run.tmp.file("minimum")
        let sup = try run.supervise(out, steps: 400, minNp: 2, rejoin: 0)
        defer { if sup.process.isRunning { sup.process.terminate() } }
        XCTAssertTrue(run.wait(sup, seconds: 60) { run.checkpointed(out, 20) }, "no checkpoint at step 20:\n\(sup.log.suffix(3000))")
        try run.link("cut", 1)
        try run.link("cut", 2)
        XCTAssertTrue(run.wait(sup, seconds: 60) { sup.log.contains("job failed") }, "the job did not fail:\n\(sup.log.suffix(3000))")
        let store = CheckpointStore(directory: out, keep: 0)
        let (_, newest, _) = try store.loadNewestGood(includeOptimizer: false)
        let before = try XCTUnwrap(FileManager.default.contents(atPath: newest))
        XCTAssertTrue(run.wait(sup, seconds: 30) { !sup.process.isRunning }, "the supervisor did not stop:\n\(sup.log.suffix(3000))")
        sup.waitUntilExit()
        let log = sup.log
        print(ElasticRun.supervisorLines(log))
        XCTAssertNotEqual(sup.process.terminationStatus, 0)
        let last = try XCTUnwrap(log.split(separator: "\n").last.map(String.init))
        XCTAssertTrue(last.contains("1 usable host(s) with 1 slot(s) (\(run.address(0)):1)") && last.contains("fewer than --min-np 2"), last)
        XCTAssertEqual(log.components(separatedBy: "launching ").count - 1, 1, "no second launch")
        XCTAssertEqual(try store.loadNewestGood(includeOptimizer: false).1, newest)
        XCTAssertEqual(FileManager.default.contents(atPath: newest), before, "the newest good checkpoint is byte-identical")
    }
}
