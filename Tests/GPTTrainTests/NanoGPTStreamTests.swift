import Foundation
import XCTest
import GPTData
import TestSupport

/// `rng = "torch"`: a `gpt train` run consumes PyTorch's stream as nanoGPT's
/// train.py does, so it sees nanoGPT's initial weights, batches and evaluation
/// windows, and its losses follow nanoGPT's run (Tests/reference/make_nanogpt_run.py,
/// 60 steps of the shakespeare_char CPU model with 2 accumulation steps).
/// A resumed run continues the streams bit-identically.
final class NanoGPTStreamTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/nanogpt_run.json").path

    /// The fixture's settings as `--set` arguments.
    private func settings(_ s: [String: Any]) -> [String] {
        let keys = ["seed", "batch_size", "block_size", "n_layer", "n_head", "n_embd", "bias", "learning_rate", "max_iters",
                    "weight_decay", "beta1", "beta2", "grad_clip", "warmup_iters", "lr_decay_iters", "min_lr",
                    "eval_interval", "eval_iters", "gradient_accumulation_steps"]
        return keys.flatMap { key -> [String] in
            let v = s[key]!
            let text = key == "bias" ? ((v as! Bool) ? "true" : "false") : "\(v)"
            return ["--set", "\(key)=\(text)"]
        } + ["--set", "dropout=0", "--set", "sample_tokens=0", "--set", "log_interval=1", "--set", "threads=1"]
    }

    private func losses(_ run: String) throws -> (train: [Int: Double], evals: [Int: (Double, Double)]) {
        var train: [Int: Double] = [:], evals: [Int: (Double, Double)] = [:]
        for m in try readMetrics(run) {
            let step = m["step"] as? Int ?? -1
            switch m["event"] as? String {
            case "train": train[step] = m["loss"] as? Double
            case "eval": evals[step] = (m["train_loss"] as! Double, m["val_loss"] as! Double)
            default: break
            }
        }
        return (train, evals)
    }

    func testTorchStreamFollowsNanoGPTsRun() throws {
        let fixture = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Self.fixture)))
            as? [String: Any])
        let s = fixture["settings"] as! [String: Any]
        let refLosses = fixture["losses"] as! [Double]
        let refEvals = fixture["evals"] as! [[String: Any]]
        let tmp = try TemporaryDirectory()
        let corpus = try shakespeareCorpus(in: tmp.path)
        let args = ["train", "--set", "dataset=\(corpus)"] + settings(s)
        try gpt(args + ["--set", "out_dir=\(tmp.file("torch"))", "--set", "rng=torch"])
        let (train, evals) = try losses(tmp.file("torch"))

        // Step 1: the same weights on the same windows, so the same loss but for float rounding.
        XCTAssertEqual(try XCTUnwrap(train[1]), refLosses[0], accuracy: 2e-5, "first step")
        var worst = 0.0
        for (i, ref) in refLosses.enumerated() {
            let got = try XCTUnwrap(train[i + 1], "step \(i + 1)")
            worst = max(worst, abs(got - ref))
        }
        for e in refEvals {
            let step = e["step"] as! Int
            let got = try XCTUnwrap(evals[step], "evaluation at step \(step)")
            worst = max(worst, abs(got.0 - (e["train_loss"] as! Double)), abs(got.1 - (e["val_loss"] as! Double)))
        }
        print(String(format: "rng = torch vs nanoGPT: %d steps, %d evaluations, largest loss difference %.2e",
                     refLosses.count, refEvals.count, worst))
        XCTAssertLessThan(worst, 2e-3, "the run left nanoGPT's")

        // The comparison can tell streams apart: the counter stream gives other losses.
        try gpt(args + ["--set", "out_dir=\(tmp.file("counter"))", "--set", "rng=counter"])
        let other = try losses(tmp.file("counter")).train
        let control = refLosses.indices.map { abs(other[$0 + 1]! - refLosses[$0]) }.max()!
        print(String(format: "control, rng = counter vs nanoGPT: largest loss difference %.2e", control))
        XCTAssertGreaterThan(control, 50 * worst)
    }

    /// 20 steps straight vs 10 + resume + 10 with the torch stream (2 micro-steps, an
    /// evaluation at the resume point): bit-identical weights, moments and losses.
    func testResumeContinuesTheTorchStreamBitIdentically() throws {
        let tmp = try TemporaryDirectory()
        let corpus = try shakespeareCorpus(in: tmp.path)
        let common = ["--set", "dataset=\(corpus)", "--set", "rng=torch", "--set", "eval_interval=10",
                      "--set", "gradient_accumulation_steps=2", "--set", "lr_decay_iters=20", "--set", "keep_checkpoints=0"]
            + TrainingTests.tiny
        let straight = tmp.file("straight"), split = tmp.file("split")
        try gpt(["train", "--set", "out_dir=\(straight)", "--set", "max_iters=20"] + common)
        try gpt(["train", "--set", "out_dir=\(split)", "--set", "max_iters=10"] + common)
        let resumed = try gpt(["train", "--resume", "--set", "out_dir=\(split)", "--set", "max_iters=20"] + common)
        XCTAssertTrue(resumed.output.contains("resuming from"), resumed.output)
        XCTAssertFalse(resumed.output.contains("new streams"), resumed.output)
        let mid = try Checkpoint.read(from: split + "/ckpt_0000010.h5", includeOptimizer: false)
        XCTAssertEqual(mid.state["torch_rng"]?.count, 627, "the checkpoint holds the stream")
        let a = try Checkpoint.read(from: straight + "/ckpt_0000020.h5")
        let b = try Checkpoint.read(from: split + "/ckpt_0000020.h5")
        XCTAssertEqual(a.parameters.map(\.bitPattern), b.parameters.map(\.bitPattern), "parameters")
        XCTAssertEqual(a.adamM!, b.adamM!)
        XCTAssertEqual(a.adamV!, b.adamV!)
        XCTAssertEqual(a.state["torch_rng"], b.state["torch_rng"], "the streams at step 20")
        let la = try losses(straight), lb = try losses(split)
        for step in 11...20 { XCTAssertEqual(la.train[step], lb.train[step], "loss at step \(step)") }
        XCTAssertEqual(la.evals[20]?.1, lb.evals[20]?.1, "val loss at step 20 (the same evaluation windows)")
    }
}
