// The train/val split of a corpus, one definition for both prepare paths:
// the character-level corpus cuts its text at a fraction of the characters;
// the BPE corpus does the same (`atFraction`) or holds out whole documents
// chosen by a seeded hash of their names (`byDocument`).
import Foundation
import GPTSupport

// MARK: - Plan

/// How a corpus's text goes to /train and /val.
public enum CorpusSplitPlan: Sendable, Equatable {
    /// Whole documents held out: `documents` of them if given, else `fraction` of them (at least one),
    /// those with the smallest hash of their name and the seed.
    case byDocument(fraction: Double, documents: Int?)
    /// The documents (each followed by the end token) as one text: its first `fraction` of the
    /// characters is /train and the rest /val, as the character-level corpus splits.
    case atFraction(Double)

    /// Characters of /train when a text of `total` characters is cut at `fraction`; nil when a split would be empty.
    public static func trainCharacters(total: Int, fraction: Double) -> Int? {
        let cut = Int(Double(total) * fraction)
        return cut > 0 && cut < total ? cut : nil
    }

    /// Records the plan in a corpus file's attributes (`split`, `split_seed`, `split_fraction`, `split_val_documents`).
    func writeAttributes(_ file: H5File, seed: UInt64) throws {
        switch self {
        case let .byDocument(fraction, count):
            try file.setAttribute("split", "by_document")
            try file.setAttribute("split_seed", Int(truncatingIfNeeded: seed))
            if let count { try file.setAttribute("split_val_documents", count) }
            else { try file.setAttribute("split_fraction", fraction) }
        case let .atFraction(fraction):
            try file.setAttribute("split", "at_fraction")
            try file.setAttribute("split_fraction", fraction)
        }
    }

    /// The plan applied to `documents`: the held-out documents, or the character where /val starts.
    ///
    /// `countCharacters` is called only for a split at a fraction (it reads every document).
    func resolve(_ documents: [CorpusDocument], seed: UInt64,
                 countCharacters: () throws -> Int) throws -> ResolvedSplit {
        switch self {
        case let .byDocument(fraction, count):
            return ResolvedSplit(valDocuments: try heldOutDocuments(documents, fraction: fraction, count: count,
                                                                    seed: seed), splitAtCharacter: nil)
        case let .atFraction(fraction):
            guard fraction > 0 && fraction < 1 else {
                throw DataError("the split fraction must be between 0 and 1 (got \(fraction))")
            }
            let total = try countCharacters()
            guard let cut = Self.trainCharacters(total: total, fraction: fraction) else {
                throw DataError("the input text (\(total) characters) is too short to split at \(fraction); "
                                + "give more text")
            }
            return ResolvedSplit(valDocuments: [], splitAtCharacter: cut)
        }
    }
}

/// A split plan applied to a list of documents.
struct ResolvedSplit {
    /// Indices of the documents held out for /val (split by document).
    let valDocuments: Set<Int>
    /// The character where /val starts, counting the characters of all documents in order (split at a fraction).
    let splitAtCharacter: Int?

    /// Routes document pieces, read in order, to their split.
    struct Router {
        let split: ResolvedSplit
        private var inVal = false

        init(_ split: ResolvedSplit) { self.split = split }

        /// The split of `segment`, the next piece in reading order.
        mutating func route(_ segment: DocumentSegment) -> CorpusSplit {
            let toVal = split.splitAtCharacter == nil ? split.valDocuments.contains(segment.document) : inVal
            if segment.endsTrain { inVal = true }
            return toVal ? .val : .train
        }
    }
}

// MARK: - Split by document

/// The seeded hash of a document name that chooses its split (FNV-1a, then a mix; stable across runs and machines).
public func documentHash(_ name: String, seed: UInt64) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for i in 0..<8 { h = (h ^ (seed >> (8 * UInt64(i)) & 0xFF)) &* 0x0000_0100_0000_01B3 }
    for byte in name.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
    h ^= h >> 33
    h = h &* 0xFF51_AFD7_ED55_8CCD
    h ^= h >> 33
    return h
}

/// Indices of the documents held out for /val in a split by document: `count` of them, or `fraction` (at least one).
public func heldOutDocuments(_ documents: [CorpusDocument], fraction: Double, count: Int?, seed: UInt64) throws -> Set<Int> {
    let n = documents.count
    guard n >= 2 else {
        throw DataError("a split by document needs at least 2 documents (got \(n)); for one text use "
                        + "--split-at-fraction 0.9 to cut it by characters")
    }
    let k: Int
    if let count {
        guard count >= 1 && count < n else {
            throw DataError("--val-docs must be between 1 and \(n - 1), one less than the \(n) documents (got \(count))")
        }
        k = count
    } else {
        guard fraction > 0 && fraction < 1 else {
            throw DataError("the validation fraction must be between 0 and 1 (got \(fraction))")
        }
        k = min(n - 1, max(1, Int((Double(n) * fraction).rounded())))
    }
    let ranked = documents.indices.sorted {
        (documentHash(documents[$0].name, seed: seed), $0) < (documentHash(documents[$1].name, seed: seed), $1)
    }
    return Set(ranked.prefix(k))
}
