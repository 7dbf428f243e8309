// The serialized form of a BPE tokenizer (the `tokenizer` attribute of corpus
// and checkpoint files, and `tok.json`), and the id table of a tokenizer whose
// ids are not its token numbers.
import Foundation
import GPTSupport

// MARK: - Id table

/// The id of every token of a tokenizer whose ids are not its token numbers, and the inverse.
///
/// GPT-2 numbers its byte tokens in the order of its byte-to-unicode table,
/// not by byte value; a tokenizer imported from a Hugging Face directory keeps
/// the directory's ids so the model's embedding rows stay where they were.
struct BPEIDTable: Equatable {
    /// `ids[k]`: the id of token k.
    let ids: [Int32]
    /// `tokens[id]`: the token of an id.
    let tokens: [Int32]

    /// The table of `ids` (which must number `tokens` tokens 0..<tokens, each once), nil when every id is its token.
    init?(ids: [Int32], tokens: Int) throws {
        guard ids.count == tokens else {
            throw DataError("the id table has \(ids.count) ids for \(tokens) tokens")
        }
        var inverse = [Int32](repeating: -1, count: tokens)
        for (k, id) in ids.enumerated() {
            guard id >= 0 && Int(id) < tokens && inverse[Int(id)] < 0 else {
                throw DataError("the id table must hold each id 0...\(tokens - 1) once (id \(id) of token \(k) is "
                                + (id >= 0 && Int(id) < tokens ? "repeated)" : "out of range)"))
            }
            inverse[Int(id)] = Int32(k)
        }
        if ids.enumerated().allSatisfy({ Int32($0.offset) == $0.element }) { return nil }
        self.ids = ids
        self.tokens = inverse
    }

    /// Replaces token numbers by their ids, in place.
    func renumber(_ tokens: inout [Int32]) {
        ids.withUnsafeBufferPointer { ids in
            for i in tokens.indices { tokens[i] = ids[Int(tokens[i])] }
        }
    }
}

extension BPETables {
    @inline(__always)
    func id(ofToken k: Int32) -> Int32 { idTable.map { $0.ids[Int(k)] } ?? k }

    @inline(__always)
    func token(ofID id: Int32) -> Int32 { idTable.map { $0.tokens[Int(id)] } ?? id }
}

extension BPETokenizer {
    /// The id of token `k` (`0..<vocabSize`: the bytes, the merges in order, the special tokens).
    public func id(ofToken k: Int) -> Int32 { tables.id(ofToken: Int32(k)) }

    /// The bytes of token `k` (a number as in `id(ofToken:)`).
    public func bytes(ofToken k: Int) -> [UInt8] { Array(tables.tokenBytes[tables.tokenRange(k)]) }

    /// Whether some token's id is not its number.
    public var hasIDTable: Bool { tables.idTable != nil }
}

// MARK: - Serialized form

extension BPETokenizer {
    /// The version written when the tokenizer has an id table (older builds then refuse it, rather
    /// than ignore the table and give other ids).
    static let idTableVersion = 2

    /// Rebuilds a tokenizer from `serialized()`.
    public init(serialized: String) throws {
        func invalid(_ reason: String) -> TokenizerError {
            TokenizerError.invalidSerialization(kind: Self.kindName, reason: reason)
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(serialized.utf8)),
              let root = object as? [String: Any] else {
            throw invalid("not a JSON object")
        }
        guard let version = root["version"] as? Int else { throw invalid("no integer 'version'") }
        guard version == Self.serializationVersion || version == Self.idTableVersion else {
            throw invalid("version \(version) is newer than this build reads (\(Self.idTableVersion)); update SwiftGPT")
        }
        guard let pattern = root["pattern"] as? String, pattern == "gpt2" else {
            throw invalid("'pattern' must be \"gpt2\" (the only pre-tokenisation this build knows)")
        }
        guard let specials = root["special_tokens"] as? [String] else {
            throw invalid("'special_tokens' must be an array of strings")
        }
        let merges = try Self.merges(root["merges"], invalid)
        var ids: [Int32]?
        if version == Self.idTableVersion {
            guard let list = root["ids"] as? [Int], let table = Optional(list.compactMap { Int32(exactly: $0) }),
                  table.count == list.count else { throw invalid("version 2 needs an 'ids' array of integers") }
            ids = table
        }
        do {
            self.init(tables: try BPETables(merges: merges, specials: specials, ids: ids))
        } catch let error as DataError {
            throw invalid(error.message)
        }
    }

    private static func merges(_ value: Any?, _ invalid: (String) -> TokenizerError) throws -> [BPEMerge] {
        guard let list = value as? [Any] else { throw invalid("'merges' must be an array of [left, right] pairs") }
        var merges: [BPEMerge] = []
        merges.reserveCapacity(list.count)
        for (i, item) in list.enumerated() {
            guard let pair = item as? [Any], pair.count == 2, let l = pair[0] as? Int, let r = pair[1] as? Int,
                  let left = Int32(exactly: l), let right = Int32(exactly: r) else {
                throw invalid("merge \(i) is not a pair of integer ids")
            }
            merges.append(BPEMerge(left, right))
        }
        return merges
    }

    public func serialized() -> String {
        var json = "{"
        json.reserveCapacity(16 + merges.count * 12 + (tables.idTable?.ids.count ?? 0) * 6)
        if let table = tables.idTable {
            json += "\"ids\":[" + table.ids.map(String.init).joined(separator: ",") + "],"
        }
        json += "\"merges\":["
        for (i, m) in merges.enumerated() {
            if i > 0 { json += "," }
            json += "[\(m.left),\(m.right)]"
        }
        json += "],\"pattern\":\"gpt2\",\"special_tokens\":["
        json += specialTokens.map(quotedStringLiteral).joined(separator: ",")
        json += "],\"version\":\(tables.idTable == nil ? Self.serializationVersion : Self.idTableVersion)}"
        return json
    }
}
