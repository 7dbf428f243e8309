// Learning BPE merges: count the distinct pre-tokens (words) of a sample of
// text, then merge over the unique words weighted by their counts, keeping
// pair counts up to date incrementally (only the words holding the merged
// pair are touched) instead of recounting everything for every merge.
import Foundation
import GPTSupport

// MARK: - Word counts

/// How often each distinct pre-token occurs in some text: the input of BPE training.
///
/// Memory grows with the number of distinct words, not with the text.
public struct WordCounts {
    private(set) var table = WordTable(capacity: 1 << 16)
    private(set) var counts: [Int] = []
    /// Bytes of text counted.
    public private(set) var textBytes = 0

    public init() {}

    /// Number of distinct words.
    public var distinctWords: Int { table.count }

    /// Number of words counted (with repetitions).
    public var totalWords: Int { counts.reduce(0, +) }

    /// Counts the pre-tokens of `bytes`.
    public mutating func add(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let base = bytes.baseAddress else { return }
        textBytes += bytes.count
        var split = Pretokenizer(bytes)
        while let r = split.next() {
            add(base + r.lowerBound, r.count, times: 1)
        }
    }

    /// Counts the pre-tokens of `text`.
    public mutating func add(_ text: String) {
        var bytes = Array(text.utf8)
        bytes.withUnsafeMutableBufferPointer { add(UnsafeBufferPointer($0)) }
    }

    /// Adds the counts of `other`.
    public mutating func add(_ other: WordCounts) {
        textBytes += other.textBytes
        for e in 0..<other.table.count {
            other.table.withKey(e) { key in add(key.baseAddress!, key.count, times: other.counts[e]) }
        }
    }

    @inline(__always)
    private mutating func add(_ p: UnsafePointer<UInt8>, _ n: Int, times: Int) {
        let h = hashBytes(p, n)
        if let e = table.find(p, n, hash: h) {
            counts[e] += times
        } else {
            table.insert(p, n, hash: h)
            counts.append(times)
        }
    }

    /// The count of the word `word`, 0 if absent.
    public func count(of word: [UInt8]) -> Int {
        var word = word
        word.append(0) // a valid pointer even for the empty word
        return word.withUnsafeBufferPointer { w in
            let n = w.count - 1
            return table.find(w.baseAddress!, n, hash: hashBytes(w.baseAddress!, n)).map { counts[$0] } ?? 0
        }
    }
}

// MARK: - Training

/// Learns the merges of a byte-level BPE tokenizer.
public enum BPETrainer {
    /// A pair must occur at least this often (counting word repetitions) to be merged.
    public static let minPairCount = 2

    /// A tokenizer of at most `vocabSize` ids learned from `words`, with `specialTokens` as its last ids.
    ///
    /// Each step merges the most frequent adjacent pair (ties: the smaller
    /// left id, then the smaller right id), until the vocabulary is full or
    /// no pair occurs `minPairCount` times; so a small text can give a
    /// smaller vocabulary than asked for. `progress` is called every few
    /// seconds with the number of merges made so far.
    public static func train(words: WordCounts, vocabSize: Int,
                             specialTokens: [String] = [BPETokenizer.endOfText],
                             progress: ((Int) -> Void)? = nil) throws -> BPETokenizer {
        let target = vocabSize - 256 - specialTokens.count
        guard target >= 0 else {
            throw DataError("vocabulary size \(vocabSize) is too small: a byte-level BPE tokenizer needs the 256 bytes "
                            + "and \(specialTokens.count) special token(s), so at least \(256 + specialTokens.count)")
        }
        guard vocabSize <= Int(UInt32.max) else { throw DataError("vocabulary size \(vocabSize) is too large") }
        var learner = MergeLearner(words: words)
        let merges = learner.learn(count: target, progress: progress)
        return try BPETokenizer(merges: merges, specialTokens: specialTokens)
    }

    /// A tokenizer learned from `text` (for small texts and tests).
    public static func train(text: String, vocabSize: Int) throws -> BPETokenizer {
        var words = WordCounts()
        words.add(text)
        return try train(words: words, vocabSize: vocabSize)
    }
}

/// The merge loop over the distinct words of a sample.
private struct MergeLearner {
    /// Symbols of word w: symbols[start[w] ..< start[w] + length[w]] (words shrink in place as they merge).
    private var symbols: [Int32] = []
    private var start: [Int] = []
    private var length: [Int32] = []
    private var frequency: [Int] = []
    /// Occurrences of each adjacent pair, weighted by word frequency.
    private var pairCount: [UInt64: Int] = [:]
    /// The words that may hold each pair (a superset: entries go stale as words merge).
    private var pairWords: [UInt64: [Int32]] = [:]
    private var heap = PairHeap()

