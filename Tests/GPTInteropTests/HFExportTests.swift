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
        let (char, bpe) = try InteropText.tokenizers()
        let kinds: [(String, any Tokenizer, bias: Bool, tied: Bool)] = [
            ("char-bias-tied", char, true, true), ("char-nobias-untied", char, false, false),
            ("bpe-bias-untied", bpe, true, false), ("bpe-nobias-tied", bpe, false, true),
        ]
        var cases: [[String: Any]] = []
        for (n, (name, tok, bias, tied)) in kinds.enumerated() {
            let config = GPTConfig(vocabSize: tok.vocabSize, blockSize: 48, nLayer: 2, nHead: 4, nEmbd: 32, dropout: 0,
                                   bias: bias, tieWeights: tied)
            let ckpt = InteropModels.checkpoint(config, tokenizer: tok, seed: UInt64(n + 1))
            let (path, dir) = (tmp.file(name + ".h5"), tmp.file(name))
            var c = try Self.exportCase(ckpt, tokenizer: tok, path: path, dir: dir)
            if n == 2 {  // the same model in 16-bit floats: torch's own rounding of the f32 tensors
                c["reduced"] = try ["bf16", "f16"].map { type -> [String: String] in
                    try gpt(["export", path, "--out", dir + "-" + type, "--dtype", type])
                    return ["dir": dir + "-" + type, "dtype": type]
                }
            }
            cases.append(c)
        }
        try Self.check(cases, tmp: tmp)
    }

    /// RMSNorm + RoPE + SwiGLU without biases exports as LlamaForCausalLM: transformers loads it with
    /// our logits (RoPE's pair order permuted into q_proj and k_proj), char and BPE, tied and untied,
    /// another RoPE base and SwiGLU width, and positions up to block_size.
    func testTransformersLoadsLlamaExportsWithOurLogits() throws {
        try Python.require(["torch", "transformers", "safetensors", "tokenizers"])
        let tmp = try TemporaryDirectory()
        let (char, bpe) = try InteropText.tokenizers()
        let kinds: [(String, any Tokenizer, tied: Bool, base: Double, multiple: Int)] = [
            ("llama-char-untied", char, false, 10_000, 8), ("llama-bpe-tied", bpe, true, 500, 32),
        ]
        var cases: [[String: Any]] = []
        for (n, (name, tok, tied, base, multiple)) in kinds.enumerated() {
            let ckpt = InteropModels.checkpoint(Self.llama(vocab: tok.vocabSize, tied: tied, base: base, multiple: multiple),
                                                tokenizer: tok, seed: UInt64(n + 11))
            let (path, dir) = (tmp.file(name + ".h5"), tmp.file(name))
            var c = try Self.exportCase(ckpt, tokenizer: tok, path: path, dir: dir)
            c["architecture"] = "LlamaForCausalLM"
            if n == 0 {  // greedy decoding through our KV cache (RoPE from the cached position) = transformers' generate
                let prompt = "First Citizen:", new = 30
                let sample = try gpt(["sample", path, "--prompt", prompt, "--tokens", String(new), "--temperature", "0",
                                      "--threads", "1"])
                c["greedy"] = ["prompt": prompt, "new_tokens": new, "text": String(sample.output.dropLast())]
            }
            cases.append(c)
        }
        try Self.check(cases, tmp: tmp)
    }

    /// Writes `ckpt` at `path`, exports it to `dir`, and returns the checker's case: our logits on
    /// the texts' first tokens (up to block_size) and our ids of the texts.
    static func exportCase(_ ckpt: Checkpoint, tokenizer tok: any Tokenizer, path: String, dir: String) throws -> [String: Any] {
        try ckpt.write(to: path)
        try gpt(["export", path, "--out", dir])
        let ids = InteropText.all.map { try! tok.encodeChecked($0) }
        let T = min(ckpt.modelConfig.blockSize, ids.map(\.count).min()!)
        let inputs = ids.map { Array($0.prefix(T)) }
        try InteropModels.logits(ckpt, inputs: inputs).write(to: dir + ".logits")
        return ["dir": dir, "inputs": inputs.map { $0.map(Int.init) }, "logits": dir + ".logits",
                "texts": InteropText.all, "ids": ids.map { $0.map(Int.init) }]
    }

    /// Runs `hf_check.py export` on `cases`: one result per exported directory.
    static func check(_ cases: [[String: Any]], tmp: TemporaryDirectory) throws {
        let casesPath = tmp.file("cases.json")
        try JSONSerialization.data(withJSONObject: cases).write(to: URL(fileURLWithPath: casesPath))
        let results = try Python.check("export", casesPath)
        XCTAssertEqual(results.count, cases.count, "one result per exported directory")
    }

    /// gpt import reads our Llama directory back: the same parameters bit for bit, the same model
    /// (the SwiGLU width from intermediate_size), and export(import(x)) the same tensors.
    func testLlamaExportImportsBackExactly() throws {
        let tmp = try TemporaryDirectory()
        let bpe = try BPETrainer.train(text: InteropText.shakespeare, vocabSize: 300)
        for (n, (tied, multiple)) in [(true, 8), (false, 32)].enumerated() {
            let config = Self.llama(vocab: bpe.vocabSize, tied: tied, base: 2_000, multiple: multiple)
            let ckpt = InteropModels.checkpoint(config, tokenizer: bpe, seed: UInt64(n + 5))
            let path = tmp.file("l\(n).h5"), dir = tmp.file("l\(n)"), back = tmp.file("l\(n)-back.h5")
            try ckpt.write(to: path)
            try gpt(["export", path, "--out", dir])
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/config.json")))
                as! [String: Any]
            XCTAssertEqual(json["architectures"] as? [String], ["LlamaForCausalLM"])
            XCTAssertEqual(json["intermediate_size"] as? Int, config.swigluHidden)
            let st = try SafetensorsFile(path: dir + "/model.safetensors")
            XCTAssertEqual(st["lm_head.weight"] == nil, tied, "lm_head.weight only when untied")
            XCTAssertEqual(st["model.layers.1.self_attn.q_proj.weight"]?.shape, [32, 32])
            try gpt(["import", dir, "--out", back])
            let imported = try Checkpoint.read(from: back)
            var expected = config
            expected.swigluMultiple = imported.modelConfig.swigluMultiple  // any multiple giving the same width
            XCTAssertEqual(imported.modelConfig, expected)
            XCTAssertEqual(imported.modelConfig.swigluHidden, config.swigluHidden)
            XCTAssertEqual(imported.parameters.map(\.bitPattern), ckpt.parameters.map(\.bitPattern))
            XCTAssertEqual(imported.tokenizer, ckpt.tokenizer)
            try gpt(["export", back, "--out", dir + "-again"])
            let again = try SafetensorsFile(path: dir + "-again/model.safetensors")
            XCTAssertEqual(again.entries.map(\.name), st.entries.map(\.name))
            for e in st.entries {
                XCTAssertEqual(again.floats(again[e.name]!).map(\.bitPattern), st.floats(e).map(\.bitPattern), e.name)
            }
        }
    }

    /// A small RMSNorm + RoPE + SwiGLU model without biases (head size 8).
    static func llama(vocab: Int, tied: Bool, base: Double, multiple: Int) -> GPTConfig {
        var config = GPTConfig(vocabSize: vocab, blockSize: 48, nLayer: 2, nHead: 4, nEmbd: 32, dropout: 0, bias: false,
                               tieWeights: tied)
        config.norm = .rmsNorm
        config.position = .rope
        config.mlp = .swiglu
        config.ropeBase = base
        config.swigluMultiple = multiple
        return config
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
