// Byte-level BPE tokenizer, GPT-2 style: the 256 byte values are the base
// alphabet, so any input round-trips (invalid UTF-8 included); text is split
// into GPT-2 pre-tokens and merges are applied inside each; special tokens
// (the end-of-document token) take the last ids. Encoding runs over many
// threads with a word -> ids cache per thread.
import Foundation
import GPTSupport

// MARK: - Merges

/// One learned merge: the tokens `left` and `right`, adjacent, become a new token.
public struct BPEMerge: Hashable, Sendable {
    public let left: Int32
    public let right: Int32

    public init(_ left: Int32, _ right: Int32) {
        self.left = left
        self.right = right
    }

    /// The pair as one 64-bit key.
    @inline(__always)
    var key: UInt64 { UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right)) }
}

extension Array where Element == Int32 {
    /// Replaces each occurrence of `merge`'s pair in `self[range]`, left to right, by `id`, moving the rest up.
    ///
    /// Returns the new end of the range; the elements from there to `range.upperBound` are left over.
    @inline(__always)
    mutating func apply(_ merge: BPEMerge, as id: Int32, in range: Range<Int>) -> Int {
        var read = range.lowerBound
        var write = range.lowerBound
        while read < range.upperBound {
            if read + 1 < range.upperBound && self[read] == merge.left && self[read + 1] == merge.right {
                self[write] = id
                read += 2
            } else {
                self[write] = self[read]
                read += 1
            }
            write += 1
        }
        return write
    }
}

// MARK: - Tokenizer

/// Byte-level BPE with GPT-2's pre-tokenisation and an end-of-document special token.
///
/// Ids: `0...255` are the bytes; merge `i` (0-based, in learned order) makes
/// id `256 + i`, the concatenation of its two tokens; the special tokens
/// follow, `<|endoftext|>` last. `encodeChecked` (prompts) turns special
/// token text into the special ids; `encode(bytes:)` (corpus text) never
/// does, so a document cannot forge a document boundary. Serialized form:
/// JSON `{"merges":[[l,r],...],"pattern":"gpt2","special_tokens":[...],"version":1}`.
public struct BPETokenizer: Tokenizer, Equatable {
    public static let kindName = "bpe"
    /// The end-of-document token that separates documents in a corpus.
    public static let endOfText = "<|endoftext|>"
    /// Version of the serialized form.
    public static let serializationVersion = 1

    /// The merges in learned order.
    public var merges: [BPEMerge] { tables.merges }
    /// The special tokens in id order (ids `256 + merges.count ...`).
    public var specialTokens: [String] { tables.specials }
    public var kind: String { Self.kindName }
    public var vocabSize: Int { 256 + tables.merges.count + tables.specials.count }
    /// The id of `<|endoftext|>`.
    public var endOfTextID: Int32 { tables.endOfTextID }

    let tables: BPETables

