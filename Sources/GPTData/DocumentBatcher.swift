// Streaming documents: batches of document pieces cut where the BPE
// pre-token split restarts cleanly, so each piece encodes as it would within
// its document, and the pieces of a batch encode in parallel.
import Foundation
import GPTSupport
import GPTTokenizers

// MARK: - Document pieces

/// A piece of one document, cut where the pre-token split restarts cleanly.
public struct DocumentSegment: Sendable {
    /// Index of the document in the list being read.
    public let document: Int
    public let bytes: [UInt8]
    /// The last piece of its document: an end-of-text token follows.
    public let endsDocument: Bool
    /// The train split ends after this piece (splitting at a fraction of the characters).
    public let endsTrain: Bool
}

/// Reads documents in order and hands out batches of segments of about `batchBytes`.
public final class DocumentBatcher {
    static let readBytes = 1 << 20
    /// Text of one document kept while looking for a clean cut before it is cut anywhere.
    static let maxPending = 64 << 20

    public let documents: [CorpusDocument]
    private let order: [Int]
    private let batchBytes: Int
    private var splitAtCharacter: Int?
    private let byteLimit: Int
    private var nextIndex = 0
    private var stream: DocumentStream?
    private var current = -1
    private var pending: [UInt8] = []
    private var characters = 0
    /// Text bytes read so far.
    public private(set) var bytesRead = 0
    /// Documents read to the end (or cut by the byte limit).
    public private(set) var documentsDone = 0
    /// File bytes of the documents done, plus the bytes read of the current one when it is not compressed.
    var fileBytesDone: Int {
        var done = finishedFileBytes
        if let stream, stream.document.compression == .none { done += min(stream.document.fileBytes, bytesInDocument) }
        return done
    }
    private var finishedFileBytes = 0
    private var bytesInDocument = 0
    /// The batch `next` is filling, and its size in bytes.
    private var batch: [DocumentSegment] = []
    private var batchSize = 0

    /// Reads the documents `order` (indices into `documents`, default all in order).
    ///
    /// With `splitAtCharacter` the piece ending just before that character
    /// (counting the characters of all documents read, as UTF-8 lead
    /// bytes) is marked `endsTrain`. Reading stops after `byteLimit` bytes.
    public init(documents: [CorpusDocument], order: [Int]? = nil, batchBytes: Int, splitAtCharacter: Int? = nil,
         byteLimit: Int = .max) {
        self.documents = documents
        self.order = order ?? Array(documents.indices)
        self.batchBytes = batchBytes
        self.splitAtCharacter = splitAtCharacter
        self.byteLimit = byteLimit
    }

    /// The next batch, or nil when every document has been read.
    public func next() throws -> [DocumentSegment]? {
        batch = []
        batchSize = 0
        while batchSize < batchBytes {
            if stream == nil {
                guard nextIndex < order.count, bytesRead < byteLimit else { break }
                try open(order[nextIndex])
                nextIndex += 1
            }
            let old = pending.count
            let n = try readBlock()
            if let cut = trainEnd(searchingFrom: old) {
                emit(cut, endsDocument: false, endsTrain: true)
                splitAtCharacter = nil
            }
            if n == 0 || bytesRead >= byteLimit {
                endDocument(cutShort: n > 0)
            } else if pending.count >= Self.readBytes {
                let cut = pending.withUnsafeBufferPointer { Pretokenizer.safeCut(in: $0, lower: 1, upper: $0.count - 1) }
                if let cut {
                    emit(cut, endsDocument: false)
                } else if pending.count >= Self.maxPending {
                    emit(pending.count, endsDocument: false) // no clean cut in 64 MB: cut anyway
                }
            }
        }
        return batch.isEmpty ? nil : batch
    }

    // MARK: Steps of `next`

    /// Starts reading document `index`.
    private func open(_ index: Int) throws {
        current = index
        stream = try DocumentStream(documents[index])
        pending.removeAll(keepingCapacity: true)
        bytesInDocument = 0
    }

    /// Appends the next block of the current document to `pending`; returns its size (0 at the end).
    private func readBlock() throws -> Int {
        let old = pending.count
        let want = min(Self.readBytes, byteLimit - bytesRead)
        let n = want > 0 ? try stream!.read(want, into: &pending) : 0
        bytesRead += n
        bytesInDocument += n
        if n > 0, let zero = pending[old...].firstIndex(of: 0) {
            throw DataError("\(documents[current].path): contains a NUL byte at offset \(bytesInDocument - n + zero - old) "
                            + "(a binary file?); remove it or leave it out with --include")
        }
        return n
    }

    /// Where in `pending` the train split ends, if within the bytes from `start`; counts the characters read.
    private func trainEnd(searchingFrom start: Int) -> Int? {
        guard let split = splitAtCharacter else { return nil }
        // Count the characters read; cut before character number `split`.
        var i = start
        while i < pending.count {
            if pending[i] & 0xC0 != 0x80 {
                if characters == split { return i }
                characters += 1
            }
            i += 1
        }
        return nil
    }

    /// Emits the rest of the current document (or of the sample, when `cutShort`) as its last piece.
    private func endDocument(cutShort: Bool) {
        let endsTrain = splitAtCharacter != nil && characters == splitAtCharacter!
        if endsTrain { splitAtCharacter = nil }
        var keep = pending.count
        if cutShort, pending.count > 1,
           let cut = pending.withUnsafeBufferPointer({ Pretokenizer.safeCut(in: $0, lower: 1, upper: $0.count - 1) }) {
            keep = cut // a sample cut short ends at a clean cut
        }
        emit(keep, endsDocument: true, endsTrain: endsTrain)
        stream = nil
        documentsDone += 1
        finishedFileBytes += documents[current].fileBytes
    }

    /// Moves the first `count` bytes of `pending` into the batch as a piece of the current document.
    private func emit(_ count: Int, endsDocument: Bool, endsTrain: Bool = false) {
        // An exact-size copy: Array(pending[...]) could share pending's larger buffer.
        let bytes = pending.withUnsafeBufferPointer { Array(UnsafeBufferPointer(rebasing: $0[..<count])) }
        batch.append(DocumentSegment(document: current, bytes: bytes, endsDocument: endsDocument, endsTrain: endsTrain))
        pending.removeFirst(count)
        batchSize += count
    }
}

// MARK: - Encoding pieces

extension BPEEncoder {
    /// The ids of each segment's bytes.
    public func encode(segments: [DocumentSegment]) -> [[Int32]] {
        var flat: [UInt8] = []
        flat.reserveCapacity(segments.reduce(0) { $0 + $1.bytes.count })
        var ranges: [Range<Int>] = []
        for segment in segments {
            ranges.append(flat.count..<(flat.count + segment.bytes.count))
            flat.append(contentsOf: segment.bytes)
        }
        return flat.withUnsafeBufferPointer { all in
            encode(pieces: ranges.map { UnsafeBufferPointer(rebasing: all[$0]) })
        }
    }
}
