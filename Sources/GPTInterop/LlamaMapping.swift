// Our RMSNorm + RoPE + SwiGLU model (no biases) as Hugging Face's
// LlamaForCausalLM: config.json and the tensor names and layouts of its
// state_dict. Llama's Linear weights are (out, in) as ours; c_attn splits into
// q/k/v_proj and c_fc into gate_proj (the silu half) and up_proj. Our RoPE
// turns adjacent pairs (2i, 2i+1) of a head, Llama's rotate_half pairs
// (j, j + hs/2) with the same angle per j: so within each head, Llama's q and
// k row j is our row 2j and row j + hs/2 our row 2j + 1 (q.k is unchanged by
// permuting q and k alike).
import Foundation
import GPTCore
import GPTSupport

// MARK: - config.json

/// The fields of a Llama config.json we read and write.
public enum LlamaConfig {
    /// config.json for `config`; `endOfText` is the id of `<|endoftext|>` (bos/eos), if the tokenizer has one.
    public static func json(_ config: GPTConfig, dtype: SafetensorsDType, endOfText: Int?) -> [String: Any] {
        let eot: Any = endOfText ?? NSNull()
        return [
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "vocab_size": config.vocabSize, "max_position_embeddings": config.blockSize,
            "hidden_size": config.nEmbd, "intermediate_size": config.swigluHidden, "num_hidden_layers": config.nLayer,
            "num_attention_heads": config.nHead, "num_key_value_heads": config.nHead, "head_dim": config.headSize,
            "hidden_act": "silu", "rms_norm_eps": Double(layerNormEps), "rope_theta": config.ropeBase,
            "rope_parameters": ["rope_type": "default", "rope_theta": config.ropeBase] as [String: Any],
            "rope_scaling": NSNull(), "attention_bias": false, "mlp_bias": false,
            "attention_dropout": Double(config.dropout), "initializer_range": 0.02, "pretraining_tp": 1,
            "tie_word_embeddings": config.tieWeights, "use_cache": true,
            "bos_token_id": eot, "eos_token_id": eot, "torch_dtype": dtype.torchName,
        ]
    }

    /// The model a Llama config.json describes (RMSNorm, RoPE, SwiGLU, no biases, dropout 0), or an
    /// error naming the field that our kernels do not compute.
    public static func model(from object: [String: Any], path: String) throws -> GPTConfig {
        func int(_ key: String) throws -> Int { try configInt(object, key, path: path, model: "Llama") }
        var config = GPTConfig(vocabSize: try int("vocab_size"), blockSize: try int("max_position_embeddings"),
                               nLayer: try int("num_hidden_layers"), nHead: try int("num_attention_heads"),
                               nEmbd: try int("hidden_size"), dropout: 0, bias: false,
                               tieWeights: object["tie_word_embeddings"] as? Bool ?? false)
        config.norm = .rmsNorm
        config.position = .rope
        config.mlp = .swiglu
        config.ropeBase = try ropeTheta(object, path: path)
        config.swigluMultiple = try swigluMultiple(hidden: try int("intermediate_size"), config: config, path: path)
        try checkArchitecture(object, config: config, path: path)
        let problems = config.problems()
        guard problems.isEmpty else { throw DataError("\(path): \(problems.joined(separator: "; "))") }
        return config
    }

    /// The RoPE base: `rope_parameters.rope_theta` (transformers 5), else `rope_theta`, else 10000;
    /// any RoPE scaling is refused.
    private static func ropeTheta(_ object: [String: Any], path: String) throws -> Double {
        let parameters = object["rope_parameters"] as? [String: Any] ?? object["rope_scaling"] as? [String: Any] ?? [:]
        let type = parameters["rope_type"] as? String ?? parameters["type"] as? String ?? "default"
        guard type == "default" else {
            throw refuse(path, "RoPE scaling '\(type)' is set; our RoPE is the unscaled one (rope_type 'default')")
        }
        return number(parameters["rope_theta"]) ?? number(object["rope_theta"]) ?? 10_000
    }

    /// The `swiglu_multiple` whose SwiGLU width is `hidden`: 8 (our default) when it gives it, else
    /// `hidden` itself, which does whenever hidden >= 8/3 hidden_size.
    private static func swigluMultiple(hidden: Int, config: GPTConfig, path: String) throws -> Int {
        for m in [8, hidden] where m >= 1 {
            var c = config
            c.swigluMultiple = m
            if c.swigluHidden == hidden { return m }
        }
        throw refuse(path, "intermediate_size is \(hidden), below 8/3 of hidden_size (\(config.nEmbd)); our SwiGLU "
                     + "width is at least that")
    }

    /// Refuses the Llama variants our kernels do not compute.
    private static func checkArchitecture(_ object: [String: Any], config: GPTConfig, path: String) throws {
        let activation = object["hidden_act"] as? String ?? "silu"
        guard activation == "silu" else { throw refuse(path, "hidden_act is '\(activation)', not 'silu'") }
        if let eps = number(object["rms_norm_eps"]), abs(eps - Double(layerNormEps)) > 1e-12 {
            throw refuse(path, "rms_norm_eps is \(eps), not 1e-05")
        }
        if let kv = object["num_key_value_heads"] as? Int, kv != config.nHead {
            throw refuse(path, "num_key_value_heads is \(kv), not num_attention_heads = \(config.nHead) (grouped-query "
                         + "attention)")
        }
        if let hs = object["head_dim"] as? Int, hs != config.headSize {
            throw refuse(path, "head_dim is \(hs), not hidden_size / num_attention_heads = \(config.headSize)")
        }
        for key in ["attention_bias", "mlp_bias"] where object[key] as? Bool == true { throw refuse(path, "\(key) is true") }
    }