    init(words: WordCounts) {
        for e in 0..<words.distinctWords {
            words.table.withKey(e) { key in
                guard key.count >= 2 else { return }
                start.append(symbols.count)
                length.append(Int32(key.count))
                frequency.append(words.counts[e])
                for b in key { symbols.append(Int32(b)) }
            }
        }
        for w in 0..<start.count {
            let s = start[w]
            for k in s..<(s + Int(length[w]) - 1) {
                let pair = pairKey(symbols[k], symbols[k + 1])
                pairCount[pair, default: 0] += frequency[w]
                if pairWords[pair]?.last != Int32(w) { pairWords[pair, default: []].append(Int32(w)) }
            }
        }
        for (pair, count) in pairCount { heap.push(count: count, pair: pair) }
    }

    @inline(__always)
    private func pairKey(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(a)) << 32 | UInt64(UInt32(b)) }

    mutating func learn(count target: Int, progress: ((Int) -> Void)?) -> [BPEMerge] {
        var merges: [BPEMerge] = []
        merges.reserveCapacity(target)
        var lastReport = Date()
        while merges.count < target, let (count, pair) = heap.pop() {
            guard let current = pairCount[pair], current > 0 else { continue }
            if current != count {
                heap.push(count: current, pair: pair) // stale entry: the pair lost occurrences
                continue
            }
            if count < BPETrainer.minPairCount { break }
            let merge = BPEMerge(Int32(truncatingIfNeeded: pair >> 32), Int32(truncatingIfNeeded: pair & 0xFFFF_FFFF))
            apply(merge, as: Int32(256 + merges.count))
            merges.append(merge)
            if let progress, Date().timeIntervalSince(lastReport) > 2 {
                progress(merges.count)
                lastReport = Date()
            }
        }
        return merges
    }

    /// Replaces `merge` by `id` in every word holding it, updating the pair counts.
    private mutating func apply(_ merge: BPEMerge, as id: Int32) {
        let words = pairWords.removeValue(forKey: merge.key) ?? []
        var created: [UInt64] = []
        for w32 in words {
            let w = Int(w32)
            let s = start[w]
            let n = Int(length[w])
            var holds = false
            for k in s..<(s + n - 1) where symbols[k] == merge.left && symbols[k + 1] == merge.right {
                holds = true
                break
            }
            guard holds else { continue }
            let f = frequency[w]
            for k in s..<(s + n - 1) { decrement(pairKey(symbols[k], symbols[k + 1]), by: f) }
            let m = symbols.apply(merge, as: id, in: s..<(s + n)) - s
            length[w] = Int32(m)
            for k in s..<(s + m - 1) {
                let a = symbols[k], b = symbols[k + 1]
                let pair = pairKey(a, b)
                pairCount[pair, default: 0] += f
                if a == id || b == id {
                    if pairWords[pair]?.last != w32 {
                        if pairWords[pair] == nil { created.append(pair) }
                        pairWords[pair, default: []].append(w32)
                    }
                } else if pairWords[pair] == nil {
                    // The word held this pair before; its list was dropped when the count hit zero on the way.
                    pairWords[pair] = [w32]
                }
            }
        }
        pairCount[merge.key] = nil
        for pair in created { if let c = pairCount[pair], c > 0 { heap.push(count: c, pair: pair) } }
    }

    @inline(__always)
    private mutating func decrement(_ pair: UInt64, by f: Int) {
        guard let c = pairCount[pair] else { return }
        if c <= f {
            pairCount[pair] = nil
            pairWords[pair] = nil
        } else {
            pairCount[pair] = c - f
        }
    }
}

/// A max-heap of (count, pair): the highest count first, then the smallest pair key.
private struct PairHeap {
    private var counts: [Int] = []
    private var pairs: [UInt64] = []

    @inline(__always)
    private func before(_ i: Int, _ j: Int) -> Bool {
        counts[i] > counts[j] || (counts[i] == counts[j] && pairs[i] < pairs[j])
    }

    mutating func push(count: Int, pair: UInt64) {
        counts.append(count)
        pairs.append(pair)
        var i = counts.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard before(i, p) else { break }
            counts.swapAt(i, p)
            pairs.swapAt(i, p)
            i = p
        }
    }

    mutating func pop() -> (Int, UInt64)? {
        guard !counts.isEmpty else { return nil }
        let top = (counts[0], pairs[0])
        counts.swapAt(0, counts.count - 1)
        pairs.swapAt(0, pairs.count - 1)
        counts.removeLast()
        pairs.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var best = i
            if l < counts.count && before(l, best) { best = l }
            if r < counts.count && before(r, best) { best = r }
            if best == i { break }
            counts.swapAt(i, best)
            pairs.swapAt(i, best)
            i = best
        }
        return top
    }
}