    /// A tokenizer with these merges and special tokens (which must include `<|endoftext|>`, conventionally last).
    public init(merges: [BPEMerge], specialTokens: [String] = [BPETokenizer.endOfText]) throws {
        tables = try BPETables(merges: merges, specials: specialTokens)
    }

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
        guard version == Self.serializationVersion else {
            throw invalid("version \(version) is not \(Self.serializationVersion); update SwiftGPT")
        }
        guard let pattern = root["pattern"] as? String, pattern == "gpt2" else {
            throw invalid("'pattern' must be \"gpt2\" (the only pre-tokenisation this build knows)")
        }
        guard let specials = root["special_tokens"] as? [String] else {
            throw invalid("'special_tokens' must be an array of strings")
        }
        guard let list = root["merges"] as? [Any] else { throw invalid("'merges' must be an array of [left, right] pairs") }
        var merges: [BPEMerge] = []
        merges.reserveCapacity(list.count)
        for (i, item) in list.enumerated() {
            guard let pair = item as? [Any], pair.count == 2, let l = pair[0] as? Int, let r = pair[1] as? Int,
                  let left = Int32(exactly: l), let right = Int32(exactly: r) else {
                throw invalid("merge \(i) is not a pair of integer ids")
            }
            merges.append(BPEMerge(left, right))
        }
        do {
            tables = try BPETables(merges: merges, specials: specials)
        } catch let error as DataError {
            throw invalid(error.message)
        }
    }

    public static func == (a: BPETokenizer, b: BPETokenizer) -> Bool {
        a.tables === b.tables || (a.merges == b.merges && a.specialTokens == b.specialTokens)
    }

    public func serialized() -> String {
        var json = "{\"merges\":["
        json.reserveCapacity(16 + merges.count * 12)
        for (i, m) in merges.enumerated() {
            if i > 0 { json += "," }
            json += "[\(m.left),\(m.right)]"
        }
        json += "],\"pattern\":\"gpt2\",\"special_tokens\":["
        json += specialTokens.map(quotedStringLiteral).joined(separator: ",")
        json += "],\"version\":\(Self.serializationVersion)}"
        return json
    }

    // MARK: Encoding

    /// Token ids of `text`; occurrences of a special token's text become its id.
    public func encodeChecked(_ text: String) throws -> [Int32] {
        let utf8 = Array(text.utf8)
        return utf8.withUnsafeBufferPointer { bytes in
            var ids: [Int32] = []
            let encoder = BPEEncoder(tokenizer: self, threads: 1)
            var start = 0
            var i = 0
            let n = bytes.count
            outer: while i < n {
                for (s, special) in tables.specialBytes.enumerated() where bytes[i] == special.first
                    && n - i >= special.count && memcmp(bytes.baseAddress! + i, special, special.count) == 0 {
                    ids += encoder.encode(UnsafeBufferPointer(rebasing: bytes[start..<i]))
                    ids.append(Int32(256 + tables.merges.count + s))
                    i += special.count
                    start = i
                    continue outer
                }
                i += 1
            }
            ids += encoder.encode(UnsafeBufferPointer(rebasing: bytes[start..<n]))
            return ids
        }
    }

    /// Token ids of arbitrary bytes (no special tokens are recognised), over `threads` threads.
    ///
    /// The result does not depend on `threads`.
    public func encode(bytes: [UInt8], threads: Int = 1) -> [Int32] {
        bytes.withUnsafeBufferPointer { BPEEncoder(tokenizer: self, threads: threads).encode($0) }
    }

    // MARK: Decoding

    /// The bytes of token `id`, or nil for an id outside the vocabulary.
    public func bytes(of id: Int32) -> [UInt8]? {
        guard id >= 0 && Int(id) < vocabSize else { return nil }
        let range = tables.tokenRange(Int(id))
        return Array(tables.tokenBytes[range])
    }

    /// The bytes of `tokens`; ids outside the vocabulary become the bytes of U+FFFD.
    public func decodeBytes(_ tokens: [Int32]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(tokens.count * 4)
        let replacement: [UInt8] = [0xEF, 0xBF, 0xBD]
        let vocab = vocabSize
        tables.tokenBytes.withUnsafeBufferPointer { all in
            for t in tokens {
                if t >= 0 && Int(t) < vocab {
                    out.append(contentsOf: UnsafeBufferPointer(rebasing: all[tables.tokenRange(Int(t))]))
                } else {
                    out.append(contentsOf: replacement)
                }
            }
        }
        return out
    }

    /// The text of `tokens`; bytes that are not valid UTF-8 (and unknown ids) become U+FFFD.
    public func decode(_ tokens: [Int32]) -> String {
        String(decoding: decodeBytes(tokens), as: UTF8.self)
    }
}


// MARK: - Tables

/// The immutable lookup tables of a tokenizer, shared by its copies and by encoder threads.
final class BPETables: @unchecked Sendable {
    let merges: [BPEMerge]
    let specials: [String]
    let specialBytes: [[UInt8]]
    let endOfTextID: Int32
    /// Rank (merge index) of each mergeable pair.
    let ranks: [UInt64: Int32]
    /// The bytes of every token, back to back; token `i` is `tokenBytes[tokenOffsets[i]..<tokenOffsets[i + 1]]`.
    let tokenBytes: [UInt8]
    let tokenOffsets: [Int]

    init(merges: [BPEMerge], specials: [String]) throws {
        var ranks: [UInt64: Int32] = [:]
        ranks.reserveCapacity(merges.count)
        var bytes: [UInt8] = Array(0...255)
        var offsets = Array(0...256)
        guard merges.count <= Int(Int32.max) - 256 - specials.count else {
            throw DataError("too many merges (\(merges.count))")
        }
        for (i, m) in merges.enumerated() {
            let limit = 256 + i
            guard m.left >= 0 && m.left < limit && m.right >= 0 && m.right < limit else {
                throw DataError("merge \(i) ([\(m.left), \(m.right)]) uses an id that is not a byte (0...255) or an "
                                + "earlier merge (256...\(limit - 1))")
            }
            guard ranks.updateValue(Int32(i), forKey: m.key) == nil else {
                throw DataError("merge \(i) ([\(m.left), \(m.right)]) repeats an earlier merge")
            }
            bytes.append(contentsOf: bytes[offsets[Int(m.left)]..<offsets[Int(m.left) + 1]])
            bytes.append(contentsOf: bytes[offsets[Int(m.right)]..<offsets[Int(m.right) + 1]])
            offsets.append(bytes.count)
        }
        guard Set(specials).count == specials.count else { throw DataError("a special token is listed twice") }
        guard let eot = specials.firstIndex(of: BPETokenizer.endOfText) else {
            throw DataError("the special tokens must include \(BPETokenizer.endOfText)")
        }
        for s in specials {
            guard !s.isEmpty else { throw DataError("a special token is empty") }
            bytes.append(contentsOf: s.utf8)
            offsets.append(bytes.count)
        }
        self.merges = merges
        self.specials = specials
        self.specialBytes = specials.map { Array($0.utf8) }
        self.endOfTextID = Int32(256 + merges.count + eot)
        self.ranks = ranks
        self.tokenBytes = bytes
        self.tokenOffsets = offsets
    }

