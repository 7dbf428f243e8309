// What the interoperability tests share: the Python checker (Tests/interop/hf_check.py),
// skipped when its packages are missing, texts to tokenize, and small checkpoints.
import Foundation
import GPTCore
import GPTData
import TestSupport
import XCTest

// MARK: - Python

enum Python {
    /// The checker script.
    static let script = packageRootPath() + "/Tests/interop/hf_check.py"

    nonisolated(unsafe) private static var available: [String: Bool] = [:]

    /// Skips the test unless python3 imports every one of `modules`.
    static func require(_ modules: [String]) throws {
        let key = modules.joined(separator: ",")
        if available[key] == nil {
            let python = findExecutable("python3")
            available[key] = try python.map { try runProcess($0, ["-c", "import " + key]).status == 0 } ?? false
        }
        guard available[key] == true else {
            throw XCTSkip("python3 with \(key) is not installed (launch/test.sh installs them: the CPU torch wheel from "
                          + "/opt/wheels, then transformers safetensors tokenizers tensorboard)")
        }
    }

    /// Runs `hf_check.py <command> <argument>`; fails the test with its output when it fails.
    /// Returns the JSON objects it printed, one per line.
    @discardableResult
    static func check(_ command: String, _ argument: String, file: StaticString = #filePath,
                      line: UInt = #line) throws -> [Any] {
        let r = try run(findExecutable("python3")!, [script, command, argument],
                        environment: ["HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"],
                        timeout: 240)
        guard r.status == 0 else {
            XCTFail("hf_check.py \(command) failed:\n\(r.output)", file: file, line: line)
            throw CheckFailed()
        }
        print("hf_check.py \(command): " + r.output.split(separator: "\n").filter { $0.hasPrefix("{") || $0.hasPrefix("[") }
            .joined(separator: "\n  "))
        return r.output.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) }
    }
}

/// The checker failed (the failure is recorded; the test stops here).
struct CheckFailed: Error {}

// MARK: - Texts

enum InteropText {
    /// A paragraph of Tiny Shakespeare (from the shared datasets when present, else this one).
    static var shakespeare: String {
        if let path = try? tinyShakespearePath(), let text = try? String(contentsOfFile: path, encoding: .utf8) {
            return String(text.prefix(1200))
        }
        return """
            First Citizen:
            Before we proceed any further, hear me speak.

            All:
            Speak, speak.

            First Citizen:
            You are all resolved rather to die than to famish?

            All:
            Resolved. resolved.

            First Citizen:
            First, you know Caius Marcius is chief enemy to the people.

            """
    }

    /// Non-ASCII text (2-, 3- and 4-byte UTF-8, combining marks) with an end-of-text token in it.
    static let nonASCII = "Crème brûlée — naïve café, Ærøskøbing; 東京の天気は晴れ; Ελληνικά, русский; 🎉🙂 e\u{301}t\u{E9}! "
        + "It's 3.14159 o'clock  <|endoftext|>Next doc: ¿qué tal?\n\n"

    static let all = [shakespeare, nonASCII]

    /// A char tokenizer and a 420-token BPE one, both trained on these texts.
    static func tokenizers() throws -> (char: CharTokenizer, bpe: BPETokenizer) {
        (CharTokenizer(training: all.joined()),
         try BPETrainer.train(text: all.joined() + String(repeating: shakespeare, count: 3), vocabSize: 420))
    }
}

// MARK: - Checkpoints

enum InteropModels {
    /// A checkpoint of `config` whose every tensor is GPT-2's initialisation plus noise, so that
    /// biases and LayerNorm weights are not at their initial 0 and 1 (as after training).
    static func checkpoint(_ config: GPTConfig, tokenizer: any Tokenizer, seed: UInt64) -> Checkpoint {
        let model = GPT(config: config, seed: seed)
        var rng = SplitMix64(seed: seed ^ 0x5EED)
        var parameters = Array(UnsafeBufferPointer(start: model.params, count: model.parameterCount))
        for i in parameters.indices { parameters[i] += Float(rng.nextNormal() * 0.05) }
        return Checkpoint(modelConfig: config, parameters: parameters, step: 100, tokenizerKind: tokenizer.kind,
                          tokenizer: tokenizer.serialized())
    }

    /// Our logits (B, T, V) for `inputs` (B rows of T ids) with the checkpoint's weights.
    static func logits(_ ckpt: Checkpoint, inputs: [[Int32]]) -> [Float] {
        var config = ckpt.modelConfig
        config.dropout = 0
        let model = GPT(config: config, seed: 0)
        ckpt.parameters.withUnsafeBufferPointer { model.params.update(from: $0.baseAddress!, count: model.parameterCount) }
        model.training = false
        let B = inputs.count, T = inputs[0].count
        let flat = inputs.flatMap { $0 }
        flat.withUnsafeBufferPointer { _ = model.forward(inputs: $0.baseAddress!, targets: nil, B: B, T: T) }
        return Array(UnsafeBufferPointer(start: model.logits, count: B * T * config.vocabSize))
    }

    /// max |a - b| / max |b|.
    static func relativeDifference(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count)
        var diff: Float = 0, scale: Float = 0
        for i in a.indices {
            diff = max(diff, abs(a[i] - b[i]))
            scale = max(scale, abs(b[i]))
        }
        return Double(diff / max(scale, .leastNormalMagnitude))
    }
}

extension Array where Element == Float {
    /// The values as little-endian float32 bytes (the checker reads them with numpy.fromfile).
    func write(to path: String) throws {
        try withUnsafeBytes { Data($0) }.write(to: URL(fileURLWithPath: path))
    }
}
