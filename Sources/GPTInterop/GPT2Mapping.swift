// Our model as Hugging Face's GPT2LMHeadModel: config.json and the tensor
// names and layouts of its state_dict. Our tensors are nanoGPT's; Hugging
// Face's GPT-2 stores its four projection matrices as Conv1D weights,
// (in, out), the transpose of our (out, in) Linear weights, and always has
// biases (a model without them exports zeros).
import Foundation
import GPTCore
import GPTSupport

// MARK: - config.json

/// The fields of a GPT-2 config.json we read and write.
public enum GPT2Config {
    /// GPT-2's activation: the tanh approximation of GELU, which is ours.
    static let activations: Set<String> = ["gelu_new", "gelu_pytorch_tanh"]

    /// config.json for `config`; `endOfText` is the id of `<|endoftext|>` (bos/eos), if the tokenizer has one.
    public static func json(_ config: GPTConfig, dtype: SafetensorsDType, endOfText: Int?) -> [String: Any] {
        let eot: Any = endOfText ?? NSNull()
        return [
            "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": config.vocabSize, "n_positions": config.blockSize, "n_ctx": config.blockSize,
            "n_embd": config.nEmbd, "n_layer": config.nLayer, "n_head": config.nHead, "n_inner": NSNull(),
            "activation_function": "gelu_new", "layer_norm_epsilon": Double(layerNormEps),
            "resid_pdrop": Double(config.dropout), "embd_pdrop": Double(config.dropout), "attn_pdrop": Double(config.dropout),
            "initializer_range": 0.02, "scale_attn_weights": true, "scale_attn_by_inverse_layer_idx": false,
            "reorder_and_upcast_attn": false, "tie_word_embeddings": config.tieWeights, "use_cache": true,
            "bos_token_id": eot, "eos_token_id": eot, "torch_dtype": dtype.torchName,
        ]
    }

    /// The model a GPT-2 config.json describes (with biases, dropout 0), or an error naming
    /// the field that is not GPT-2's architecture as this build computes it.
    public static func model(from object: [String: Any], path: String) throws -> GPTConfig {
        func int(_ key: String, or fallback: String? = nil) throws -> Int {
            try configInt(object, key, or: fallback, path: path, model: "GPT-2")
        }
        let config = GPTConfig(vocabSize: try int("vocab_size"), blockSize: try int("n_positions", or: "n_ctx"),
                               nLayer: try int("n_layer"), nHead: try int("n_head"), nEmbd: try int("n_embd"), dropout: 0,
                               bias: true, tieWeights: object["tie_word_embeddings"] as? Bool ?? true)
        try checkArchitecture(object, config: config, path: path)
        let problems = config.problems()
        guard problems.isEmpty else { throw DataError("\(path): \(problems.joined(separator: "; "))") }
        return config
    }

    /// Refuses the GPT-2 variants our kernels do not compute.
    private static func checkArchitecture(_ object: [String: Any], config: GPTConfig, path: String) throws {
        func refuse(_ what: String) -> DataError {
            DataError("\(path): \(what); SwiftGPT computes GPT-2 as OpenAI released it and cannot import this model")
        }
        let activation = object["activation_function"] as? String ?? "gelu_new"
        guard activations.contains(activation) else { throw refuse("activation_function is '\(activation)', not 'gelu_new'") }
        if let eps = object["layer_norm_epsilon"] as? Double, abs(eps - Double(layerNormEps)) > 1e-12 {
            throw refuse("layer_norm_epsilon is \(eps), not 1e-05")
        }
        if let inner = object["n_inner"] as? Int, inner != 4 * config.nEmbd {
            throw refuse("n_inner is \(inner), not 4 * n_embd = \(4 * config.nEmbd)")
        }
        for (key, expected) in [("scale_attn_weights", true), ("scale_attn_by_inverse_layer_idx", false),
                                ("add_cross_attention", false)] {
            if let v = object[key] as? Bool, v != expected { throw refuse("\(key) is \(v)") }
        }
    }
}

// MARK: - Tensor names and layouts

