// Which Hugging Face architecture a model leaves as, and comes back from:
// the one place that decides. GPT-2's options export as GPT2LMHeadModel,
// RMSNorm + RoPE + SwiGLU without biases as LlamaForCausalLM; any other
// combination is refused with the options named, never exported wrongly.
import Foundation
import GPTCore
import GPTSupport

/// A Hugging Face causal-LM architecture that computes one of our models exactly.
public enum HFArchitecture: String, CaseIterable, Sendable {
    case gpt2 = "GPT2LMHeadModel", llama = "LlamaForCausalLM"

    /// config.json's `model_type`.
    public var modelType: String { self == .gpt2 ? "gpt2" : "llama" }

    /// The options this architecture needs, as (key, value) in our config's spelling;
    /// GPT-2 takes `bias` either way (a model without biases exports zero biases).
    var required: [(key: String, value: String)] {
        switch self {
        case .gpt2: return [("norm", "\"layernorm\""), ("position", "\"learned\""), ("mlp", "\"gelu\""), ("qk_norm", "false")]
        case .llama:
            return [("norm", "\"rmsnorm\""), ("position", "\"rope\""), ("mlp", "\"swiglu\""), ("qk_norm", "false"),
                    ("bias", "false")]
        }
    }

    /// The value of each architecture option of `config`, in the spelling of `required`.
    static func options(_ config: GPTConfig) -> [String: String] {
        ["norm": "\"\(config.norm.rawValue)\"", "position": "\"\(config.position.rawValue)\"",
         "mlp": "\"\(config.mlp.rawValue)\"", "qk_norm": String(config.qkNorm), "bias": String(config.bias)]
    }

    /// The options of `config` this architecture has no place for, as `key = value`.
    func mismatches(_ config: GPTConfig) -> [String] {
        let have = Self.options(config)
        return required.compactMap { have[$0.key] == $0.value ? nil : "\($0.key) = \(have[$0.key]!)" }
    }

    /// The architecture `config` exports as, or an error (about `source`) that names, for each
    /// architecture, the options of the model it cannot express.
    public static func of(_ config: GPTConfig, source: String) throws -> HFArchitecture {
        if let fit = allCases.first(where: { $0.mismatches(config).isEmpty }) { return fit }
        let misfits = allCases.map { "\($0.rawValue) has no place for \($0.mismatches(config).joined(separator: ", "))" }
        let needs = allCases.map { a in "\(a.rawValue) (\(a.required.map { "\($0.key) = \($0.value)" }.joined(separator: ", ")))" }
        throw DataError("\(source): \(misfits.joined(separator: "; ")); gpt export writes "
                        + needs.joined(separator: " or "))
    }

    /// config.json for `config`; `endOfText` is the id of `<|endoftext|>` (bos/eos), if the tokenizer has one.
    public func json(_ config: GPTConfig, dtype: SafetensorsDType, endOfText: Int?) -> [String: Any] {
        switch self {
        case .gpt2: return GPT2Config.json(config, dtype: dtype, endOfText: endOfText)
        case .llama: return LlamaConfig.json(config, dtype: dtype, endOfText: endOfText)
        }
    }

    /// Our parameters of `config` as this architecture's state_dict.
    public func export(_ parameters: [Float], config: GPTConfig) -> [NamedTensor] {
        switch self {
        case .gpt2: return GPT2Tensors.export(parameters, config: config)
        case .llama: return LlamaTensors.export(parameters, config: config)
        }
    }

    /// The architecture of a config.json object (by `model_type`), or an error naming the ones gpt import reads.
    public static func reading(_ object: [String: Any], path: String) throws -> HFArchitecture {
        let type = object["model_type"] as? String ?? "(none)"
        guard let found = allCases.first(where: { $0.modelType == type }) else {
            throw DataError("\(path): model_type is '\(type)', not 'gpt2' or 'llama'; gpt import reads GPT2LMHeadModel "
                            + "and LlamaForCausalLM models")
        }
        return found
    }

    /// Our model of this architecture's config.json `object`.
    public func model(from object: [String: Any], path: String) throws -> GPTConfig {
        switch self {
        case .gpt2: return try GPT2Config.model(from: object, path: path)
        case .llama: return try LlamaConfig.model(from: object, path: path)
        }
    }

    /// Our flat parameters of `config` from this architecture's safetensors file.
    public func parameters(from file: SafetensorsFile, config: GPTConfig) throws -> [Float] {
        switch self {
        case .gpt2: return try GPT2Tensors.parameters(from: file, config: config)
        case .llama: return try LlamaTensors.parameters(from: file, config: config)
        }
    }
}

/// An integer field of a config.json object, or the error that names it.
func configInt(_ object: [String: Any], _ key: String, or fallback: String? = nil, path: String,
               model: String) throws -> Int {
    if let v = object[key] as? Int { return v }
    if let fallback, let v = object[fallback] as? Int { return v }
    throw DataError("\(path): \(model) config has no integer '\(key)'")
}
