// An elastic run on the network-namespace test cluster: three test hosts, one rank
// each, a small model, and `gpt supervise --elastic` launching it through
// `testcluster.sh mpirun` with netns-rsh as the remote shell.
import Foundation
import XCTest
import GPTData
import TestSupport

// MARK: - ElasticRun

struct ElasticRun {
    let tmp: TemporaryDirectory
    let corpus: String
    let hosts = 3

    /// Brings up the three test hosts for `test` (skips where namespaces cannot be made) and the corpus.
    init(for test: XCTestCase) throws {
        try TestCluster.bringUp(hosts: hosts, for: test)
        tmp = try TemporaryDirectory()
        corpus = try shakespeareCorpus(in: tmp.path)
    }

    /// Test host `i`'s address, as the hostfile and the supervisor's log name it.
    func address(_ i: Int) -> String { "\(TestCluster.prefix).\(10 + i)" }

    /// `gpt train` of the small model, 1 rank per host with accumulation 2: 6 micro-batches a step.
    func train(_ out: String, steps: Int) -> [String] {
        ["gpt", "train", "--set", "dataset=\(corpus)", "--set", "out_dir=\(out)", "--set", "max_iters=\(steps)",
         "--set", "n_layer=2", "--set", "n_embd=32", "--set", "n_head=2", "--set", "block_size=32",
         "--set", "batch_size=4", "--set", "gradient_accumulation_steps=2", "--set", "eval_iters=2",
         "--set", "eval_interval=10", "--set", "keep_checkpoints=0", "--set", "sample_tokens=0", "--set", "threads=1",
         "--set", "collective_timeout=3", "--set", "log_interval=1", "--set", "warmup_iters=5",
         "--set", "lr_decay_iters=\(steps)", "--set", "learning_rate=3e-3"]
    }

    /// The uninterrupted run on all three hosts.
    func reference(steps: Int) throws -> String {
        let out = tmp.file("reference")
        var train = train(out, steps: steps)
        train[0] = try GPTBinary.path()
        let r = try TestSupport.run(TestCluster.script, ["run", "-np", String(hosts), "--"] + train, timeout: 120)
        XCTAssertEqual(r.status, 0, r.output)
        return out
    }

    /// `gpt supervise --elastic` of the run in `out` over the three hosts.
    func supervise(_ out: String, steps: Int, minNp: Int, rejoin: Double) throws -> SupervisedRun {
        let hostfile = tmp.file("hosts")
        try (0..<hosts).map { address($0) + " slots=1\n" }.joined().write(toFile: hostfile, atomically: false, encoding: .utf8)
        let rsh = MPIHarness.packageRoot.appendingPathComponent("launch/netns-rsh").path
        return try SupervisedRun(["--elastic", "--hostfile", hostfile, "--min-np", String(minNp), "--out-dir", out,
                                  "--launcher", TestCluster.script + " mpirun", "--rsh-agent", rsh, "--probe-timeout", "3",
                                  "--rejoin-interval", String(rejoin), "--max-restarts", "3", "--delay", "1",
                                  "--hang-grace", "4", "--"] + train(out, steps: steps),
                                 environment: [:], logPath: tmp.file("supervise-\((out as NSString).lastPathComponent).log"))
    }

    /// Waits (up to `seconds`) for `condition`, while the supervisor runs; true when it held.
    @discardableResult
    func wait(_ sup: SupervisedRun, seconds: Double, until condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() && sup.process.isRunning && Date() < deadline { usleep(100_000) }
        return condition()
    }

    /// True once `out`'s metrics log has a checkpoint at `step` or later.
    func checkpointed(_ out: String, _ step: Int) -> Bool {
        ((try? readMetrics(out)) ?? []).contains { $0["event"] as? String == "checkpoint" && ($0["step"] as? Int ?? 0) >= step }
    }

    /// `testcluster.sh cut|restore h<i>`.
    func link(_ action: String, _ i: Int) throws {
        let r = try TestSupport.run(TestCluster.script, [action, "h\(i)"], timeout: 30)
        XCTAssertEqual(r.status, 0, r.output)
    }

    /// The logged training loss of every step.
    func losses(_ out: String) throws -> [Int: Double] {
        var l: [Int: Double] = [:]
        for m in try readMetrics(out) where m["event"] as? String == "train" { l[m["step"] as! Int] = m["loss"] as? Double }
        return l
    }

    /// Cuts test host `i`'s link once `out` has a checkpoint at `step` or later.
    func cut(_ i: Int, once out: String, checkpointed step: Int, _ sup: SupervisedRun) throws {
        XCTAssertTrue(wait(sup, seconds: 60) { checkpointed(out, step) }, "no checkpoint at step \(step):\n\(sup.log.suffix(3000))")
        try link("cut", i)
    }

    /// Waits for the supervisor to exit; prints its lines and returns the whole log.
    func finish(_ sup: SupervisedRun, seconds: Double = 90) -> String {
        XCTAssertTrue(wait(sup, seconds: seconds) { !sup.process.isRunning }, "the supervisor did not stop:\n\(sup.log.suffix(3000))")
        sup.waitUntilExit()
        let log = sup.log
        print(Self.supervisorLines(log))
        return log
    }

    /// Final parameters of a run whose world changed vs the uninterrupted run: max |difference|.
    /// Measured 1.8e-7 (3 -> 2 ranks at step 40 of 120) and 1.3e-5 (3 -> 2 -> 3 at steps 20 and 60
    /// of 160): the same gradients summed in another grouping, a rounding that training then carries.
    /// Parameters reach 1.1 (median 0.02); a 3-rank run drawing other windows (data_shards = 1) differs by 0.24.
    static let parameterTolerance: Float = 1e-4
    /// Logged training losses after the change vs the uninterrupted run: max |difference|
    /// (measured 2.8e-7 and 3.2e-6, losses of about 2.5 to 4).
    static let lossTolerance = 1e-4


    /// The run in `b`, whose world changed at the steps `changes`, against the uninterrupted run in
    /// `a`: bit-identical up to the first change, within the tolerances after it (printed).
    func assertClose(_ a: String, _ b: String, steps: Int, changedAt changes: [Int]) throws {
        let step = changes[0]
        let x = try Checkpoint.read(from: a + String(format: "/ckpt_%07d.h5", steps))
        let y = try Checkpoint.read(from: b + String(format: "/ckpt_%07d.h5", steps))
        let dp = zip(x.parameters, y.parameters).map { abs($0 - $1) }.max() ?? .infinity
        let la = try losses(a), lb = try losses(b)
        XCTAssertEqual(Set(la.keys), Set(lb.keys), "both runs log every step")
        XCTAssertEqual((0...step).map { la[$0] }, (0...step).map { lb[$0] }, "before the change the runs are the same run, bit for bit")
        let dl = ((step + 1)..<steps).map { abs((la[$0] ?? .nan) - (lb[$0] ?? .nan)) }.max() ?? .nan
        print(String(format: "elastic run, world changed at steps %@: final parameters max |diff| %.3g, "
                     + "losses after the first change max |diff| %.3g", changes.map(String.init).joined(separator: ", "), dp, dl))
        XCTAssertLessThan(dp, Self.parameterTolerance)
        XCTAssertLessThan(dl, Self.lossTolerance)
    }

    /// The world_change events of the run.
    func worldChanges(_ out: String) throws -> [[String: Any]] {
        try readMetrics(out).filter { $0["event"] as? String == "world_change" }
    }

    /// The supervisor's own lines.
    static func supervisorLines(_ log: String) -> String {
        log.split(separator: "\n").filter { $0.contains("[supervise") }.joined(separator: "\n")
    }
}
