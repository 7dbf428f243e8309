// Our tokenizers in Hugging Face's files: tokenizer.json (the `tokenizers`
// format, what AutoTokenizer loads), tokenizer_config.json and, for
// byte-level BPE, GPT-2's vocab.json and merges.txt.
import Foundation
import GPTSupport
import GPTTokenizers

/// The tokenizer files of a Hugging Face model directory, by file name.
public enum HFTokenizerExport {
    /// The files for `tokenizer`, or an error when it cannot be written so that AutoTokenizer gives our ids.
    public static func files(for tokenizer: any Tokenizer, modelMaxLength: Int) throws -> [String: Data] {
        if let bpe = tokenizer as? BPETokenizer { return try bpeFiles(bpe, modelMaxLength: modelMaxLength) }
        if let char = tokenizer as? CharTokenizer { return try charFiles(char, modelMaxLength: modelMaxLength) }
        throw DataError("a '\(tokenizer.kind)' tokenizer has no Hugging Face form in this build")
    }

    // MARK: Byte-level BPE

    /// GPT-2's tokenizer files: byte-level pre-tokenizer, the vocabulary in GPT-2's spelling, the merges.
    static func bpeFiles(_ tok: BPETokenizer, modelMaxLength: Int) throws -> [String: Data] {
        let tokens = try vocabulary(tok)
        let merges = tok.merges.map { m in
            ByteLevel.spell(tok.bytes(ofToken: Int(m.left))) + " " + ByteLevel.spell(tok.bytes(ofToken: Int(m.right)))
        }
        let specials = tok.specialTokens.enumerated().map { s, text in
            ["id": Int(tok.id(ofToken: 256 + tok.merges.count + s)), "content": text, "single_word": false,
             "lstrip": false, "rstrip": false, "normalized": false, "special": true] as [String: Any]
        }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true]
        let tokenizerJSON: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": specials,
            "normalizer": NSNull(), "pre_tokenizer": byteLevel, "post_processor": byteLevel, "decoder": byteLevel,
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": "",
                      "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "vocab": tokens, "merges": merges],
        ]
        let eot = BPETokenizer.endOfText
        let config: [String: Any] = [
            "tokenizer_class": "GPT2Tokenizer", "model_max_length": modelMaxLength, "add_prefix_space": false,
            "bos_token": eot, "eos_token": eot, "unk_token": eot, "clean_up_tokenization_spaces": false,
        ]
        return [
            "tokenizer.json": try json(tokenizerJSON), "vocab.json": try json(tokens),
            "merges.txt": Data((["#version: 0.2"] + merges).joined(separator: "\n").utf8 + [0x0A]),
            "tokenizer_config.json": try json(config),
            "special_tokens_map.json": try json(["bos_token": eot, "eos_token": eot, "unk_token": eot]),
        ]
    }

    /// Every token's spelling and id; refused when two tokens have the same bytes (a Hugging Face
    /// vocabulary maps each string to one id).
    private static func vocabulary(_ tok: BPETokenizer) throws -> [String: Int] {
        var tokens: [String: Int] = [:]
        let specialsStart = 256 + tok.merges.count
        for k in 0..<tok.vocabSize {
            let spelling = k < specialsStart ? ByteLevel.spell(tok.bytes(ofToken: k)) : tok.specialTokens[k - specialsStart]
            let id = Int(tok.id(ofToken: k))
            if let other = tokens.updateValue(id, forKey: spelling) {
                throw DataError("tokens \(other) and \(id) are both '\(spelling)' (merge \(k - 256) repeats the bytes of an "
                                + "earlier token); a Hugging Face vocabulary cannot hold this tokenizer")
            }
        }
        return tokens
    }

    // MARK: Characters

    /// A tokenizer.json whose BPE model has one token per character and no merges: with no
    /// pre-tokenizer and no normalizer, each character of the text becomes its id.
    static func charFiles(_ tok: CharTokenizer, modelMaxLength: Int) throws -> [String: Data] {
        var vocab: [String: Int] = [:]
        for (i, c) in tok.vocabulary.enumerated() { vocab[String(Character(c))] = i }
        let tokenizerJSON: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(), "added_tokens": [[String: Any]](),
            "normalizer": NSNull(), "pre_tokenizer": NSNull(), "post_processor": NSNull(), "decoder": ["type": "Fuse"],
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "vocab": vocab,
                      "merges": [String]()],
        ]
        // (GPT-2 reads token_type_ids as extra token embeddings: the tokenizer must not return them.)
        let config: [String: Any] = ["tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": modelMaxLength,
                                     "clean_up_tokenization_spaces": false, "model_input_names": ["input_ids", "attention_mask"]]
        return ["tokenizer.json": try json(tokenizerJSON), "tokenizer_config.json": try json(config)]
    }

    static func json(_ object: Any) throws -> Data {
        var data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])
        data.append(0x0A)
        return data
    }
}
