// Verifying a BPE corpus: its tokens decoded and compared byte for byte
// with the documents it was made from, both sides streamed.
import Foundation
import GPTSupport
import GPTTokenizers

// MARK: - Verifying

/// Checks that the tokens of a BPE corpus decode to its documents, each followed by the end token.
///
/// Reads the documents again as `prepareBPECorpus` did (same inputs and
/// options) and compares every byte, streaming both sides. Returns the
/// number of bytes compared.
@discardableResult
public func verifyBPECorpus(_ path: String, documents: [CorpusDocument], options: BPECorpusOptions) throws -> Int {
    let info = try CorpusFile.open(path)
    guard let tokenizer = info.tokenizer as? BPETokenizer else {
        throw DataError("\(path): not a BPE corpus (tokenizer \(info.tokenizer.kind))")
    }
    let split = try options.split.resolve(documents, seed: options.seed) { try countCharacters(documents) }
    let decoders = [CorpusSplit.train: try SplitDecoder(path: path, split: .train, tokenizer: tokenizer),
                    CorpusSplit.val: try SplitDecoder(path: path, split: .val, tokenizer: tokenizer)]
    let batcher = DocumentBatcher(documents: documents, batchBytes: options.batchBytes,
                                  splitAtCharacter: split.splitAtCharacter)
    var router = ResolvedSplit.Router(split)
    var compared = 0
    while let batch = try batcher.next() {
        for segment in batch {
            let target = router.route(segment)
            let decoder = decoders[target]!
            let context = "\(documents[segment.document].path) (in \(target.datasetPath))"
            try decoder.expect(segment.bytes, context: context)
            if segment.endsDocument { try decoder.expectEndOfText(context: context) }
            compared += segment.bytes.count
        }
    }
    for split in CorpusSplit.allCases { try decoders[split]!.expectEnd() }
    return compared
}

// MARK: - Decoding a split

/// Decodes one split of a corpus token by token, for comparison with the text it came from.
private final class SplitDecoder {
    private let source: TokenSource
    private let tokenizer: BPETokenizer
    private var position = 0
    private var window = [Int32](repeating: 0, count: 1 << 16)
    private var windowStart = 0
    private var windowCount = 0
    /// Decoded bytes not yet compared.
    private var bytes: [UInt8] = []

    init(path: String, split: CorpusSplit, tokenizer: BPETokenizer) throws {
        source = try TokenSource(path: path, split: split, chunkCacheBytes: 1 << 20)
        self.tokenizer = tokenizer
    }

    /// The next token, or nil at the end of the split.
    private func nextToken() throws -> Int32? {
        if position == windowStart + windowCount {
            guard position < source.count else { return nil }
            windowStart = position
            windowCount = min(window.count, source.count - position)
            try window.withUnsafeMutableBufferPointer { try source.read(offset: position, count: windowCount, into: $0.baseAddress!) }
        }
        position += 1
        return window[position - 1 - windowStart]
    }

    func expect(_ expected: [UInt8], context: String) throws {
        while bytes.count < expected.count {
            guard let t = try nextToken() else {
                throw DataError("\(context): the corpus ends before the text does")
            }
            guard t != tokenizer.endOfTextID else {
                throw DataError("\(context): an end-of-text token at \(source.split.datasetPath)[\(position - 1)] "
                                + "comes before the document ends")
            }
            bytes += tokenizer.bytes(of: t)!
        }
        guard bytes[..<expected.count].elementsEqual(expected) else {
            let offset = zip(bytes, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? 0
            throw DataError("\(context): decoded tokens differ from the text near token \(position) (byte \(offset) of a piece)")
        }
        bytes.removeFirst(expected.count)
    }

    func expectEndOfText(context: String) throws {
        guard bytes.isEmpty else { throw DataError("\(context): the decoded tokens run past the end of the document") }
        guard let t = try nextToken(), t == tokenizer.endOfTextID else {
            throw DataError("\(context): no end-of-text token after the document")
        }
    }

    func expectEnd() throws {
        guard bytes.isEmpty, try nextToken() == nil else {
            throw DataError("\(source.info.path): \(source.split.datasetPath) holds more tokens than the documents give")
        }
    }
}
