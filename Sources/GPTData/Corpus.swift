// Corpus files: one HDF5 file holding the train and val token streams of a
// dataset plus its tokenizer (format in docs/FORMATS.md). Readers stream
// token windows by hyperslab; nothing ever loads a whole split.
import Foundation
import GPTSupport
// Corpora and checkpoints hand out tokenizers (`CorpusInfo.tokenizer`), so
// code that reads them sees the tokenizer types without a second import.
@_exported import GPTTokenizers

// MARK: - Format

/// One of the two token streams of a corpus.
public enum CorpusSplit: String, CaseIterable, Sendable {
    case train, val

    /// Path of the split's dataset in the file.
    public var datasetPath: String { "/" + rawValue }
}

/// Element type of the token datasets.
public enum TokenDType: String, Sendable {
    case uint16, uint32

    /// uint16 when every id fits (vocab_size <= 65536), else uint32.
    public static func fitting(vocabSize: Int) -> TokenDType { vocabSize <= 1 << 16 ? .uint16 : .uint32 }
}

/// What a corpus file holds, read from its attributes and dataset shapes.
public struct CorpusInfo: Sendable {
    public let path: String
    public let formatVersion: Int
    public let vocabSize: Int
    public let tokenizer: any Tokenizer
    public let trainTokens: Int
    public let valTokens: Int
    public let dtype: TokenDType
    /// Names of the text files the corpus was made from, one a line ("" if not recorded).
    public let source: String
    /// ISO 8601 creation time ("" if not recorded).
    public let created: String

    /// Number of tokens in `split`.
    public func tokenCount(_ split: CorpusSplit) -> Int { split == .train ? trainTokens : valTokens }
}

/// Reading and checking corpus files.
public enum CorpusFile {
    public static let format = "swiftgpt-corpus"
    public static let formatVersion = 1
    /// Tokens per HDF5 chunk of the token datasets.
    public static let chunkTokens = 1 << 16

    /// Opens the corpus at `path` and checks its attributes and datasets (not every token; see `validate`).
    public static func open(_ path: String) throws -> CorpusInfo {
        try info(of: try H5File.open(path))
    }

    /// Like `open`, and also checks every token id is below vocab_size, reading `scanTokens` at a time.
    public static func validate(_ path: String, scanTokens: Int = 1 << 20) throws -> CorpusInfo {
        let file = try H5File.open(path)
        let info = try info(of: file)
        var buffer = [UInt32](repeating: 0, count: max(1, scanTokens))
        for split in CorpusSplit.allCases {
            let dataset = try file.openDataset(split.datasetPath, chunkCacheBytes: 0)
            var offset = 0
            while offset < dataset.count {
                let n = min(buffer.count, dataset.count - offset)
                try buffer.withUnsafeMutableBufferPointer { b in
                    try dataset.readSlice(offset: offset, count: n, into: b.baseAddress!)
                    if let bad = b[..<n].firstIndex(where: { Int($0) >= info.vocabSize }) {
                        throw badToken(path, split, position: offset + bad, id: Int(b[bad]), vocabSize: info.vocabSize)
                    }
                }
                offset += n
            }
        }
        return info
    }

    static func badToken(_ path: String, _ split: CorpusSplit, position: Int, id: Int, vocabSize: Int) -> DataError {
        DataError("\(path): token id \(id) at \(split.datasetPath)[\(position)] is not below vocab_size \(vocabSize); "
                  + "the file is damaged or its tokens were made with another tokenizer")
    }

    /// Reads and checks everything but the token values.
    static func info(of file: H5File) throws -> CorpusInfo {
        let path = file.path
        let version = try checkFormat(of: file)
        let vocabSize = try file.intAttribute("vocab_size")
        guard vocabSize >= 1 else { throw DataError("\(path): vocab_size must be at least 1 (got \(vocabSize))") }
        let tokenizer: any Tokenizer
        do {
            tokenizer = try makeTokenizer(kind: try file.stringAttribute("tokenizer_kind"),
                                          serialized: try file.stringAttribute("tokenizer"))
        } catch let error as TokenizerError {
            throw DataError("\(path): \(error)")
        }
        guard tokenizer.vocabSize == vocabSize else {
            throw DataError("\(path): the tokenizer has \(tokenizer.vocabSize) tokens but vocab_size is \(vocabSize)")
        }
        let train = try splitDataset(.train, of: file, vocabSize: vocabSize)
        let val = try splitDataset(.val, of: file, vocabSize: vocabSize)
        func optionalString(_ name: String) throws -> String {
            file.hasAttribute(name) ? try file.stringAttribute(name) : ""
        }
        return CorpusInfo(path: path, formatVersion: version, vocabSize: vocabSize, tokenizer: tokenizer,
                          trainTokens: train.count, valTokens: val.count, dtype: train.dtype,
                          source: try optionalString("source"), created: try optionalString("created"))
    }