    private static func refuse(_ path: String, _ what: String) -> DataError {
        DataError("\(path): \(what); SwiftGPT computes Llama without biases, scaling or grouped heads and cannot import "
                  + "this model")
    }

    private static func number(_ value: Any?) -> Double? { (value as? NSNumber)?.doubleValue }
}

// MARK: - Tensor names and layouts

/// How each of our tensors is stored in a Hugging Face Llama state_dict.
public enum LlamaTensors {
    /// One Llama tensor: rows `rows` of our tensor `ours` (a vector's elements count as rows), with the
    /// rows of each head in rotate_half's order when `rotary` (q and k).
    struct Piece {
        let name: String, ours: String, rows: Range<Int>, rotary: Bool
    }

    /// Every Llama tensor of `c`, in state_dict order; together they cover our parameters exactly once.
    static func pieces(_ c: GPTConfig) -> [Piece] {
        let C = c.nEmbd, H = c.swigluHidden
        func all(_ name: String, _ ours: String, rows: Int = C) -> Piece { Piece(name: name, ours: ours, rows: 0..<rows, rotary: false) }
        var pieces = [all("model.embed_tokens.weight", "wte.weight", rows: c.vocabSize)]
        for l in 0..<c.nLayer {
            let hf = "model.layers.\(l).", h = "h.\(l)."
            pieces += [
                all(hf + "input_layernorm.weight", h + "ln_1.weight"),
                Piece(name: hf + "self_attn.q_proj.weight", ours: h + "attn.c_attn.weight", rows: 0..<C, rotary: true),
                Piece(name: hf + "self_attn.k_proj.weight", ours: h + "attn.c_attn.weight", rows: C..<2 * C, rotary: true),
                Piece(name: hf + "self_attn.v_proj.weight", ours: h + "attn.c_attn.weight", rows: 2 * C..<3 * C, rotary: false),
                all(hf + "self_attn.o_proj.weight", h + "attn.c_proj.weight"),
                all(hf + "post_attention_layernorm.weight", h + "ln_2.weight"),
                Piece(name: hf + "mlp.gate_proj.weight", ours: h + "mlp.c_fc.weight", rows: 0..<H, rotary: false),
                Piece(name: hf + "mlp.up_proj.weight", ours: h + "mlp.c_fc.weight", rows: H..<2 * H, rotary: false),
                all(hf + "mlp.down_proj.weight", h + "mlp.c_proj.weight"),
            ]
        }
        pieces.append(all("model.norm.weight", "ln_f.weight"))
        if !c.tieWeights { pieces.append(all("lm_head.weight", "lm_head.weight", rows: c.vocabSize)) }
        return pieces
    }

    /// Calls `body(hfRow, ourRow, columns)` for each row of `piece`: its row `hfRow` is row `ourRow`
    /// of our tensor, whose rows are `columns` wide.
    static func forEachRow(_ piece: Piece, _ t: TensorView, headSize hs: Int, _ body: (Int, Int, Int) -> Void) {
        let columns = t.count / t.shape[0], half = hs / 2
        for r in 0..<piece.rows.count {
            var source = r
            if piece.rotary {
                let j = r % hs
                source = r - j + (j < half ? 2 * j : 2 * (j - half) + 1)
            }
            body(r, piece.rows.lowerBound + source, columns)
        }
    }

    /// The tensors of `config` as LlamaForCausalLM stores them (`lm_head.weight` only when not tied).
    public static func export(_ parameters: [Float], config: GPTConfig) -> [NamedTensor] {
        let layout = ParameterLayout(config: config)
        return pieces(config).map { p in
            let t = layout[p.ours]!
            var values = [Float](repeating: 0, count: p.rows.count * (t.count / t.shape[0]))
            forEachRow(p, t, headSize: config.headSize) { hf, ours, n in
                values[hf * n ..< (hf + 1) * n] = parameters[t.offset + ours * n ..< t.offset + (ours + 1) * n]
            }
            return NamedTensor(name: p.name, shape: [p.rows.count] + t.shape.dropFirst(), values: values)
        }
    }

    /// Our flat parameters of `config` from a Llama safetensors file, checking that every tensor is
    /// there with its shape and that nothing else is (the `rotary_emb.inv_freq` buffers older
    /// versions saved, and a tied model's `lm_head.weight`, are skipped).
    public static func parameters(from file: SafetensorsFile, config: GPTConfig) throws -> [Float] {
        let layout = ParameterLayout(config: config)
        let pieces = pieces(config)
        let known = Set(pieces.map(\.name) + ["lm_head.weight"])
        if let extra = file.entries.first(where: { !known.contains($0.name) && !$0.name.hasSuffix("rotary_emb.inv_freq") }) {
            throw DataError("\(file.path): tensor '\(extra.name)' is not part of this LlamaForCausalLM; the directory "
                            + "holds another architecture")
        }
        var flat = [Float](repeating: 0, count: layout.count)
        for p in pieces {
            let t = layout[p.ours]!
            let expected = [p.rows.count] + t.shape.dropFirst()
            guard let entry = file[p.name] else { throw DataError("\(file.path): Llama tensor '\(p.name)' is missing") }
            guard entry.shape == expected else {
                throw DataError("\(file.path): tensor '\(entry.name)' has shape \(entry.shape), config.json implies \(expected)")
            }
            let values = file.floats(entry)
            forEachRow(p, t, headSize: config.headSize) { hf, ours, n in
                flat[t.offset + ours * n ..< t.offset + (ours + 1) * n] = values[hf * n ..< (hf + 1) * n]
            }
        }
        return flat
    }
}
