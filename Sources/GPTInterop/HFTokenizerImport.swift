// A Hugging Face byte-level BPE tokenizer (GPT-2's vocab.json + merges.txt,
// or a tokenizer.json with a BPE model and the ByteLevel pre-tokenizer) as
// our BPETokenizer: the same merges in the same order, and a table from our
// token numbering (bytes, merges, specials) to the directory's ids, so that
// encoding gives the ids the model was trained with.
import Foundation
import GPTSupport
import GPTTokenizers

/// The parts of a Hugging Face BPE tokenizer we read.
struct HFBPEFiles {
    var vocab: [String: Int]
    var merges: [(String, String)]
    /// Added tokens flagged special (tokenizer.json only).
    var specials: [String: Int] = [:]
    var source: String

    /// The tokenizer of `directory`: vocab.json + merges.txt when both are there, else tokenizer.json.
    static func read(directory: String) throws -> HFBPEFiles {
        let vocabPath = directory + "/vocab.json", mergesPath = directory + "/merges.txt"
        let fm = FileManager.default
        if fm.fileExists(atPath: vocabPath) && fm.fileExists(atPath: mergesPath) {
            return try readVocabAndMerges(vocabPath, mergesPath)
        }
        let jsonPath = directory + "/tokenizer.json"
        guard fm.fileExists(atPath: jsonPath) else {
            throw DataError("\(directory): no tokenizer (vocab.json + merges.txt, or tokenizer.json); gpt import needs "
                            + "GPT-2's byte-level BPE tokenizer next to the model")
        }
        return try readTokenizerJSON(jsonPath)
    }

    private static func readVocabAndMerges(_ vocabPath: String, _ mergesPath: String) throws -> HFBPEFiles {
        guard let data = FileManager.default.contents(atPath: vocabPath),
              let vocab = try? JSONSerialization.jsonObject(with: data) as? [String: Int] else {
            throw DataError("\(vocabPath): not a JSON object of token -> id")
        }
        guard let text = try? String(contentsOfFile: mergesPath, encoding: .utf8) else {
            throw DataError("\(mergesPath): cannot be read as UTF-8 text")
        }
        var merges: [(String, String)] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.isEmpty || (n == 0 && line.hasPrefix("#version")) { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2 else { throw DataError("\(mergesPath): line \(n + 1) is not two tokens separated by a space") }
            merges.append((String(parts[0]), String(parts[1])))
        }
        return HFBPEFiles(vocab: vocab, merges: merges, source: vocabPath)
    }

    private static func readTokenizerJSON(_ path: String) throws -> HFBPEFiles {
        guard let data = FileManager.default.contents(atPath: path),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw DataError("\(path): not a JSON object")
        }
        func refuse(_ what: String) -> DataError {
            DataError("\(path): \(what); gpt import reads GPT-2's byte-level BPE tokenizers")
        }
        guard let model = root["model"] as? [String: Any], model["type"] as? String == "BPE",
              let vocab = model["vocab"] as? [String: Int] else { throw refuse("the model is not BPE with a vocab") }
        let pre = root["pre_tokenizer"] as? [String: Any]
        guard pre?["type"] as? String == "ByteLevel", pre?["add_prefix_space"] as? Bool != true,
              pre?["use_regex"] as? Bool != false else {
            throw refuse("the pre_tokenizer is not ByteLevel with GPT-2's split and no prefix space")
        }
        guard root["normalizer"] == nil || root["normalizer"] is NSNull else { throw refuse("it has a normalizer") }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let s = model[key] as? String, !s.isEmpty { throw refuse("its \(key) is '\(s)'") }
        }
        var merges: [(String, String)] = []
        for item in model["merges"] as? [Any] ?? [] {
            if let s = item as? String, case let parts = s.split(separator: " "), parts.count == 2 {
                merges.append((String(parts[0]), String(parts[1])))
            } else if let pair = item as? [String], pair.count == 2 {
                merges.append((pair[0], pair[1]))
            } else {
                throw refuse("merge \(merges.count) is not a pair of tokens")
            }
        }
        var specials: [String: Int] = [:]
        for case let token as [String: Any] in root["added_tokens"] as? [Any] ?? [] {
            if let content = token["content"] as? String, let id = token["id"] as? Int { specials[content] = id }
        }
        return HFBPEFiles(vocab: vocab.merging(specials) { a, _ in a }, merges: merges, specials: specials, source: path)
    }

    // MARK: To our tokenizer

    /// Our tokenizer: bytes first (token b is byte b), then the merges in order, then the tokens that
    /// are neither (the special tokens) by id; with the directory's id of each. The vocabulary must
    /// hold `vocabSize` tokens (the model's).
    func tokenizer(vocabSize: Int) throws -> BPETokenizer {
        guard vocab.count == vocabSize else {
            throw DataError("\(source): the tokenizer has \(vocab.count) tokens, config.json's vocab_size is \(vocabSize); "
                            + "they must be equal")
        }
        var token: [String: Int32] = [:]  // spelling -> our token number
        var ids: [Int32] = []
        for b in 0...255 {
            let spelling = ByteLevel.spell([UInt8(b)])
            guard let id = vocab[spelling] else {
                throw DataError("\(source): the vocabulary has no token for byte \(b) ('\(spelling)'); a byte-level BPE "
                                + "vocabulary holds all 256")
            }
            token[spelling] = Int32(b)
            ids.append(Int32(id))
        }
        var merges: [BPEMerge] = []
        for (n, (left, right)) in self.merges.enumerated() {
            guard let l = token[left], let r = token[right] else {
                throw DataError("\(source): merge \(n) ('\(left) \(right)') joins a token that no earlier merge makes")
            }
            guard let id = vocab[left + right] else {
                throw DataError("\(source): merge \(n) makes '\(left + right)', which is not in the vocabulary")
            }
            guard token.updateValue(Int32(256 + n), forKey: left + right) == nil else {
                throw DataError("\(source): merge \(n) makes '\(left + right)' a second time")
            }
            merges.append(BPEMerge(l, r))
            ids.append(Int32(id))
        }
        let others = vocab.filter { token[$0.key] == nil }.sorted { $0.value < $1.value }
        if let stray = others.first(where: { ByteLevel.bytes(of: $0.key) != nil && specials[$0.key] == nil
                                               && $0.key != BPETokenizer.endOfText }) {
            throw DataError("\(source): token '\(stray.key)' (id \(stray.value)) is neither a byte, a merge nor a special token")
        }
        ids += others.map { Int32($0.value) }
        try checkIDs(ids)
        return try BPETokenizer(merges: merges, specialTokens: others.map(\.key), ids: ids)
    }

    /// The ids must number the tokens 0..<count, each once.
    private func checkIDs(_ ids: [Int32]) throws {
        var seen = [Bool](repeating: false, count: ids.count)
        for id in ids {
            guard id >= 0 && Int(id) < ids.count && !seen[Int(id)] else {
                throw DataError("\(source): the \(ids.count) tokens must have the ids 0...\(ids.count - 1), each once "
                                + "(id \(id) is " + (id >= 0 && Int(id) < ids.count ? "used twice)" : "out of range)"))
            }
            seen[Int(id)] = true
        }
    }
}