    @inline(__always)
    func tokenRange(_ id: Int) -> Range<Int> { tokenOffsets[id]..<tokenOffsets[id + 1] }

    /// The rank of merging `left` and `right`, or nil.
    @inline(__always)
    func rank(_ left: Int32, _ right: Int32) -> Int32? {
        ranks[UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))]
    }
}

// MARK: - Merging one word

extension BPETables {
    /// Words at most this long are merged by the simple loop, longer ones with a heap.
    static let shortWord = 32

    /// Appends the ids of one pre-token (`count` >= 1 bytes) to `out`: the merges applied in rank order.
    func mergeWord(_ word: UnsafePointer<UInt8>, _ count: Int, into out: inout [Int32], scratch: inout [Int32]) {
        if count <= Self.shortWord {
            mergeShortWord(word, count, into: &out, scratch: &scratch)
        } else {
            mergeLongWord(word, count, into: &out)
        }
    }

    /// The reference algorithm: repeatedly merge every occurrence of the lowest-ranked adjacent pair.
    ///
    /// O(n^2) lookups for n bytes, fastest for the short words that make up text.
    func mergeShortWord(_ word: UnsafePointer<UInt8>, _ count: Int, into out: inout [Int32], scratch parts: inout [Int32]) {
        parts.removeAll(keepingCapacity: true)
        for i in 0..<count { parts.append(Int32(word[i])) }
        while parts.count > 1 {
            var best = Int32.max
            for k in 0..<(parts.count - 1) {
                if let r = rank(parts[k], parts[k + 1]), r < best { best = r }
            }
            if best == Int32.max { break }
            let w = parts.apply(merges[Int(best)], as: Int32(256) + best, in: 0..<parts.count)
            parts.removeLast(parts.count - w)
        }
        out.append(contentsOf: parts)
    }

    /// The same result in O(n log n): a linked list of tokens and a heap of candidate merges by (rank, position).
    ///
    /// Merging the lowest rank first, leftmost first, is what the reference
    /// does: a merge's result only takes part in merges of higher rank.
    func mergeLongWord(_ word: UnsafePointer<UInt8>, _ count: Int, into out: inout [Int32]) {
        var token = (0..<count).map { Int32(word[$0]) }
        var next = (0..<count).map { $0 + 1 } // count: none
        var prev = (0..<count).map { $0 - 1 } // -1: none
        var heap = MinHeap()
        for k in 0..<(count - 1) {
            if let r = rank(token[k], token[k + 1]) { heap.push(UInt64(r) << 32 | UInt64(k)) }
        }
        while let top = heap.pop() {
            let r = Int32(truncatingIfNeeded: top >> 32)
            let k = Int(top & 0xFFFF_FFFF)
            // Stale: the token at k was absorbed (prev link cut) or the pair changed.
            guard token[k] >= 0, next[k] < count, rank(token[k], token[next[k]]) == r else { continue }
            let right = next[k]
            token[k] = 256 + r
            token[right] = -1
            next[k] = next[right]
            if next[k] < count { prev[next[k]] = k }
            if prev[k] >= 0, let rp = rank(token[prev[k]], token[k]) { heap.push(UInt64(rp) << 32 | UInt64(prev[k])) }
            if next[k] < count, let rn = rank(token[k], token[next[k]]) { heap.push(UInt64(rn) << 32 | UInt64(k)) }
        }
        var k = 0
        while k < count {
            out.append(token[k])
            k = next[k]
        }
    }
}

/// A binary min-heap of 64-bit keys.
struct MinHeap {
    private var items: [UInt64] = []

    var isEmpty: Bool { items.isEmpty }

