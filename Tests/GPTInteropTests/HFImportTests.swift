// gpt import: a GPT-2 made by transformers, with tokenizers made by the tokenizers package, gives
// its logits and ids here; export(import(x)) gives back x's tensors bit for bit.
import Foundation
import GPTCore
import GPTData
import GPTInterop
import GPTTokenizers
import TestSupport
import XCTest

final class HFImportTests: XCTestCase {
    func testImportedGPT2GivesTransformersLogitsAndIDs() throws {
        try Python.require(["torch", "transformers", "safetensors", "tokenizers"])
        let tmp = try TemporaryDirectory()
        // "gpt2": GPT-2's own numbering (bytes in bytes_to_unicode order, merges, <|endoftext|> last) in
        // vocab.json + merges.txt; "trained": the tokenizers trainer's numbering, tokenizer.json only.
        // The first also stores its tensors as OpenAI's GPT-2 file does (no "transformer." prefix, mask buffers).
        let variants = [["dir": tmp.file("gpt2-tied"), "order": "gpt2", "tied": true, "openai_names": true] as [String: Any],
                        ["dir": tmp.file("trained-untied"), "order": "trained", "tied": false]]
        let spec: [String: Any] = ["text": String(repeating: InteropText.shakespeare, count: 2) + InteropText.nonASCII,
                                   "vocab_size": 400, "block_size": 64, "n_embd": 48, "n_layer": 2, "n_head": 4,
                                   "texts": InteropText.all, "variants": variants]
        try JSONSerialization.data(withJSONObject: spec).write(to: URL(fileURLWithPath: tmp.file("spec.json")))
        try Python.check("make-gpt2", tmp.file("spec.json"))
        for variant in variants {
            let dir = variant["dir"] as! String
            if variant["order"] as! String == "trained" {  // tokenizer.json alone
                for name in ["vocab.json", "merges.txt"] { try? FileManager.default.removeItem(atPath: dir + "/" + name) }
            }
            try gpt(["import", dir, "--out", dir + ".h5"])
            let ckpt = try Checkpoint.read(from: dir + ".h5")
            let tok = try makeTokenizer(kind: ckpt.tokenizerKind, serialized: ckpt.tokenizer)
            let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/expected.json")))
                as! [String: Any]
            let ids = expected["ids"] as! [[Int]]
            for (text, theirs) in zip(InteropText.all, ids) {
                XCTAssertEqual(try tok.encodeChecked(text).map(Int.init), theirs, "\(dir): ids of \(text.prefix(40))")
                XCTAssertEqual(tok.decode(theirs.map(Int32.init)), text)
            }
            let inputs = (expected["inputs"] as! [[Int]]).map { $0.map(Int32.init) }
            let theirs = try [Float](contentsOfFile: dir + "/expected_logits.f32")
            let rel = InteropModels.relativeDifference(InteropModels.logits(ckpt, inputs: inputs), theirs)
            print("\(dir): logits max relative difference \(rel)")
            XCTAssertLessThanOrEqual(rel, 1e-4)
            try assertRoundTrip(dir, ckpt: dir + ".h5", tmp: tmp)
        }
        try assertFinetunesAndSamples(tmp.file("gpt2-tied.h5"), tmp: tmp)
    }

    /// The imported checkpoint works like any other: a corpus prepared with its tokenizer, a
    /// finetuning run from it (init_from), and gpt sample; the run keeps the directory's ids.
    private func assertFinetunesAndSamples(_ ckpt: String, tmp: TemporaryDirectory) throws {
        let text = tmp.file("text.txt"), corpus = tmp.file("finetune.h5"), out = tmp.file("finetune")
        try String(repeating: InteropText.shakespeare, count: 20).write(toFile: text, atomically: false, encoding: .utf8)
        try gpt(["prepare", "--tokenizer-from", ckpt, "--split-at-fraction", "0.9", "--out", corpus, "--quiet", text])
        try gpt(["train", "--set", "init_from=\(ckpt)", "dataset=\(corpus)", "out_dir=\(out)", "max_iters=2",
                 "eval_interval=2", "eval_iters=1", "batch_size=2", "block_size=32", "sample_tokens=8", "threads=1"])
        let r = try gpt(["sample", out + "/latest.h5", "--prompt", "ROMEO:", "--tokens", "8"])
        XCTAssertTrue(r.output.hasPrefix("ROMEO:"), r.output)
        XCTAssertEqual(try Checkpoint.read(from: out + "/latest.h5").tokenizer, try Checkpoint.read(from: ckpt).tokenizer)
    }

    /// export(import(dir)) holds dir's tensors, bit for bit, and its vocabulary with the same ids.
    private func assertRoundTrip(_ dir: String, ckpt: String, tmp: TemporaryDirectory) throws {
        let again = dir + "-again"
        try gpt(["export", ckpt, "--out", again])
        let a = try SafetensorsFile(path: dir + "/model.safetensors"), b = try SafetensorsFile(path: again + "/model.safetensors")
        let weights = a.entries.filter { !$0.name.hasSuffix(".attn.bias") }  // the mask buffers are not weights
        func exported(_ name: String) -> String { name.hasPrefix("transformer.") || name == "lm_head.weight" ? name : "transformer." + name }
        XCTAssertEqual(Set(weights.map { exported($0.name) }), Set(b.entries.map(\.name)))
        for e in weights {
            guard let f = b[exported(e.name)] else { continue }
            XCTAssertEqual(e.shape, f.shape, e.name)
            XCTAssertEqual(a.floats(e).map(\.bitPattern), b.floats(f).map(\.bitPattern), "\(e.name) changed in the round trip")
        }
        XCTAssertEqual(try vocabulary(dir), try vocabulary(again), "the round trip renumbered tokens")
    }

    /// The token -> id map of a directory's tokenizer.json.
    private func vocabulary(_ dir: String) throws -> [String: Int] {
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/tokenizer.json")))
            as! [String: Any]
        return (root["model"] as! [String: Any])["vocab"] as! [String: Int]
    }
}

extension Array where Element == Float {
    init(contentsOfFile path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        self = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}