/// How each of our tensors is stored in a Hugging Face GPT-2 state_dict.
public enum GPT2Tensors {
    /// Our (out, in) weights that GPT-2 keeps as Conv1D (in, out) weights.
    static let conv1DSuffixes = ["attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight"]

    /// Hugging Face's name of our tensor `name`.
    public static func hfName(_ name: String) -> String {
        name == "lm_head.weight" ? name : "transformer." + name
    }

    static func isConv1D(_ name: String) -> Bool { conv1DSuffixes.contains { name.hasSuffix($0) } }

    /// The tensors of `config` as Hugging Face stores them: with biases (zero when the model has
    /// none), Conv1D weights transposed, and `lm_head.weight` only when the head is not tied.
    public static func export(_ parameters: [Float], config: GPTConfig) -> [NamedTensor] {
        let ours = ParameterLayout(config: config)
        var withBias = config
        withBias.bias = true
        return ParameterLayout(config: withBias).tensors.map { t in
            guard let mine = ours[t.name] else {
                return NamedTensor(name: hfName(t.name), shape: t.shape, values: [Float](repeating: 0, count: t.count))
            }
            let values = Array(parameters[mine.offset ..< mine.offset + mine.count])
            guard isConv1D(t.name) else { return NamedTensor(name: hfName(t.name), shape: t.shape, values: values) }
            return NamedTensor(name: hfName(t.name), shape: [t.shape[1], t.shape[0]],
                               values: transpose(values, rows: t.shape[0], columns: t.shape[1]))
        }
    }

    /// Our flat parameters of `config` (which has biases) from a GPT-2 safetensors file, checking that
    /// every tensor is there with its shape and that nothing else is (the attention-mask buffers
    /// older versions saved, `attn.bias` and `attn.masked_bias`, are skipped).
    public static func parameters(from file: SafetensorsFile, config: GPTConfig) throws -> [Float] {
        let layout = ParameterLayout(config: config)
        // Files saved from GPT2Model (and OpenAI's own conversion) have no "transformer." prefix.
        let prefixed = file.entries.contains { $0.name.hasPrefix("transformer.") }
        func stored(_ name: String) -> String { prefixed ? hfName(name) : name }
        let known = Set(layout.tensors.map { stored($0.name) } + [stored("lm_head.weight")])
        if let extra = file.entries.first(where: { !known.contains($0.name) && !isMaskBuffer($0.name) }) {
            throw DataError("\(file.path): tensor '\(extra.name)' is not part of a GPT2LMHeadModel; the directory holds "
                            + "another architecture")
        }
        var flat = [Float](repeating: 0, count: layout.count)
        for t in layout.tensors {
            guard let entry = file[stored(t.name)] else {
                throw DataError("\(file.path): GPT-2 tensor '\(stored(t.name))' is missing")
            }
            let conv = isConv1D(t.name)
            let expected = conv ? [t.shape[1], t.shape[0]] : t.shape
            guard entry.shape == expected else {
                throw DataError("\(file.path): tensor '\(entry.name)' has shape \(entry.shape), config.json implies \(expected)")
            }
            var values = file.floats(entry)
            if conv { values = transpose(values, rows: expected[0], columns: expected[1]) }
            flat.replaceSubrange(t.offset ..< t.offset + t.count, with: values)
        }
        return flat
    }

    /// The causal-mask buffers some GPT-2 files carry: `h.<l>.attn.bias` and `h.<l>.attn.masked_bias`.
    static func isMaskBuffer(_ name: String) -> Bool {
        name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias")
    }

    /// The (columns, rows) transpose of a row-major (rows, columns) matrix.
    static func transpose(_ m: [Float], rows: Int, columns: Int) -> [Float] {
        precondition(m.count == rows * columns)
        return [Float](unsafeUninitializedCapacity: m.count) { out, initialized in
            m.withUnsafeBufferPointer { src in
                for r in 0..<rows {
                    for c in 0..<columns { out[c * rows + r] = src[r * columns + c] }
                }
            }
            initialized = m.count
        }
    }
}