    mutating func push(_ x: UInt64) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if items[p] <= x { break }
            items[i] = items[p]
            i = p
        }
        items[i] = x
    }

    mutating func pop() -> UInt64? {
        guard let top = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            var i = 0
            let n = items.count
            while true {
                let l = 2 * i + 1
                if l >= n { break }
                let c = l + 1 < n && items[l + 1] < items[l] ? l + 1 : l
                if items[c] >= last { break }
                items[i] = items[c]
                i = c
            }
            items[i] = last
        }
        return top
    }
}

// MARK: - Encoder

/// Encodes bytes with a tokenizer over several threads, caching the ids of words it has seen.
///
/// Input is cut into pieces at safe points (see `Pretokenizer.safeCut`),
/// the pieces are encoded concurrently, each thread with its own cache, and
/// the ids concatenated in order, so the result is the same for any number
/// of threads. Keep one encoder for a long input to keep its caches warm;
/// an encoder is used from one thread at a time.
public final class BPEEncoder {
    /// Entries a thread's word cache holds before it is cleared.
    public static let cacheEntries = 1 << 18
    /// Bytes per piece when cutting input for the threads.
    public static let pieceBytes = 1 << 18

    public let tokenizer: BPETokenizer
    public let threads: Int
    private var caches: [WordCache]

    public init(tokenizer: BPETokenizer, threads: Int) {
        self.tokenizer = tokenizer
        self.threads = max(1, threads)
        caches = (0..<max(1, threads)).map { _ in WordCache(tables: tokenizer.tables) }
    }

    /// The ids of `bytes` (no special tokens recognised).
    public func encode(_ bytes: UnsafeBufferPointer<UInt8>) -> [Int32] {
        encode(pieces: [bytes])[0]
    }

    /// The ids of each of `pieces` (encoded independently), each split further across the threads.
    public func encode(pieces: [UnsafeBufferPointer<UInt8>]) -> [[Int32]] {
        // Cut every piece into sub-pieces of about pieceBytes at safe points.
        var work: [(piece: Int, bytes: UnsafeBufferPointer<UInt8>)] = []
        for (p, bytes) in pieces.enumerated() {
            for range in Pretokenizer.pieces(of: bytes, pieceBytes: Self.pieceBytes) {
                work.append((p, UnsafeBufferPointer(rebasing: bytes[range])))
            }
        }
        var results = [[Int32]](repeating: [], count: work.count)
        if threads == 1 || work.count == 1 {
            for (i, w) in work.enumerated() { results[i] = caches[0].encode(w.bytes) }
        } else {
            let workers = min(threads, work.count)
            let caches = self.caches
            let work = work
            results.withUnsafeMutableBufferPointer { results in
                let out = results.baseAddress!
                concurrentStrided(count: work.count, threads: workers) { t, i in
                    (out + i).pointee = caches[t].encode(work[i].bytes)
                }
            }
        }
        var joined = [[Int32]](repeating: [], count: pieces.count)
        for (i, w) in work.enumerated() {
            if joined[w.piece].isEmpty { joined[w.piece] = results[i] } else { joined[w.piece] += results[i] }
        }
        return joined
    }
}

/// One thread's encoder: the pre-token split, the merge loop and a word -> ids cache.
final class WordCache: @unchecked Sendable {
    private let tables: BPETables
    private var table = WordTable(capacity: 1 << 10)
    /// ids of entry e: ids[idStart[e] ..< idStart[e + 1]].
    private var ids: [Int32] = []
    private var idStart: [Int] = [0]
    private var scratch: [Int32] = []
    private var merged: [Int32] = []

    init(tables: BPETables) { self.tables = tables }

    /// The ids of `bytes`.
    func encode(_ bytes: UnsafeBufferPointer<UInt8>) -> [Int32] {
        var out: [Int32] = []
        out.reserveCapacity(bytes.count / 3 + 16)
        guard let base = bytes.baseAddress else { return out }
        var split = Pretokenizer(bytes)
        while let r = split.next() {
            let p = base + r.lowerBound
            let n = r.count
            if n == 1 {
                out.append(Int32(p[0]))
                continue
            }
            let h = hashBytes(p, n)
            if let e = table.find(p, n, hash: h) {
                let (a, b) = (idStart[e], idStart[e + 1])
                if b - a == 1 { out.append(ids[a]) } else { out.append(contentsOf: ids[a..<b]) }
                continue
            }
            merged.removeAll(keepingCapacity: true)
            tables.mergeWord(p, n, into: &merged, scratch: &scratch)
            out.append(contentsOf: merged)
            if table.count >= BPEEncoder.cacheEntries {
                table.removeAll()
                ids.removeAll(keepingCapacity: true)
                idStart.removeAll(keepingCapacity: true)
                idStart.append(0)
            }
            table.insert(p, n, hash: h)
            ids.append(contentsOf: merged)
            idStart.append(ids.count)
        }
        return out
    }
}