    /// Checks the `format` attribute and that the required attributes are there; returns the format version.
    private static func checkFormat(of file: H5File) throws -> Int {
        let path = file.path
        guard file.hasAttribute("format") else {
            throw DataError("\(path): not a swiftgpt corpus (no 'format' attribute); make one with `gpt prepare`")
        }
        let format = try file.stringAttribute("format")
        guard format == Self.format else {
            throw DataError("\(path): not a swiftgpt corpus (its format is '\(format)', expected '\(Self.format)')")
        }
        for name in ["format_version", "vocab_size", "tokenizer_kind", "tokenizer"] where !file.hasAttribute(name) {
            throw DataError("\(path): corpus is missing the '\(name)' attribute; prepare it again")
        }
        let version = try file.intAttribute("format_version")
        guard version <= Self.formatVersion else {
            throw DataError("\(path): corpus format_version \(version) is newer than this build reads "
                            + "(\(Self.formatVersion)); update SwiftGPT")
        }
        return version
    }

    /// Checks the dataset of `split` (1-D, a token type that fits `vocabSize`, not empty, its count as recorded).
    private static func splitDataset(_ split: CorpusSplit, of file: H5File,
                                     vocabSize: Int) throws -> (count: Int, dtype: TokenDType) {
        let path = file.path
        let name = split.datasetPath
        guard file.exists(name) else {
            throw DataError("\(path): missing dataset '\(name)' (a corpus needs /train and /val); prepare it again")
        }
        let dataset = try file.openDataset(name, chunkCacheBytes: 0)
        guard dataset.shape.count == 1 else {
            throw DataError("\(path): dataset '\(name)' has shape \(dataset.shape); token datasets are 1-D")
        }
        guard let dtype = TokenDType(rawValue: dataset.elementType.rawValue) else {
            throw DataError("\(path): dataset '\(name)' holds \(dataset.elementType); token ids must be uint16 "
                            + "or uint32")
        }
        if dtype == .uint16 && vocabSize > 1 << 16 {
            throw DataError("\(path): dataset '\(name)' is uint16 but vocab_size \(vocabSize) needs uint32")
        }
        guard dataset.count > 0 else {
            throw DataError("\(path): split '\(split.rawValue)' is empty; prepare the corpus from more text")
        }
        let attribute = "\(split.rawValue)_tokens"
        if file.hasAttribute(attribute) {
            let recorded = try file.intAttribute(attribute)
            guard recorded == dataset.count else {
                throw DataError("\(path): \(attribute) says \(recorded) but '\(name)' holds \(dataset.count) tokens; "
                                + "the file is incomplete, prepare it again")
            }
        }
        return (dataset.count, dtype)
    }
}

// MARK: - Reading token windows

/// One split of a corpus, open for reading token windows by hyperslab.
///
/// Memory use is the HDF5 chunk cache, whatever the corpus size. Every
/// window read is checked against vocab_size, so a damaged file cannot
/// produce an out-of-range embedding index.
public final class TokenSource {
    public let info: CorpusInfo
    public let split: CorpusSplit
    /// Tokens in the split.
    public let count: Int
    private let dataset: H5Dataset
    private let vocabSize: Int32

    /// Opens `split` of the corpus at `path`; `chunkCacheBytes` sizes the HDF5 chunk cache.
    public init(path: String, split: CorpusSplit,
                chunkCacheBytes: Int = H5Dataset.defaultChunkCacheBytes) throws {
        let file = try H5File.open(path)
        self.info = try CorpusFile.info(of: file)
        self.split = split
        self.dataset = try file.openDataset(split.datasetPath, chunkCacheBytes: chunkCacheBytes)
        self.count = dataset.count
        self.vocabSize = Int32(clamping: info.vocabSize)
    }

    /// Reads tokens `offset..<offset+count` into `destination` as Int32.
    public func read(offset: Int, count n: Int, into destination: UnsafeMutablePointer<Int32>) throws {
        try dataset.readSlice(offset: offset, count: n, into: destination)
        let tokens = UnsafeBufferPointer(start: destination, count: n)
        if let bad = tokens.firstIndex(where: { $0 < 0 || $0 >= vocabSize }) {
            // HDF5 clamps uint32 ids above Int32.max to Int32.max, which is caught here too.
            throw CorpusFile.badToken(info.path, split, position: offset + bad, id: Int(tokens[bad]),
                                      vocabSize: info.vocabSize)
        }
    }

    /// The contiguous range of token positions owned by `rank` of `world` ranks.
    ///
    /// Ranges are disjoint, cover the split, and differ in length by at most one.
    public func shard(rank: Int, world: Int) -> Range<Int> {
        precondition(world >= 1 && (0..<world).contains(rank), "rank \(rank) is not in a world of \(world)")
        return count * rank / world ..< count * (rank + 1) / world
    }
}
