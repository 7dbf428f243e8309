// gpt export: transformers and AutoTokenizer load the directory offline, with our logits and ids.
import Foundation
import GPTCore
import GPTData
import GPTInterop
import TestSupport
import XCTest

final class HFExportTests: XCTestCase {
    /// Char and BPE tokenizers, biases on and off, tied and untied heads: one Python run checks all.
    func testTransformersLoadsExportsWithOurLogitsAndIDs() throws {
        try Python.require(["torch", "transformers", "safetensors", "tokenizers"])
        let tmp = try TemporaryDirectory()
        let char = CharTokenizer(training: InteropText.all.joined())
        let bpe = try BPETrainer.train(text: InteropText.all.joined() + String(repeating: InteropText.shakespeare, count: 3),
                                       vocabSize: 420)
        let kinds: [(String, any Tokenizer, bias: Bool, tied: Bool)] = [
            ("char-bias-tied", char, true, true), ("char-nobias-untied", char, false, false),
            ("bpe-bias-untied", bpe, true, false), ("bpe-nobias-tied", bpe, false, true),
        ]
        var cases: [[String: Any]] = []
        for (n, (name, tok, bias, tied)) in kinds.enumerated() {
            let config = GPTConfig(vocabSize: tok.vocabSize, blockSize: 48, nLayer: 2, nHead: 4, nEmbd: 32, dropout: 0,
                                   bias: bias, tieWeights: tied)
            let ckpt = InteropModels.checkpoint(config, tokenizer: tok, seed: UInt64(n + 1))
            let path = tmp.file(name + ".h5"), dir = tmp.file(name)
            try ckpt.write(to: path)
            try gpt(["export", path, "--out", dir])
            let ids = InteropText.all.map { try! tok.encodeChecked($0) }
            let T = min(config.blockSize, ids.map(\.count).min()!)
            let inputs = ids.map { Array($0.prefix(T)) }
            try InteropModels.logits(ckpt, inputs: inputs).write(to: dir + ".logits")
            var c: [String: Any] = ["dir": dir, "inputs": inputs.map { $0.map(Int.init) }, "logits": dir + ".logits",
                                    "texts": InteropText.all, "ids": ids.map { $0.map(Int.init) }]
            if n == 2 {  // the same model in 16-bit floats: torch's own rounding of the f32 tensors
                c["reduced"] = try ["bf16", "f16"].map { type -> [String: String] in
                    try gpt(["export", path, "--out", dir + "-" + type, "--dtype", type])
                    return ["dir": dir + "-" + type, "dtype": type]
                }
            }
            cases.append(c)
        }
        let casesPath = tmp.file("cases.json")
        try JSONSerialization.data(withJSONObject: cases).write(to: URL(fileURLWithPath: casesPath))
        let results = try Python.check("export", casesPath)
        XCTAssertEqual(results.count, kinds.count, "one result per exported directory")
    }

    /// The exported directory holds what docs/FORMATS.md lists, and its config what the model is.
    func testExportedDirectoryFiles() throws {
        let tmp = try TemporaryDirectory()
        let bpe = try BPETrainer.train(text: InteropText.shakespeare, vocabSize: 300)
        let config = GPTConfig(vocabSize: bpe.vocabSize, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 8, bias: false, tieWeights: false)
        try InteropModels.checkpoint(config, tokenizer: bpe, seed: 3).write(to: tmp.file("c.h5"))
        try gpt(["export", tmp.file("c.h5"), "--out", tmp.file("hf")])
        let files = try FileManager.default.contentsOfDirectory(atPath: tmp.file("hf")).sorted()
        XCTAssertEqual(files, ["config.json", "merges.txt", "model.safetensors", "special_tokens_map.json",
                               "tokenizer.json", "tokenizer_config.json", "vocab.json"])
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: tmp.file("hf/config.json"))))
            as! [String: Any]
        XCTAssertEqual(json["architectures"] as? [String], ["GPT2LMHeadModel"])
        XCTAssertEqual(json["tie_word_embeddings"] as? Bool, false)
        XCTAssertEqual(json["n_positions"] as? Int, 16)
        XCTAssertEqual(json["eos_token_id"] as? Int, Int(bpe.endOfTextID))
        let st = try SafetensorsFile(path: tmp.file("hf/model.safetensors"))
        XCTAssertEqual(st["transformer.h.0.attn.c_attn.weight"]?.shape, [8, 24], "Conv1D weights are (in, out)")
        XCTAssertEqual(st["transformer.h.0.mlp.c_fc.bias"].map { st.floats($0) }, [Float](repeating: 0, count: 32),
                       "a model without biases exports zero biases")
        XCTAssertNotNil(st["lm_head.weight"])
    }
}
