// Corpus files: one HDF5 file holding the train and val token streams of a
// dataset plus its tokenizer (format in docs/FORMATS.md). Readers stream
// token windows by hyperslab; nothing ever loads a whole split.
import Foundation

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
        var counts: [CorpusSplit: Int] = [:]
        var dtypes: [CorpusSplit: TokenDType] = [:]
        for split in CorpusSplit.allCases {
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
            counts[split] = dataset.count
            dtypes[split] = dtype
        }
        func optionalString(_ name: String) throws -> String {
            file.hasAttribute(name) ? try file.stringAttribute(name) : ""
        }
        return CorpusInfo(path: path, formatVersion: version, vocabSize: vocabSize, tokenizer: tokenizer,
                          trainTokens: counts[.train]!, valTokens: counts[.val]!, dtype: dtypes[.train]!,
                          source: try optionalString("source"), created: try optionalString("created"))
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

// MARK: - Writing a character-level corpus

/// Builds a character-level corpus from UTF-8 text files, as the lecture and nanoGPT's shakespeare_char do.
///
/// The inputs are concatenated in order; the vocabulary is their sorted
/// distinct characters, or `tokenizer` when given (e.g. the pretraining
/// corpus's, so a finetuning corpus shares its ids; any character outside it
/// is an error). The first `int(n * (1 - valFraction))` characters are the
/// train split, the rest val. Files are streamed twice (count, then encode),
/// so memory does not grow with their size. The corpus is written to a
/// temporary file in the output's directory and renamed to `output` only
/// when complete; an existing `output` is replaced only then.
@discardableResult
public func prepareCharCorpus(inputs: [String], output: String, valFraction: Double = 0.1,
                              tokenizer given: CharTokenizer? = nil) throws -> CorpusInfo {
    guard !inputs.isEmpty else { throw DataError("no input text files given") }
    guard valFraction > 0 && valFraction < 1 else {
        throw DataError("the validation fraction must be between 0 and 1 (got \(valFraction))")
    }
    let outputURL = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath()
    for input in inputs where URL(fileURLWithPath: input).standardizedFileURL.resolvingSymlinksInPath() == outputURL {
        throw DataError("\(output): the output would overwrite the input text file; choose another output path")
    }

    // Pass 1: count the characters and collect the vocabulary.
    var total = 0
    var characters = ScalarSet()
    for input in inputs {
        var fileCharacters = ScalarSet()
        try TextFileReader.forEachBlock(of: input) { scalars in
            for scalar in scalars {
                fileCharacters.insert(scalar)
                total += 1
            }
        }
        if let given {
            let unknown = fileCharacters.sorted.filter { given.id(of: $0) == nil }
            if !unknown.isEmpty {
                throw DataError("\(input): characters not in the given vocabulary: "
                                + unknown.prefix(20).map(scalarDescription).joined(separator: ", ")
                                + (unknown.count > 20 ? " and \(unknown.count - 20) more" : ""))
            }
        }
        characters.formUnion(fileCharacters)
    }
    guard total > 0 else { throw DataError("the input text is empty: \(inputs.joined(separator: ", "))") }
    let tokenizer = given ?? CharTokenizer(vocabulary: characters.sorted)
    let trainCount = Int(Double(total) * (1 - valFraction))
    guard trainCount > 0 && trainCount < total else {
        throw DataError("the input text (\(total) characters) is too short to split into train and val with a "
                        + "validation fraction of \(valFraction); give more text")
    }

    // Pass 2: encode and write.
    try AtomicFile.write(to: output) { temporary in
        let file = try H5File.create(temporary)
        defer { file.close() }
        try CorpusFile.writeHeader(file, tokenizer: tokenizer, sources: inputs)
        switch TokenDType.fitting(vocabSize: tokenizer.vocabSize) {
        case .uint16: try writeTokens(UInt16.self, file: file, inputs: inputs, tokenizer: tokenizer,
                                      trainCount: trainCount, total: total)
        case .uint32: try writeTokens(UInt32.self, file: file, inputs: inputs, tokenizer: tokenizer,
                                      trainCount: trainCount, total: total)
        }
        try file.setAttribute("train_tokens", trainCount)
        try file.setAttribute("val_tokens", total - trainCount)
        try file.flush()
    }
    return try CorpusFile.open(output)
}

/// Encodes `inputs` and appends the first `trainCount` ids to /train and the rest to /val.
private func writeTokens<T: H5Scalar & FixedWidthInteger>(_ type: T.Type, file: H5File, inputs: [String],
                                                          tokenizer: CharTokenizer, trainCount: Int,
                                                          total: Int) throws {
    let train = try file.createExtendible(CorpusSplit.train.datasetPath, type: T.self, chunk: CorpusFile.chunkTokens)
    let val = try file.createExtendible(CorpusSplit.val.datasetPath, type: T.self, chunk: CorpusFile.chunkTokens)
    defer {
        train.close()
        val.close()
    }
    let capacity = 1 << 20
    var pending: [T] = []
    pending.reserveCapacity(capacity)
    var position = 0 // tokens produced so far, including `pending`

    func flush() throws {
        let start = position - pending.count
        let trainPart = max(0, min(pending.count, trainCount - start))
        try pending.withUnsafeBufferPointer { tokens in
            try train.append(UnsafeBufferPointer(rebasing: tokens[..<trainPart]))
            try val.append(UnsafeBufferPointer(rebasing: tokens[trainPart...]))
        }
        pending.removeAll(keepingCapacity: true)
    }

    for input in inputs {
        try TextFileReader.forEachBlock(of: input) { scalars in
            for scalar in scalars {
                guard let id = tokenizer.id(of: scalar) else {
                    throw DataError("\(input): the file changed while the corpus was being prepared")
                }
                pending.append(T(truncatingIfNeeded: id))
                position += 1
                if pending.count == capacity { try flush() }
            }
        }
    }
    try flush()
    guard position == total else { throw DataError("\(inputs.joined(separator: ", ")): the input changed while "
                                                   + "the corpus was being prepared") }
}

/// A set of Unicode scalars with a table for ASCII, the common case.
private struct ScalarSet {
    private var ascii = [Bool](repeating: false, count: 128)
    private var other = Set<Unicode.Scalar>()

    mutating func insert(_ scalar: Unicode.Scalar) {
        if scalar.isASCII { ascii[Int(scalar.value)] = true } else { other.insert(scalar) }
    }

    mutating func formUnion(_ set: ScalarSet) {
        for i in 0..<128 where set.ascii[i] { ascii[i] = true }
        other.formUnion(set.other)
    }

    /// The members sorted by scalar value.
    var sorted: [Unicode.Scalar] {
        (0..<128).filter { ascii[$0] }.map { Unicode.Scalar(UInt8($0)) } + other.sorted { $0.value < $1.value }
    }
}
