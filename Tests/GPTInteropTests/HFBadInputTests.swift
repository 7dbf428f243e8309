// Bad input to gpt import and gpt export: one `error:` line, exit status 1, nothing written.
import Foundation
import GPTCore
import GPTData
import GPTInterop
import GPTTokenizers
import TestSupport
import XCTest

final class HFBadInputTests: XCTestCase {
    /// A directory exported from a small BPE checkpoint, which `gpt import` reads back exactly.
    private func exportedDirectory(_ tmp: TemporaryDirectory) throws -> (dir: String, checkpoint: Checkpoint) {
        let bpe = try BPETrainer.train(text: InteropText.shakespeare, vocabSize: 300)
        let config = GPTConfig(vocabSize: bpe.vocabSize, blockSize: 16, nLayer: 1, nHead: 2, nEmbd: 8, bias: true, tieWeights: true)
        let ckpt = InteropModels.checkpoint(config, tokenizer: bpe, seed: 7)
        try ckpt.write(to: tmp.file("good.h5"))
        try gpt(["export", tmp.file("good.h5"), "--out", tmp.file("good")])
        return (tmp.file("good"), ckpt)
    }

    func testOwnExportImportsBackExactly() throws {
        let tmp = try TemporaryDirectory()
        let (dir, ckpt) = try exportedDirectory(tmp)
        try gpt(["import", dir, "--out", tmp.file("back.h5")])
        let back = try Checkpoint.read(from: tmp.file("back.h5"))
        XCTAssertEqual(back.modelConfig, ckpt.modelConfig)
        XCTAssertEqual(back.parameters.map(\.bitPattern), ckpt.parameters.map(\.bitPattern))
        XCTAssertEqual(back.tokenizer, ckpt.tokenizer, "our own numbering needs no id table")
    }

    func testBadDirectoriesAreRefusedWithOneLineAndNothingWritten() throws {
        let tmp = try TemporaryDirectory()
        let (good, _) = try exportedDirectory(tmp)
        let st = good + "/model.safetensors"
        let headerLength = try Self.headerLength(st)
        let cases: [(String, String, (String) throws -> Void)] = [
            ("mistral", "model_type is 'mistral', not 'gpt2' or 'llama'", {
                try Self.editJSON($0 + "/config.json") { $0["model_type"] = "mistral" }
            }),
            ("no-config", "has no config.json", { try FileManager.default.removeItem(atPath: $0 + "/config.json") }),
            ("truncated-header", "header is truncated", { try Self.truncate($0 + "/model.safetensors", to: 8 + headerLength - 20) }),
            ("truncated-data", "truncated", { try Self.truncate($0 + "/model.safetensors", to: 8 + headerLength + 100) }),
            ("inconsistent-offsets", "header is inconsistent", { try Self.shiftFirstTensor($0 + "/model.safetensors") }),
            ("tokenizer-size", "tokenizer has 301 tokens, config.json's vocab_size is 300", {
                try Self.editJSON($0 + "/vocab.json") { $0["<|pad|>"] = 300 }
            }),
        ]
        for (name, message, damage) in cases {
            let dir = tmp.file(name)
            try FileManager.default.copyItem(atPath: good, toPath: dir)
            try damage(dir)
            try assertRefused(["import", dir, "--out", tmp.file(name + ".h5")], message, leaves: tmp.file(name + ".h5"))
        }
        try assertRefused(["import", tmp.file("absent"), "--out", tmp.file("x.h5")], "is not a directory", leaves: tmp.file("x.h5"))
    }

