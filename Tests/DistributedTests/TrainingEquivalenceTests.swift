// Data-parallel training under real mpirun: N ranks with batch B train the
// same model as one rank with batch N*B (the same windows: data_shards fixed),
// with the gradient allreduce overlapped with backward and without; across two
// test hosts over TCP too; replicas stay identical to the checkpoint; a rank
// killed mid-run ends the job. Small models, so each run takes about a second.
// Needs the release build (swift build -c release --build-tests) and Tiny
// Shakespeare in the shared datasets.
import Foundation
import GPTCore
import GPTData
import GPTTrain
import TestSupport
import XCTest

// MARK: - Tests

final class TrainingEquivalenceTests: XCTestCase {
    /// Tolerance on the largest per-tensor relative difference ‖a − b‖ / ‖b‖ after 5 AdamW steps.
    static let tolerance = 1e-5

    /// 4 ranks with batch 4 = 1 rank with batch 16, overlap on (several buckets) and off.
    func testFourRanksEqualOneRankWithFourTimesTheBatch() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-dp")
        let reference = try train(in: dir, "one", ranks: 1, ["batch_size=16", "data_shards=4"])
        for overlap in [true, false] {
            let name = "four-overlap-\(overlap)"
            let run = try train(in: dir, name, ranks: 4, ["batch_size=4", "data_shards=4", "overlap_comm=\(overlap)"])
            try assertEquivalent(run, reference, "4 ranks x batch 4 (overlap_comm \(overlap)) vs 1 rank x batch 16")
            try assertReplicasMatchCheckpoint(run, ranks: 4)
            try assertCommunicationThread(run, used: overlap)
        }
        // The comparison is sensitive: other windows (one shard instead of four) give other weights.
        let other = try train(in: dir, "one-shard", ranks: 1, ["batch_size=16", "data_shards=1"])
        let control = try Self.difference(Checkpoint.read(from: other.checkpoint), Checkpoint.read(from: reference.checkpoint))
        print("control: 1 rank, data_shards 1 vs 4: max relative difference \(control.description)")
        XCTAssertGreaterThan(control.relative, 1e3 * Self.tolerance, "the comparison cannot tell different runs apart")
    }

    /// 2 ranks x 2 accumulation steps = 1 rank x 4 accumulation steps, overlap on and off.
    func testAccumulationOverRanksEqualsAccumulationOnOneRank() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-dp")
        let reference = try train(in: dir, "one", ranks: 1, ["batch_size=4", "data_shards=2", "gradient_accumulation_steps=4"])
        for overlap in [true, false] {
            let run = try train(in: dir, "two-overlap-\(overlap)", ranks: 2,
                                ["batch_size=4", "data_shards=2", "gradient_accumulation_steps=2", "overlap_comm=\(overlap)"])
            try assertEquivalent(run, reference, "2 ranks x 2 micro-steps (overlap_comm \(overlap)) vs 1 rank x 4 micro-steps")
            try assertReplicasMatchCheckpoint(run, ranks: 2)
            try assertCommunicationThread(run, used: overlap)
        }
    }

    /// The architecture options under mpirun: 2 ranks x batch 4 = 1 rank x batch 8 with all four on
    /// (RMSNorm, RoPE, SwiGLU, QK-norm), overlap on; the checkpoint records them.
    func testTwoRanksEqualOneRankWithTheArchitectureOptions() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-dp")
        let options = ["norm=rmsnorm", "position=rope", "mlp=swiglu", "qk_norm=true"]
        let reference = try train(in: dir, "one", ranks: 1, ["batch_size=8", "data_shards=2"] + options)
        let run = try train(in: dir, "two", ranks: 2, ["batch_size=4", "data_shards=2", "overlap_comm=true"] + options)
        try assertEquivalent(run, reference, "2 ranks x batch 4 vs 1 rank x batch 8, all four options")
        try assertReplicasMatchCheckpoint(run, ranks: 2)
        let model = try Checkpoint.read(from: run.checkpoint).modelConfig
        XCTAssertEqual([model.norm.rawValue, model.position.rawValue, model.mlp.rawValue], ["rmsnorm", "rope", "swiglu"])
        XCTAssertTrue(model.qkNorm)
    }

    /// 4 ranks on 2 test hosts (TCP between them) = 1 rank with 4 times the batch.
    func testFourRanksOnTwoHostsOverTCPEqualOneNode() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-dp")
        let reference = try train(in: dir, "one", ranks: 1, ["batch_size=16", "data_shards=4"])
        try TestCluster.bringUp(hosts: 2, for: self)
        let before = try (0..<2).map { try TestCluster.veth($0) }
        let run = try train(in: dir, "cluster", ranks: 4, ["batch_size=4", "data_shards=4", "overlap_comm=true"], onCluster: true)
        try assertEquivalent(run, reference, "4 ranks on 2 test hosts vs 1 rank x batch 16")
        try assertReplicasMatchCheckpoint(run, ranks: 4)
        // The gradients (tens of kB per step) crossed the bridge.
        let after = try (0..<2).map { try TestCluster.veth($0) }
        for host in 0..<2 {
            let sent = after[host].rx - before[host].rx
            XCTAssertGreaterThan(sent, 100_000, "swgpt-h\(host) sent only \(sent) bytes: the ranks did not talk over TCP")
        }
    }

    /// Evaluation, checkpoints and samples every 2 steps with 4 ranks: the run finishes, and the
    /// final checkpoint holds exactly every rank's parameters.
    func testEvalCheckpointAndSampleWithFourRanks() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-dp")
        let run = try train(in: dir, "busy", ranks: 4,
                            ["batch_size=4", "max_iters=6", "eval_interval=2", "eval_iters=3", "sample_tokens=24",
                             "always_save_checkpoint=true", "check_interval=2", "keep_checkpoints=0"])
        let events = try readMetrics(run.outDir).compactMap { $0["event"] as? String }
        XCTAssertEqual(events.filter { $0 == "eval" }.count, 4, "evaluations at steps 0, 2, 4, 6: \(events)")
        XCTAssertEqual(events.filter { $0 == "sample" }.count, 4, "samples at steps 0, 2, 4, 6: \(events)")
        XCTAssertEqual(events.filter { $0 == "checkpoint" }.count, 3, "checkpoints at steps 2, 4, 6: \(events)")
        for step in [2, 4, 6] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: run.outDir + String(format: "/ckpt_%07d.h5", step)))
        }
        try assertReplicasMatchCheckpoint(run, ranks: 4)
    }

    /// rng = "torch" on 2 ranks (one PyTorch stream per rank, seeded with seed + rank, as
    /// nanoGPT's DDP): 6 steps straight = 3 steps + resume + 3 steps, bit for bit, because the
    /// checkpoint holds both ranks' streams and each rank gets its own back.
    func testTorchStreamsOfTwoRanksResumeBitIdentically() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-dp")
        let common = ["batch_size=4", "rng=torch", "eval_interval=3", "always_save_checkpoint=true", "keep_checkpoints=0",
                      "gradient_accumulation_steps=2"]
        let straight = try train(in: dir, "straight", ranks: 2, common + ["max_iters=6"])
        _ = try train(in: dir, "split", ranks: 2, common + ["max_iters=3"])
        let split = try train(in: dir, "split", ranks: 2, common + ["max_iters=6", "init_from=resume"])
        let mid = try Checkpoint.read(from: split.outDir + "/ckpt_0000003.h5", includeOptimizer: false)
        XCTAssertEqual(mid.state["torch_rng"]?.count, 2 * TorchGenerator.wordCount, "both ranks' streams")
        let a = try Checkpoint.read(from: straight.outDir + "/ckpt_0000006.h5")
        let b = try Checkpoint.read(from: split.outDir + "/ckpt_0000006.h5")
        XCTAssertEqual(a.parameters.map(\.bitPattern), b.parameters.map(\.bitPattern), "parameters after 6 vs 3 + resume + 3")
        XCTAssertEqual(a.adamV!, b.adamV!)
        XCTAssertEqual(a.state["torch_rng"], b.state["torch_rng"], "the streams at step 6")
        try assertReplicasMatchCheckpoint(split, ranks: 2)
    }

    /// A rank SIGKILLed in the middle of training ends the job with an error, never a hang.
    func testKilledRankEndsTraining() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-dp")
        let result = try trainWithRank1Dropping(in: dir, "killed", [], environment: ["SWIFTGPT_THREADS": "1"])
        XCTAssertFalse(result.timedOut, "the training job hung after rank 1 was killed:\n\(result.transcript)")
        XCTAssertNotEqual(result.exitCode, 0, "mpirun reported success although rank 1 was killed:\n\(result.transcript)")
        XCTAssertTrue(result.stdout.contains("rank 1 of 4 kills itself (SIGKILL) at step 3"), result.transcript)
        let delay = try XCTUnwrap(MPIHarness.secondsFromEvent(in: result, marker: "at step 3 at unix time "), result.transcript)
        print("rank 1 killed at step 3 of training: mpirun exited \(String(format: "%.2f", delay)) s later, "
              + "status \(result.exitCode.map(String.init) ?? "signal")")
        XCTAssertLessThan(delay, 30, "mpirun took \(delay) s to end the job")
        let metrics = try String(contentsOfFile: dir.file("killed") + "/metrics.jsonl", encoding: .utf8)
        XCTAssertFalse(metrics.contains("\"summary\""), "the run claims to have finished:\n\(metrics)")
    }

    /// A rank that stops (SIGSTOP: alive but silent, as on a hung node) is not noticed by Open MPI;
    /// collective_timeout makes the watchdog abort the job, rank 0 naming the step and the missing rank.
    func testHungRankEndsTrainingAfterTheCollectiveTimeout() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-dp")
        let result = try trainWithRank1Dropping(in: dir, "hung", ["--set", "collective_timeout=3"],
                                                environment: ["SWIFTGPT_TEST_KILL_SIGNAL": "STOP"])
        XCTAssertFalse(result.timedOut, "the training job hung after rank 1 stopped:\n\(result.transcript)")
        XCTAssertNotEqual(result.exitCode, 0, result.transcript)
        XCTAssertTrue(result.stdout.contains("rank 1 of 4 stops itself (SIGSTOP) at step 3"), result.transcript)
        XCTAssertTrue(result.stderr.contains("watchdog: step 4 did not finish within 3 s"), result.transcript)
        XCTAssertTrue(result.stderr.contains("ranks that did not arrive: 1 (last seen in"), result.transcript)
        let delay = try XCTUnwrap(MPIHarness.secondsFromEvent(in: result, marker: "at step 3 at unix time "), result.transcript)
        print("rank 1 stopped at step 3: mpirun exited \(String(format: "%.2f", delay)) s later (collective_timeout 3 s)")
        XCTAssertGreaterThan(delay, 2.5, "the job ended before the timeout could have fired")
        XCTAssertLessThan(delay, 30, "mpirun took \(delay) s to end the job")
    }

    // MARK: ZeRO-1

    /// zero_stage 1 on 4 ranks = zero_stage 0 on 4 ranks = 1 rank with the same global batch, after
    /// 20 steps with clipping and accumulation, overlap on and off: parameters, logged losses and
    /// gradient norms; each rank holds a quarter of the AdamW state, as its own report says.
    /// The bound: 20 AdamW steps turn the different orders of the gradient sums (8 micro-batches
    /// on one rank; 2 per rank and an allreduce; a reduce-scatter) into differences of a few ulps
    /// of the weights: largest relative 7.4e-7 with the BLAS GEMM and 1.16e-6 with the AVX-512 one
    /// (whose own rounding differs).
    func testZeroStage1EqualsStage0AndOneRank() throws {
        let tolerance = 2.5e-6
        let dir = try TemporaryDirectory(prefix: "swiftgpt-zero")
        let common = ["batch_size=4", "data_shards=4", "max_iters=20", "eval_interval=20", "grad_clip=0.5"]
        let reference = try train(in: dir, "one", ranks: 1, common + ["gradient_accumulation_steps=8"])
        let stage0 = try train(in: dir, "stage0", ranks: 4, common + ["gradient_accumulation_steps=2"])
        try assertEquivalent(stage0, reference, "4 ranks zero_stage 0 vs 1 rank, 20 steps", steps: 20, tolerance: tolerance)
        let norms = try Self.trainLog(stage0).map(\.norm)
        XCTAssertGreaterThan(norms.filter { $0 > 0.5 }.count, 10, "clipping is not active: norms \(norms)")
        var sharded: [Run] = []
        for overlap in [true, false] {
            let run = try train(in: dir, "stage1-overlap-\(overlap)", ranks: 4,
                                common + ["gradient_accumulation_steps=2", "zero_stage=1", "overlap_comm=\(overlap)"])
            try assertEquivalent(run, stage0, "4 ranks zero_stage 1 (overlap_comm \(overlap)) vs zero_stage 0", steps: 20,
                                 tolerance: tolerance)
            try assertEquivalent(run, reference, "4 ranks zero_stage 1 (overlap_comm \(overlap)) vs 1 rank", steps: 20,
                                 tolerance: tolerance)
            try assertReplicasMatchCheckpoint(run, ranks: 4)
            try assertCommunicationThread(run, used: overlap)
            sharded.append(run)
        }
        let shardInfo = try Self.info(sharded[0]), whole = try Self.info(stage0)
        let perRank = try XCTUnwrap(shardInfo["optimizer_bytes"] as? Int), all = try XCTUnwrap(whole["optimizer_bytes"] as? Int)
        print("AdamW state per rank: \(all) bytes with zero_stage 0, \(perRank) with zero_stage 1 on 4 ranks")
        XCTAssertEqual(all, 8 * (whole["parameters"] as? Int ?? 0))
        XCTAssertGreaterThanOrEqual(perRank, all / 4)
        XCTAssertLessThan(perRank - all / 4, 8 * ShardLayout.alignment, "more than the padding of one shard")
    }

    /// ZeRO-1's all-gather overlapped with the next forward (overlap_gather, the default) equals one
    /// blocking all-gather bit for bit on 2 and 3 ranks: parameters, moments, every logged loss and
    /// gradient norm, with accumulation, clipping, evaluations, checkpoints and replica checks between
    /// the steps (each of which must wait for the all-gather).
    func testZeroStage1OverlappedGatherEqualsBlockingBitForBit() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-zero")
        for ranks in [2, 3] {
            let common = ["batch_size=2", "data_shards=\(ranks)", "max_iters=8", "eval_interval=3", "grad_clip=0.5",
                          "gradient_accumulation_steps=2", "zero_stage=1", "check_interval=2", "always_save_checkpoint=true"]
            let on = try train(in: dir, "gather-on-\(ranks)", ranks: ranks, common)
            let off = try train(in: dir, "gather-off-\(ranks)", ranks: ranks, common + ["overlap_gather=false"])
            XCTAssertEqual(try Self.info(on)["overlap_gather"] as? Bool, true)
            XCTAssertEqual(try Self.info(off)["overlap_gather"] as? Bool, false)
            let a = try Checkpoint.read(from: on.checkpoint), b = try Checkpoint.read(from: off.checkpoint)
            XCTAssertEqual(a.step, 8)
            XCTAssertEqual(a.parameters.map(\.bitPattern), b.parameters.map(\.bitPattern), "\(ranks) ranks: parameters")
            XCTAssertEqual(a.adamM?.map(\.bitPattern), b.adamM?.map(\.bitPattern), "\(ranks) ranks: first moments")
            XCTAssertEqual(a.adamV?.map(\.bitPattern), b.adamV?.map(\.bitPattern), "\(ranks) ranks: second moments")
            let logOn = try Self.trainLog(on), logOff = try Self.trainLog(off)
            XCTAssertEqual(logOn.map(\.step), Array(1...8))
            XCTAssertEqual(logOn.map(\.loss), logOff.map(\.loss), "\(ranks) ranks: logged losses")
            XCTAssertEqual(logOn.map(\.norm), logOff.map(\.norm), "\(ranks) ranks: logged gradient norms")
            let evals = { (r: Run) in try readMetrics(r.outDir).filter { $0["event"] as? String == "eval" }.map { $0["val_loss"] as? Double } }
            XCTAssertEqual(try evals(on), try evals(off), "\(ranks) ranks: evaluations")
            try assertReplicasMatchCheckpoint(on, ranks: ranks)
            print("\(ranks) ranks: overlapped and blocking all-gather agree bit for bit over \(logOn.count) steps "
                  + "(final loss \(logOn.last!.loss))")
        }
    }

    /// A world of 6 on a model of 200 parameters: 6 does not divide 200 and the last rank's shard
    /// is empty; zero_stage 1 still equals one rank with the same global batch.
    func testZeroStage1WithAnEmptyShard() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-zero")
        let tiny = ["n_layer=1", "n_head=1", "n_embd=2", "block_size=8", "data_shards=6", "bucket_mb=0.0001"]
        let reference = try train(in: dir, "one", ranks: 1, tiny + ["batch_size=12"])
        let run = try train(in: dir, "six", ranks: 6, tiny + ["batch_size=2", "zero_stage=1"])
        let info = try Self.info(run)
        let parameters = try XCTUnwrap(info["parameters"] as? Int)
        XCTAssertNotEqual(parameters % 6, 0, "the world size divides the \(parameters) parameters")
        XCTAssertTrue(ShardLayout(count: parameters, ranks: 6).range(of: 5).isEmpty, "rank 5's shard is not empty")
        try assertEquivalent(run, reference, "6 ranks zero_stage 1 (rank 5's shard empty) vs 1 rank")
        try assertReplicasMatchCheckpoint(run, ranks: 6)
    }

    /// Checkpoints do not depend on the sharding: zero_stage 1 on 2 ranks, resumed at step 3 with
    /// zero_stage 0 on one rank, gives the next step's loss of the 2-rank run, and the other way round.
    func testZeroStage1CheckpointsResumeOnOneRankWithStage0AndBack() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-zero")
        let common = ["data_shards=2", "max_iters=6", "eval_interval=3", "always_save_checkpoint=true", "keep_checkpoints=0"]
        let two = try train(in: dir, "two", ranks: 2, common + ["batch_size=4", "zero_stage=1"])
        let one = try train(in: dir, "one", ranks: 1, common + ["batch_size=8"])
        for (from, ranks, batch, name) in [(two, 1, 8, "two-on-one"), (one, 2, 4, "one-on-two")] {
            try FileManager.default.createDirectory(atPath: dir.file(name), withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: from.outDir + "/ckpt_0000003.h5", toPath: dir.file(name) + "/ckpt_0000003.h5")
            let resumed = try train(in: dir, name, ranks: ranks, common + ["batch_size=\(batch)", "max_iters=4", "init_from=resume",
                                                                        "zero_stage=\(ranks == 2 ? 1 : 0)"])
            let next = try XCTUnwrap(Self.trainLog(resumed).first), expected = try Self.trainLog(from)[3]
            print("\(name): step 4 loss \(next.loss) vs \(expected.loss), grad norm \(next.norm) vs \(expected.norm)")
            XCTAssertEqual(next.step, 4)
            XCTAssertEqual(next.loss, expected.loss, accuracy: 1e-6 * expected.loss, name)
            XCTAssertEqual(next.norm, expected.norm, accuracy: 1e-5 * expected.norm, name)
        }
    }

    /// A kill switch that names no rank of the world is refused before training starts.
    func testKillSwitchOutsideTheWorldIsRejected() throws {
        let dir = try TemporaryDirectory(prefix: "swiftgpt-dp")
        let corpus = try corpus(in: dir)
        let result = try MPIHarness.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2",
                                         try MPIHarness.gptBinary(), "train"]
                                            + Self.baseSettings(corpus: corpus, outDir: dir.file("bad")),
                                        timeout: 60,
                                        environment: ["SWIFTGPT_TEST_KILL_RANK": "7", "SWIFTGPT_TEST_KILL_STEP": "1"])
        XCTAssertFalse(result.timedOut, result.transcript)
        XCTAssertNotEqual(result.exitCode, 0, result.transcript)
        XCTAssertTrue(result.transcript.contains("SWIFTGPT_TEST_KILL_RANK=7 is not a rank: the world has 2 rank(s), 0...1"),
                      result.transcript)
    }

    // MARK: - Runs

    struct Run {
        let name: String
        let outDir: String
        var checkpoint: String { outDir + "/latest.h5" }
    }

    /// The corpus shared by all runs of one test.
    /// `gpt train` on 4 ranks for 50 steps, rank 1's kill switch set for step 3; `settings` and `environment` added.
    private func trainWithRank1Dropping(in dir: TemporaryDirectory, _ name: String, _ settings: [String],
                                        environment: [String: String]) throws -> ProcessResult {
        let args = Self.baseSettings(corpus: try corpus(in: dir), outDir: dir.file(name))
            + ["--set", "batch_size=4", "--set", "max_iters=50"] + settings
        return try MPIHarness.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "4",
                                   try MPIHarness.gptBinary(), "train"] + args,
                                  timeout: 120,
                                  environment: ["SWIFTGPT_TEST_KILL_RANK": "1", "SWIFTGPT_TEST_KILL_STEP": "3"]
                                      .merging(environment) { $1 })
    }

    private func corpus(in dir: TemporaryDirectory) throws -> String {
        try shakespeareCorpus(in: dir.path)
    }

    /// A tiny model trained for 5 AdamW steps with dropout 0; `--set` settings shared by every run.
    static func baseSettings(corpus: String, outDir: String) -> [String] {
        let settings = ["dataset=\(corpus)", "out_dir=\(outDir)", "n_layer=2", "n_head=2", "n_embd=48", "block_size=32",
                        "dropout=0", "max_iters=5", "eval_interval=5", "eval_iters=2", "sample_tokens=0",
                        "warmup_iters=2", "learning_rate=1e-3", "log_interval=1", "threads=1",
                        // Buckets of 2,621 floats: each block (27,792 floats) is its own bucket.
                        "bucket_mb=0.01"]
        return settings.flatMap { ["--set", $0] }
    }

    /// Trains with `ranks` ranks (mpirun, or no mpirun for one rank) and the extra settings.
    private func train(in dir: TemporaryDirectory, _ name: String, ranks: Int, _ settings: [String],
                       onCluster: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws -> Run {
        let outDir = dir.file(name)
        let args = ["train"] + Self.baseSettings(corpus: try corpus(in: dir), outDir: outDir) + settings.flatMap { ["--set", $0] }
        let binary = try MPIHarness.gptBinary()
        let argv: [String]
        if onCluster {
            argv = [TestCluster.script, "run", "-np", String(ranks), "--", binary] + args
        } else if ranks == 1 {
            argv = [binary] + args
        } else {
            argv = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", String(ranks), binary] + args
        }
        let result = try MPIHarness.run(argv, timeout: onCluster ? 180 : 120)
        XCTAssertFalse(result.timedOut, "\(name) hung:\n\(result.transcript)", file: file, line: line)
        XCTAssertEqual(result.exitCode, 0, "\(name) failed:\n\(result.transcript)", file: file, line: line)
        guard result.exitCode == 0 else { throw XCTSkip("run \(name) failed (recorded above)") }
        return Run(name: name, outDir: outDir)
    }

    // MARK: - Comparisons

    struct Difference: CustomStringConvertible {
        /// Largest ‖a − b‖ / ‖b‖ over the named tensors.
        var relative = 0.0
        var tensor = ""
        /// Largest |a − b| over all parameters.
        var maxAbsolute = 0.0
        var description: String {
            String(format: "%.3g (%@), max absolute difference %.3g", relative, tensor as NSString, maxAbsolute)
        }
    }

    /// Per-tensor relative difference of two checkpoints' parameters (same architecture).
    static func difference(_ a: Checkpoint, _ b: Checkpoint) throws -> Difference {
        XCTAssertEqual(a.parameters.count, b.parameters.count)
        var d = Difference()
        for t in ParameterLayout(config: a.modelConfig).tensors {
            var diff2 = 0.0, ref2 = 0.0
            for i in t.offset..<(t.offset + t.count) {
                let x = Double(a.parameters[i]), y = Double(b.parameters[i])
                diff2 += (x - y) * (x - y)
                ref2 += y * y
                d.maxAbsolute = max(d.maxAbsolute, abs(x - y))
            }
            let relative = ref2 > 0 ? (diff2 / ref2).squareRoot() : diff2.squareRoot()
            if relative >= d.relative { d.relative = relative; d.tensor = t.name }
        }
        return d
    }

    /// The final parameters agree within `tolerance` per tensor, and the logged loss and gradient
    /// norm of every step within `tolerance` or 1e-5, whichever is larger (a sum-instead-of-mean bug
    /// changes them by a factor of the ranks, even where AdamW's scale invariance and clipping hide
    /// it in the parameters).
    private func assertEquivalent(_ run: Run, _ reference: Run, _ what: String, steps: Int = 5, tolerance: Double = tolerance,
                                  file: StaticString = #filePath, line: UInt = #line) throws {
        let a = try Checkpoint.read(from: run.checkpoint), b = try Checkpoint.read(from: reference.checkpoint)
        XCTAssertEqual(a.step, steps, file: file, line: line)
        XCTAssertEqual(b.step, steps, file: file, line: line)
        let d = try Self.difference(a, b)
        let logA = try Self.trainLog(run), logB = try Self.trainLog(reference)
        XCTAssertEqual(logA.map(\.step), Array(1...steps), "\(run.name): one train record per step", file: file, line: line)
        XCTAssertEqual(logA.map(\.step), logB.map(\.step), file: file, line: line)
        var loss = 0.0, norm = 0.0
        for (x, y) in zip(logA, logB) {
            loss = max(loss, abs(x.loss - y.loss) / abs(y.loss))
            norm = max(norm, abs(x.norm - y.norm) / abs(y.norm))
        }
        print("\(what): max relative difference \(d.description); logged loss \(String(format: "%.3g", loss)), "
              + "grad norm \(String(format: "%.3g", norm))")
        XCTAssertLessThan(d.relative, tolerance, "\(what): parameters differ by \(d.description)", file: file, line: line)
        let logged = max(tolerance, 1e-5)
        XCTAssertLessThan(loss, logged, "\(what): logged losses differ by \(loss) (relative)", file: file, line: line)
        XCTAssertLessThan(norm, logged, "\(what): logged gradient norms differ by \(norm) (relative)", file: file, line: line)
    }

    /// The logged loss and gradient norm of every step of a run, in step order.
    static func trainLog(_ run: Run) throws -> [(step: Int, loss: Double, norm: Double)] {
        try readMetrics(run.outDir).filter { $0["event"] as? String == "train" }.map {
            ($0["step"] as? Int ?? -1, $0["loss"] as? Double ?? .nan, $0["grad_norm"] as? Double ?? .nan)
        }
    }

    /// The run's "info" record (what it reported at the start).
    static func info(_ run: Run) throws -> [String: Any] {
        try XCTUnwrap(readMetrics(run.outDir).last { $0["event"] as? String == "info" }, "no info record in \(run.outDir)")
    }

    /// With overlap the gradients went through the communication thread (its busy time is in the
    /// summary); without, they did not.
    private func assertCommunicationThread(_ run: Run, used: Bool, file: StaticString = #filePath, line: UInt = #line) throws {
        let summary = try XCTUnwrap(readMetrics(run.outDir).last { $0["event"] as? String == "summary" },
                                    "no summary in \(run.outDir)/metrics.jsonl", file: file, line: line)
        let background = try XCTUnwrap(summary["background_comm_ms_per_step"] as? Double, "\(summary)", file: file, line: line)
        if used {
            XCTAssertGreaterThan(background, 0, "overlap_comm = true, but no bucket went through the communication thread",
                                 file: file, line: line)
        } else {
            XCTAssertEqual(background, 0, "overlap_comm = false, but the communication thread reduced buckets", file: file, line: line)
        }
    }

    /// The run's "replicas" event names `ranks` checksums, all equal to the final checkpoint's.
    private func assertReplicasMatchCheckpoint(_ run: Run, ranks: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let events = try readMetrics(run.outDir).filter { $0["event"] as? String == "replicas" }
        let event = try XCTUnwrap(events.last, "no replicas event in \(run.outDir)/metrics.jsonl", file: file, line: line)
        let sums = (event["checksums"] as? String ?? "").split(separator: " ").map { UInt64($0, radix: 16) }
        XCTAssertEqual(sums.count, ranks, "\(event)", file: file, line: line)
        let ckpt = try Checkpoint.read(from: run.checkpoint, includeOptimizer: false)
        XCTAssertEqual(event["step"] as? Int, ckpt.step, file: file, line: line)
        let expected = ckpt.parameters.withUnsafeBufferPointer { parameterChecksum($0.baseAddress!, count: $0.count) }
        for (rank, sum) in sums.enumerated() {
            XCTAssertEqual(sum, expected, "rank \(rank)'s parameters differ from the checkpoint's", file: file, line: line)
        }
        XCTAssertEqual(event["identical"] as? Bool, true, file: file, line: line)
    }
}
