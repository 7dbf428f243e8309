import Foundation
import XCTest
import GPTCore
import GPTData
import GPTTrain
import TestSupport

/// The trainer end to end through the `gpt` binary: learning, checkpoints, resume.
final class TrainingTests: XCTestCase {
    /// A small model that trains in seconds.
    static let tiny = ["--set", "n_layer=2", "--set", "n_head=2", "--set", "n_embd=48", "--set", "block_size=32",
                       "--set", "batch_size=16", "--set", "eval_iters=10", "--set", "log_interval=10",
                       "--set", "sample_tokens=50", "--set", "warmup_iters=10", "--set", "threads=1"]

    func testEndToEndLossDropsWellBelowUnigramEntropy() throws {
        let tmp = try TemporaryDirectory()
        let corpus = try shakespeareCorpus(in: tmp.path)
        // Unigram entropy (nats) of the training split: what a model that ignores context achieves.
        let src = try TokenSource(path: corpus, split: .train)
        var counts = [Int](repeating: 0, count: src.info.vocabSize)
        let buf = UnsafeMutablePointer<Int32>.allocate(capacity: src.count)
        defer { buf.deallocate() }
        try src.read(offset: 0, count: src.count, into: buf)
        for i in 0..<src.count { counts[Int(buf[i])] += 1 }
        let entropy = -counts.filter { $0 > 0 }.map { Double($0) / Double(src.count) }.map { $0 * log($0) }.reduce(0, +)
        let run = tmp.file("run")
        let r = try gpt(["train", "--set", "dataset=\(corpus)", "--set", "out_dir=\(run)", "--set", "max_iters=250",
                         "--set", "eval_interval=125", "--set", "learning_rate=3e-3", "--set", "lr_decay_iters=250",
                         "--set", "dropout=0"] + Self.tiny)
        let evals = try readMetrics(run).filter { $0["event"] as? String == "eval" }
        let first = evals.first!["val_loss"] as! Double, last = evals.last!["val_loss"] as! Double
        print(String(format: "unigram entropy %.3f nats; val loss %.3f at step 0 -> %.3f at step 250", entropy, first, last))
        XCTAssertEqual(first, log(65), accuracy: 0.3, "an untrained model is near uniform")
        XCTAssertLessThan(last, entropy - 0.6, "the model must use context: \(r.output.suffix(2000))")
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/latest.h5"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/best.h5"))
        // The sample command streams text from the checkpoint.
        let s = try gpt(["sample", run + "/latest.h5", "--tokens", "40", "--prompt", "ROMEO:", "--seed", "3"])
        XCTAssertTrue(s.output.hasPrefix("ROMEO:"), s.output)
        XCTAssertGreaterThanOrEqual(s.output.count, 46)
    }

    func testResumeIsBitIdentical() throws { try checkResumeIsBitIdentical() }

    /// RMSNorm, RoPE, SwiGLU and QK-norm: resumed from the checkpoint, which records them.
    func testResumeWithTheArchitectureOptionsIsBitIdentical() throws {
        try checkResumeIsBitIdentical(["norm=rmsnorm", "position=rope", "mlp=swiglu", "qk_norm=true"])
    }

    /// A run with all four options: gpt eval and gpt sample rebuild its model from the checkpoint
    /// alone; a run with init_from under GPT-2's config keeps the checkpoint's architecture and says so.
    func testTheArchitectureOptionsTravelWithTheCheckpoint() throws {
        let tmp = try TemporaryDirectory()
        let corpus = try shakespeareCorpus(in: tmp.path)
        let common = ["--set", "dataset=\(corpus)", "--set", "eval_interval=10", "--set", "max_iters=10",
                      "--set", "lr_decay_iters=10", "--set", "dropout=0"] + Self.tiny
        let run = tmp.file("run"), tuned = tmp.file("tuned")
        let options = ["norm=rmsnorm", "position=rope", "mlp=swiglu", "qk_norm=true"].flatMap { ["--set", $0] }
        try gpt(["train", "--set", "out_dir=\(run)"] + options + common)
        let e = try gpt(["eval", run + "/latest.h5", "--iters", "2", "--batch-size", "4"])
        XCTAssertTrue(e.output.contains("val loss"), e.output)
        // 40 tokens: past block_size (32), so the sampler's window slides.
        let s = try gpt(["sample", run + "/latest.h5", "--tokens", "40", "--prompt", "ROMEO:", "--seed", "3"])
        XCTAssertTrue(s.output.hasPrefix("ROMEO:"), s.output)
        let t = try gpt(["train", "--set", "out_dir=\(tuned)", "--set", "init_from=\(run)/latest.h5"] + common)
        XCTAssertTrue(t.output.contains("norm layernorm vs rmsnorm"), t.output)
        let model = try Checkpoint.read(from: tuned + "/latest.h5").modelConfig
        XCTAssertEqual(model, try Checkpoint.read(from: run + "/latest.h5").modelConfig)
        XCTAssertEqual(model.position, .rope)
    }

    /// 20 steps straight = 10 steps, then --resume to 20: parameters, AdamW moments and losses.
    private func checkResumeIsBitIdentical(_ options: [String] = [], file: StaticString = #filePath,
                                           line: UInt = #line) throws {
        let tmp = try TemporaryDirectory()
        let corpus = try shakespeareCorpus(in: tmp.path)
        let common = ["--set", "dataset=\(corpus)", "--set", "eval_interval=10", "--set", "dropout=0.2",
                      "--set", "lr_decay_iters=20", "--set", "keep_checkpoints=0"] + Self.tiny
            + options.flatMap { ["--set", $0] }
        let straight = tmp.file("straight"), split = tmp.file("split")
        try gpt(["train", "--set", "out_dir=\(straight)", "--set", "max_iters=20"] + common)
        try gpt(["train", "--set", "out_dir=\(split)", "--set", "max_iters=10"] + common)
        let resumed = try gpt(["train", "--resume", "--set", "out_dir=\(split)", "--set", "max_iters=20"] + common)
        XCTAssertTrue(resumed.output.contains("resuming from"), resumed.output, file: file, line: line)
        let a = try Checkpoint.read(from: straight + "/ckpt_0000020.h5")
        let b = try Checkpoint.read(from: split + "/ckpt_0000020.h5")
        XCTAssertEqual(a.step, 20)
        XCTAssertEqual(a.parameters.count, b.parameters.count)
        var differing = 0
        for i in 0..<a.parameters.count where a.parameters[i].bitPattern != b.parameters[i].bitPattern { differing += 1 }
        XCTAssertEqual(differing, 0, "parameters after 20 straight steps vs 10 + resume + 10", file: file, line: line)
        XCTAssertEqual(a.adamM!, b.adamM!, file: file, line: line)
        XCTAssertEqual(a.adamV!, b.adamV!, file: file, line: line)
        XCTAssertEqual(a.modelConfig, b.modelConfig, file: file, line: line)
        // The losses logged after the resume point are identical too.
        func losses(_ dir: String) throws -> [Int: Double] {
            var out: [Int: Double] = [:]
            for m in try readMetrics(dir) where m["event"] as? String == "train" { out[m["step"] as! Int] = m["loss"] as? Double }
            return out
        }
        let la = try losses(straight), lb = try losses(split)
        XCTAssertEqual(la[20], lb[20], file: file, line: line)
        XCTAssertNotNil(la[20], file: file, line: line)
    }

    func testKilledAndResumedIsBitIdentical() throws {
        let tmp = try TemporaryDirectory()
        let corpus = try shakespeareCorpus(in: tmp.path)
        let common = Self.tiny + ["--set", "dataset=\(corpus)", "--set", "eval_interval=10", "--set", "dropout=0.1",
                                  "--set", "max_iters=120", "--set", "lr_decay_iters=120", "--set", "keep_checkpoints=0",
                                  "--set", "n_embd=96", "--set", "n_layer=3", "--set", "block_size=64", "--set", "log_interval=5",
                                  "--set", "sample_tokens=0"]
        let straight = tmp.file("straight"), killed = tmp.file("killed")
        try gpt(["train", "--set", "out_dir=\(straight)"] + common)
        // Start the same run, SIGKILL it at a random point after a checkpoint, resume it.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try GPTBinary.path())
        p.arguments = ["train", "--set", "out_dir=\(killed)"] + common
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        let target = 10 * Int.random(in: 2...8)
        let deadline = Date().addingTimeInterval(120)
        while p.isRunning && Date() < deadline {
            if let ms = try? readMetrics(killed),
               ms.contains(where: { $0["event"] as? String == "checkpoint" && ($0["step"] as? Int ?? 0) >= target }) { break }
            usleep(20_000)
        }
        usleep(UInt32.random(in: 0...150_000))
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal, "the run finished before it could be killed")
        let r = try gpt(["train", "--resume", "--set", "out_dir=\(killed)"] + common)
        XCTAssertTrue(r.output.contains("resuming from"), r.output)
        let a = try Checkpoint.read(from: straight + "/ckpt_0000120.h5"), b = try Checkpoint.read(from: killed + "/ckpt_0000120.h5")
        XCTAssertEqual(a.parameters.map(\.bitPattern), b.parameters.map(\.bitPattern), "killed near step \(target)")
        func losses(_ dir: String) throws -> [Int: Double] {
            var out: [Int: Double] = [:]
            for m in try readMetrics(dir) where m["event"] as? String == "train" { out[m["step"] as! Int] = m["loss"] as? Double }
            return out
        }
        XCTAssertEqual(try losses(straight), try losses(killed))
        XCTAssertEqual(try losses(straight).count, 24)
    }

    func testCheckpointRoundTripIsExact() throws {
        let tmp = try TemporaryDirectory()
        Parallel.setThreads(1)
        let c = GPTConfig(vocabSize: 11, blockSize: 8, nLayer: 2, nHead: 2, nEmbd: 16, dropout: 0.1, bias: true, tieWeights: false)
        let model = GPT(config: c, seed: 7)
        let opt = AdamW(layout: model.layout)
        var rng = SplitMix64(seed: 1)
        var x = (0..<32).map { _ in Int32(rng.nextInt(below: 11)) }, y = (0..<32).map { _ in Int32(rng.nextInt(below: 11)) }
        func step(_ m: GPT, _ o: AdamW) -> Float {
            m.zeroGrad()
            m.dropoutSeed = 99
            let loss = m.forward(inputs: &x, targets: &y, B: 4, T: 8)
            m.backward()
            clipGradients(m.grads, count: m.parameterCount, maxNorm: 1)
            o.step(params: m.params, grads: m.grads, lr: 1e-3)
            return loss
        }
        _ = step(model, opt)
        let n = model.parameterCount
        let ckpt = Checkpoint(modelConfig: c, parameters: Array(UnsafeBufferPointer(start: model.params, count: n)),
                              adamM: Array(UnsafeBufferPointer(start: opt.m, count: n)),
                              adamV: Array(UnsafeBufferPointer(start: opt.v, count: n)), step: 1,
                              tokenizerKind: "char", tokenizer: CharTokenizer(training: "abcdefghijk").serialized())
        try ckpt.write(to: tmp.file("c.h5"))
        let back = try Checkpoint.read(from: tmp.file("c.h5"))
        XCTAssertEqual(back.modelConfig, c)
        XCTAssertEqual(back.parameters.map(\.bitPattern), ckpt.parameters.map(\.bitPattern))
        let model2 = GPT(config: back.modelConfig, seed: 0)
        let opt2 = AdamW(layout: model2.layout)
        model2.params.update(from: back.parameters, count: n)
        opt2.m.update(from: back.adamM!, count: n)
        opt2.v.update(from: back.adamV!, count: n)
        opt2.t = back.step
        let l1 = step(model, opt), l2 = step(model2, opt2)
        XCTAssertEqual(l1.bitPattern, l2.bitPattern, "next-step loss after the round trip")
        XCTAssertEqual(memcmp(model.params, model2.params, n * 4), 0, "parameters after the next step")
    }
}