    func testExportRefusesAnExistingDirectoryAndANonCheckpoint() throws {
        let tmp = try TemporaryDirectory()
        let (good, _) = try exportedDirectory(tmp)
        let before = try FileManager.default.contentsOfDirectory(atPath: good).sorted()
        try assertRefused(["export", tmp.file("good.h5"), "--out", good], "already exists", leaves: nil)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: good).sorted(), before)
        try Data("not hdf5".utf8).write(to: URL(fileURLWithPath: tmp.file("text.h5")))
        try assertRefused(["export", tmp.file("text.h5"), "--out", tmp.file("hf")], "cannot export", leaves: tmp.file("hf"))
    }

    /// Two merges that make the same bytes ("ab"+"c" and "a"+"bc") cannot be one Hugging Face vocabulary.
    func testExportRefusesATokenizerWithTwoTokensOfTheSameBytes() throws {
        let tmp = try TemporaryDirectory()
        let a: Int32 = 97, b: Int32 = 98, c: Int32 = 99
        let tok = try BPETokenizer(merges: [BPEMerge(a, b), BPEMerge(256, c), BPEMerge(b, c), BPEMerge(a, 258)])
        let config = GPTConfig(vocabSize: tok.vocabSize, blockSize: 8, nLayer: 1, nHead: 1, nEmbd: 4)
        try InteropModels.checkpoint(config, tokenizer: tok, seed: 1).write(to: tmp.file("dup.h5"))
        try assertRefused(["export", tmp.file("dup.h5"), "--out", tmp.file("hf")], "tokens 257 and 259 are both 'abc'",
                          leaves: tmp.file("hf"))
    }

    /// Options that neither GPT2LMHeadModel nor LlamaForCausalLM computes are refused, never exported
    /// wrongly; the line names, for each, the options it has no place for.
    func testExportRefusesArchitectureOptionsNeitherArchitectureExpresses() throws {
        let tmp = try TemporaryDirectory()
        let tok = CharTokenizer(training: InteropText.shakespeare)
        var config = GPTConfig(vocabSize: tok.vocabSize, blockSize: 8, nLayer: 1, nHead: 2, nEmbd: 8, bias: false)
        config.norm = .rmsNorm
        config.position = .rope
        config.mlp = .swiglu
        config.qkNorm = true
        func refused(_ config: GPTConfig, _ message: String, line: UInt = #line) throws {
            try InteropModels.checkpoint(config, tokenizer: tok, seed: 1).write(to: tmp.file("m.h5"))
            try assertRefused(["export", tmp.file("m.h5"), "--out", tmp.file("hf")], message, leaves: tmp.file("hf"), line: line)
        }
        try refused(config, "GPT2LMHeadModel has no place for norm = \"rmsnorm\", position = \"rope\", mlp = \"swiglu\", "
                    + "qk_norm = true; LlamaForCausalLM has no place for qk_norm = true; gpt export writes GPT2LMHeadModel")
        config.qkNorm = false
        config.bias = true
        try refused(config, "LlamaForCausalLM has no place for bias = true;")
        config.bias = false
        config.norm = .layerNorm
        config.mlp = .gelu
        try refused(config, "GPT2LMHeadModel has no place for position = \"rope\"; LlamaForCausalLM has no place for "
                    + "norm = \"layernorm\", mlp = \"gelu\"")
        config.position = .learned
        config.qkNorm = true
        try refused(config, "GPT2LMHeadModel has no place for qk_norm = true;")
    }

    /// A Llama directory whose config.json asks for what our kernels do not compute: refused with the field named.
    func testImportRefusesLlamaVariantsWeDoNotCompute() throws {
        let tmp = try TemporaryDirectory()
        let bpe = try BPETrainer.train(text: InteropText.shakespeare, vocabSize: 300)
        let config = HFExportTests.llama(vocab: bpe.vocabSize, tied: true, base: 10_000, multiple: 8)
        try InteropModels.checkpoint(config, tokenizer: bpe, seed: 2).write(to: tmp.file("l.h5"))
        try gpt(["export", tmp.file("l.h5"), "--out", tmp.file("good")])
        let cases: [(String, String, (inout [String: Any]) -> Void)] = [
            ("gqa", "num_key_value_heads is 2, not num_attention_heads = 4", { $0["num_key_value_heads"] = 2 }),
            ("eps", "rms_norm_eps is 1e-06, not 1e-05", { $0["rms_norm_eps"] = 1e-6 }),
            ("act", "hidden_act is 'gelu', not 'silu'", { $0["hidden_act"] = "gelu" }),
            ("bias", "attention_bias is true", { $0["attention_bias"] = true }),
            ("scaled", "RoPE scaling 'linear' is set", { $0["rope_parameters"] = ["rope_type": "linear", "factor": 2.0] }),
            ("narrow", "intermediate_size is 40, below 8/3 of hidden_size (32)", { $0["intermediate_size"] = 40 }),
        ]
        for (name, message, edit) in cases {
            let dir = tmp.file(name)
            try FileManager.default.copyItem(atPath: tmp.file("good"), toPath: dir)
            try Self.editJSON(dir + "/config.json", edit)
            try assertRefused(["import", dir, "--out", tmp.file(name + ".h5")], message, leaves: tmp.file(name + ".h5"))
        }
    }

    // MARK: Helpers

    private func assertRefused(_ arguments: [String], _ message: String, leaves path: String?,
                               line: UInt = #line) throws {
        let r = try gpt(arguments, expectSuccess: false)
        let lines = r.output.split(separator: "\n")
        XCTAssertEqual(r.status, 1, r.output, line: line)
        XCTAssertEqual(lines.count, 1, "one line: \(r.output)", line: line)
        XCTAssertTrue(r.output.hasPrefix("error: ") && r.output.contains(message), "\(arguments): \(r.output)", line: line)
        if let path {
            let parent = (path as NSString).deletingLastPathComponent, name = (path as NSString).lastPathComponent
            let left = try FileManager.default.contentsOfDirectory(atPath: parent).filter { $0.hasPrefix(name) }
            XCTAssertEqual(left, [], "nothing written for \(arguments)", line: line)
        }
    }

    private static func editJSON(_ path: String, _ edit: (inout [String: Any]) -> Void) throws {
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        edit(&object)
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
    }

    /// The header length a safetensors file starts with.
    private static func headerLength(_ path: String) throws -> Int {
        Int(try Data(contentsOf: URL(fileURLWithPath: path)).prefix(8).reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
    }

    private static func truncate(_ path: String, to length: Int) throws {
        try Data(contentsOf: URL(fileURLWithPath: path)).prefix(length).write(to: URL(fileURLWithPath: path))
    }

    /// Moves the first tensor's data_offsets 4 bytes on (same length, header length unchanged).
    private static func shiftFirstTensor(_ path: String) throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = try headerLength(path)
        var header = String(decoding: data[8..<8 + n], as: UTF8.self)
        let first = try XCTUnwrap(header.range(of: "\"data_offsets\":[0,"))
        header.replaceSubrange(first, with: "\"data_offsets\":[4,")
        let end = try XCTUnwrap(header[first.upperBound...].firstIndex(of: "]"))
        let value = Int(header[first.upperBound..<end])!
        header.replaceSubrange(first.upperBound..<end, with: String(value + 4))
        header = String(header.prefix(n)).padding(toLength: n, withPad: " ", startingAt: 0)
        data.replaceSubrange(8..<8 + n, with: Data(header.utf8))
        try data.write(to: URL(fileURLWithPath: path))
    }
}
