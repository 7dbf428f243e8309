// The one corpus writer, for both prepare paths: the header attributes, the
// /train and /val token datasets (uint16 or uint32, chunked by
// `CorpusFile.chunkTokens`) filled by appending, and their token counts.
import Foundation
import GPTSupport
import GPTTokenizers

// MARK: - Header

extension CorpusFile {
    /// Writes the root attributes every corpus starts with: format, tokenizer, sources, creation time.
    static func writeHeader(_ file: H5File, tokenizer: any Tokenizer, sources: [String]) throws {
        try file.setAttribute("format", format)
        try file.setAttribute("format_version", formatVersion)
        try file.setAttribute("vocab_size", tokenizer.vocabSize)
        try file.setAttribute("tokenizer_kind", tokenizer.kind)
        try file.setAttribute("tokenizer", tokenizer.serialized())
        try file.setAttribute("source", sources.joined(separator: "\n"))
        try file.setAttribute("created", ISO8601DateFormatter().string(from: Date()))
    }
}

// MARK: - Writer

/// Writes a corpus into an open, new HDF5 file: header, then tokens appended to /train and /val.
///
/// Tokens are buffered per split and written `bufferTokens` at a time, as the
/// element type that fits the vocabulary. `finish()` writes what is buffered
/// and the `train_tokens` / `val_tokens` attributes; the caller adds its own
/// attributes after it and flushes the file.
final class CorpusWriter {
    static let bufferTokens = 1 << 20
    let file: H5File
    private let datasets16: [H5AppendableDataset<UInt16>]
    private let datasets32: [H5AppendableDataset<UInt32>]
    private var buffers: [[Int32]] = [[], []]
    /// Tokens appended to /train and /val so far.
    private(set) var counts = [0, 0]

    /// Writes the header of a corpus of `tokenizer`'s tokens made from `sources`, and creates /train and /val.
    init(file: H5File, tokenizer: any Tokenizer, sources: [String]) throws {
        self.file = file
        try CorpusFile.writeHeader(file, tokenizer: tokenizer, sources: sources)
        func make<T: H5Scalar>(_ type: T.Type) throws -> [H5AppendableDataset<T>] {
            try CorpusSplit.allCases.map {
                try file.createExtendible($0.datasetPath, type: T.self, chunk: CorpusFile.chunkTokens)
            }
        }
        let dtype = TokenDType.fitting(vocabSize: tokenizer.vocabSize)
        datasets16 = dtype == .uint16 ? try make(UInt16.self) : []
        datasets32 = dtype == .uint32 ? try make(UInt32.self) : []
        for s in buffers.indices { buffers[s].reserveCapacity(Self.bufferTokens) }
    }

    /// Tokens appended to `split` so far.
    func count(_ split: CorpusSplit) -> Int { counts[Self.index(split)] }

    /// Appends one token to `split`.
    @inline(__always)
    func append(_ token: Int32, to split: CorpusSplit) throws {
        let s = Self.index(split)
        buffers[s].append(token)
        counts[s] += 1
        if buffers[s].count >= Self.bufferTokens { try flush(s) }
    }

    /// Appends `tokens` to `split`.
    func append(_ tokens: [Int32], to split: CorpusSplit) throws {
        let s = Self.index(split)
        buffers[s].append(contentsOf: tokens)
        counts[s] += tokens.count
        if buffers[s].count >= Self.bufferTokens { try flush(s) }
    }

    /// Writes the buffered tokens, closes the datasets and records the count of each split.
    func finish() throws {
        for s in buffers.indices { try flush(s) }
        for d in datasets16 { d.close() }
        for d in datasets32 { d.close() }
        try file.setAttribute("train_tokens", count(.train))
        try file.setAttribute("val_tokens", count(.val))
    }

    private static func index(_ split: CorpusSplit) -> Int { split == .train ? 0 : 1 }

    private func flush(_ s: Int) throws {
        if datasets16.isEmpty {
            try datasets32[s].append(buffers[s].map { UInt32(bitPattern: $0) })
        } else {
            try datasets16[s].append(buffers[s].map { UInt16(truncatingIfNeeded: $0) })
        }
        buffers[s].removeAll(keepingCapacity: true)
    }
}
