// Corpora larger than memory: documents (one file each, plain or gzip/xz
// compressed) streamed in blocks through the parallel BPE encoder into a
// chunked HDF5 corpus, split into train and val by document. Memory stays
// bounded whatever the corpus size: a few blocks of text, the encoder's
// word caches and one buffer of tokens per split.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// read(2) and glob(3), named apart from the methods that use them.
#if canImport(Glibc)
private let systemRead = Glibc.read
private let systemGlob = Glibc.glob
#elseif canImport(Darwin)
private let systemRead = Darwin.read
private let systemGlob = Darwin.glob
#endif

// MARK: - Documents

/// One input document: a text file, possibly gzip- or xz-compressed.
public struct CorpusDocument: Sendable, Equatable {
    public enum Compression: String, Sendable { case none, gzip, xz }

    /// Path of the file.
    public let path: String
    /// The name that chooses the document's split: its path below the directory it was found in,
    /// prefixed by that directory's name, or the file name for files given directly. It does not
    /// change when the corpus is moved or listed in another order.
    public let name: String
    /// Size of the file on disk.
    public let fileBytes: Int
    public let compression: Compression
}

/// Finding the documents named on a command line.
public enum CorpusInputs {
    /// The documents of `inputs`: files, directories (every file below them, recursively, in path
    /// order; hidden files and directories skipped) and glob patterns, in the order given.
    ///
    /// `include` (shell patterns such as `*.txt`) keeps only the files of
    /// directories and globs whose names match one; files named directly are
    /// always taken. Names ending in `.gz` or `.xz` are decompressed while read.
    public static func documents(_ inputs: [String], include: [String] = []) throws -> [CorpusDocument] {
        guard !inputs.isEmpty else { throw DataError("no input files or directories given") }
        var documents: [CorpusDocument] = []
        var seen = Set<String>()
        func add(_ path: String, name: String) throws {
            let key = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
            guard seen.insert(key).inserted else {
                throw DataError("\(path): listed twice (check overlapping directories and patterns)")
            }
            documents.append(try document(path, name: name))
        }
        func included(_ file: String) -> Bool {
            include.isEmpty || include.contains { fnmatch($0, (file as NSString).lastPathComponent, 0) == 0 }
        }
        for input in inputs {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) {
                if isDirectory.boolValue {
                    let base = URL(fileURLWithPath: input).standardizedFileURL.lastPathComponent
                    let files = try filesBelow(input).filter(included)
                    guard !files.isEmpty else {
                        throw DataError("\(input): no files in this directory"
                                        + (include.isEmpty ? "" : " match \(include.joined(separator: " or "))"))
                    }
                    for relative in files { try add((input as NSString).appendingPathComponent(relative),
                                                    name: base + "/" + relative) }
                } else {
                    try add(input, name: (input as NSString).lastPathComponent)
                }
            } else if input.contains(where: { "*?[".contains($0) }) {
                let matches = try glob(input).filter(included)
                guard !matches.isEmpty else { throw DataError("\(input): no files match this pattern") }
                for path in matches { try add(path, name: (path as NSString).lastPathComponent) }
            } else {
                throw DataError("\(input): no such file or directory")
            }
        }
        return documents
    }

    /// The document for the file at `path`.
    private static func document(_ path: String, name: String) throws -> CorpusDocument {
        let lower = path.lowercased()
        if lower.hasSuffix(".tar") || lower.contains(".tar.") || lower.hasSuffix(".tgz") || lower.hasSuffix(".zip") {
            throw DataError("\(path): is an archive; unpack it first (tar -xf / unzip) and give the directory")
        }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let size = attributes[.size] as? NSNumber else {
            throw DataError("\(path): cannot read the file's size")
        }
        guard attributes[.type] as? FileAttributeType == .typeRegular else {
            throw DataError("\(path): not a regular file")
        }
        let compression: CorpusDocument.Compression = lower.hasSuffix(".gz") ? .gzip : lower.hasSuffix(".xz") ? .xz : .none
        return CorpusDocument(path: path, name: name, fileBytes: size.intValue, compression: compression)
    }

    /// Relative paths of the regular files below `directory`, sorted, hidden entries skipped.
    private static func filesBelow(_ directory: String) throws -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: directory) else {
            throw DataError("\(directory): cannot list the directory")
        }
        var files: [String] = []
        while let relative = walker.nextObject() as? String {
            if (relative as NSString).lastPathComponent.hasPrefix(".") {
                walker.skipDescendants()
                continue
            }
            if walker.fileAttributes?[.type] as? FileAttributeType == .typeRegular { files.append(relative) }
        }
        return files.sorted()
    }

    /// The paths matching the shell pattern `pattern`, sorted.
    private static func glob(_ pattern: String) throws -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        let status = systemGlob(pattern, 0, nil, &result)
        if status == GLOB_NOMATCH { return [] }
        guard status == 0 else { throw DataError("\(pattern): cannot expand the pattern (glob error \(status))") }
        var paths: [String] = []
        for i in 0..<Int(result.gl_pathc) {
            if let p = result.gl_pathv[i] {
                let path = String(cString: p)
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                    paths.append(path)
                }
            }
        }
        return paths.sorted()
    }
}

// MARK: - Reading documents

/// A document's bytes, read block by block (through `gzip -dc` or `xz -dc` for compressed files).
final class DocumentStream {
    let document: CorpusDocument
    private var fd: Int32 = -1
    private var process: Process?

    init(_ document: CorpusDocument) throws {
        self.document = document
        switch document.compression {
        case .none:
            fd = open(document.path, O_RDONLY)
            guard fd >= 0 else { throw DataError("\(document.path): cannot open: \(errnoDescription())") }
        case .gzip, .xz:
            let tool = document.compression == .gzip ? "gzip" : "xz"
            guard let executable = DocumentStream.findExecutable(tool) else {
                throw DataError("\(document.path): needs `\(tool)` to decompress, which is not installed "
                                + "(apt-get install \(tool == "xz" ? "xz-utils" : "gzip")), or decompress it first")
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = ["-dc", "--", document.path]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            do { try process.run() } catch {
                throw DataError("\(document.path): cannot start \(tool): \(error.localizedDescription)")
            }
            self.process = process
            fd = dup(pipe.fileHandleForReading.fileDescriptor)
            try? pipe.fileHandleForReading.close()
        }
    }

    deinit {
        if fd >= 0 { close(fd) }
        if let process, process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// A reusable read buffer.
    private var scratch = [UInt8](repeating: 0, count: DocumentBatcher.readBytes)

    /// Appends up to `count` bytes to `buffer`; returns how many (0 at the end of the document).
    func read(_ count: Int, into buffer: inout [UInt8]) throws -> Int {
        if scratch.count < count { scratch = [UInt8](repeating: 0, count: count) }
        var got = 0
        while got < count {
            let n = scratch.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress! + got, count - got) }
            if n < 0 {
                if errno == EINTR { continue }
                throw DataError("\(document.path): read failed: \(errnoDescription())")
            }
            if n == 0 { break }
            got += n
        }
        buffer.append(contentsOf: scratch[..<got])
        if got == 0, let process {
            process.waitUntilExit()
            guard process.terminationReason == .exit && process.terminationStatus == 0 else {
                throw DataError("\(document.path): `\(process.executableURL!.lastPathComponent) -dc` failed "
                                + "(status \(process.terminationStatus)); the file is damaged or not "
                                + "\(document.compression.rawValue)-compressed")
            }
        }
        return got
    }

    private static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return (path.split(separator: ":").map(String.init) + ["/usr/bin", "/bin"])
            .map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

/// A piece of one document, cut where the pre-token split restarts cleanly.
struct DocumentSegment {
    /// Index of the document in the list being read.
    let document: Int
    let bytes: [UInt8]
    /// The last piece of its document: an end-of-text token follows.
    let endsDocument: Bool
    /// The train split ends after this piece (splitting at a fraction of the characters).
    let endsTrain: Bool
}

/// Reads documents in order and hands out batches of segments of about `batchBytes`.
final class DocumentBatcher {
    static let readBytes = 1 << 20
    /// Text of one document kept while looking for a clean cut before it is cut anywhere.
    static let maxPending = 64 << 20

    let documents: [CorpusDocument]
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
    private(set) var bytesRead = 0
    /// Documents read to the end (or cut by the byte limit).
    private(set) var documentsDone = 0
    /// File bytes of the documents done, plus the bytes read of the current one when it is not compressed.
    var fileBytesDone: Int {
        var done = finishedFileBytes
        if let stream, stream.document.compression == .none { done += min(stream.document.fileBytes, bytesInDocument) }
        return done
    }
    private var finishedFileBytes = 0
    private var bytesInDocument = 0

    /// Reads the documents `order` (indices into `documents`, default all in order).
    ///
    /// With `splitAtCharacter` the piece ending just before that character
    /// (counting the characters of all documents read, as UTF-8 lead
    /// bytes) is marked `endsTrain`. Reading stops after `byteLimit` bytes.
    init(documents: [CorpusDocument], order: [Int]? = nil, batchBytes: Int, splitAtCharacter: Int? = nil,
         byteLimit: Int = .max) {
        self.documents = documents
        self.order = order ?? Array(documents.indices)
        self.batchBytes = batchBytes
        self.splitAtCharacter = splitAtCharacter
        self.byteLimit = byteLimit
    }

    /// The next batch, or nil when every document has been read.
    func next() throws -> [DocumentSegment]? {
        var batch: [DocumentSegment] = []
        var size = 0
        func emit(_ count: Int, endsDocument: Bool, endsTrain: Bool = false) {
            // An exact-size copy: Array(pending[...]) could share pending's larger buffer.
            let bytes = pending.withUnsafeBufferPointer { Array(UnsafeBufferPointer(rebasing: $0[..<count])) }
            batch.append(DocumentSegment(document: current, bytes: bytes, endsDocument: endsDocument, endsTrain: endsTrain))
            pending.removeFirst(count)
            size += count
        }
        while size < batchBytes {
            if stream == nil {
                guard nextIndex < order.count, bytesRead < byteLimit else { break }
                current = order[nextIndex]
                nextIndex += 1
                stream = try DocumentStream(documents[current])
                pending.removeAll(keepingCapacity: true)
                bytesInDocument = 0
            }
            let old = pending.count
            let want = min(Self.readBytes, byteLimit - bytesRead)
            let n = want > 0 ? try stream!.read(want, into: &pending) : 0
            bytesRead += n
            bytesInDocument += n
            if n > 0, let zero = pending[old...].firstIndex(of: 0) {
                throw DataError("\(documents[current].path): contains a NUL byte at offset \(bytesInDocument - n + zero - old) "
                                + "(a binary file?); remove it or leave it out with --include")
            }
            if let split = splitAtCharacter {
                // Count the characters read; cut before character number `split`.
                var i = old
                while i < pending.count {
                    if pending[i] & 0xC0 != 0x80 {
                        if characters == split { break }
                        characters += 1
                    }
                    i += 1
                }
                if i < pending.count {
                    emit(i, endsDocument: false, endsTrain: true)
                    splitAtCharacter = nil
                }
            }
            if n == 0 || bytesRead >= byteLimit {
                // End of the document (or of the sample): the rest is its last piece.
                let endsTrain = splitAtCharacter != nil && characters == splitAtCharacter!
                if endsTrain { splitAtCharacter = nil }
                var keep = pending.count
                if n > 0, pending.count > 1,
                   let cut = pending.withUnsafeBufferPointer({ Pretokenizer.safeCut(in: $0, lower: 1, upper: $0.count - 1) }) {
                    keep = cut // a sample cut short ends at a clean cut
                }
                emit(keep, endsDocument: true, endsTrain: endsTrain)
                stream = nil
                documentsDone += 1
                finishedFileBytes += documents[current].fileBytes
                continue
            }
            if pending.count >= Self.readBytes {
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
}

// MARK: - Tokenizer from a file

/// The tokenizer stored in a corpus or checkpoint file (its `tokenizer_kind` and `tokenizer` attributes).
public func storedTokenizer(in path: String) throws -> any Tokenizer {
    let file = try H5File.open(path)
    defer { file.close() }
    let format = file.hasAttribute("format") ? try file.stringAttribute("format") : ""
    guard format == CorpusFile.format || format == Checkpoint.format else {
        throw DataError("\(path): neither a swiftgpt corpus nor a checkpoint (format '\(format)'); give a file made by "
                        + "`gpt prepare` or `gpt train`")
    }
    for name in ["tokenizer_kind", "tokenizer"] where !file.hasAttribute(name) {
        throw DataError("\(path): has no '\(name)' attribute")
    }
    do {
        return try makeTokenizer(kind: try file.stringAttribute("tokenizer_kind"),
                                 serialized: try file.stringAttribute("tokenizer"))
    } catch let error as TokenizerError {
        throw DataError("\(path): \(error)")
    }
}

/// The tokenizer in a tokenizer file (the JSON `gpt tokenizer train` writes).
public func readBPETokenizerFile(_ path: String) throws -> BPETokenizer {
    let text: String
    do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
        throw DataError("\(path): cannot read the tokenizer file: \(error.localizedDescription)")
    }
    do { return try BPETokenizer(serialized: text) } catch { throw DataError("\(path): \(error)") }
}

// MARK: - Training a tokenizer on a sample

extension BPETrainer {
    /// Counts the words of up to `sampleBytes` of the documents, taken whole in a seeded random order.
    ///
    /// The documents are read in the order of a hash of their names and
    /// `seed`, so the sample is spread over the corpus and the same for the
    /// same files; the last one is cut short at the budget.
    public static func countWords(documents: [CorpusDocument], sampleBytes: Int, seed: UInt64 = 0, threads: Int,
                                  progress: StreamProgress? = nil) throws -> WordCounts {
        let order = documents.indices.sorted {
            (documentHash(documents[$0].name, seed: seed ^ 0x5A4D_504C), $0)
                < (documentHash(documents[$1].name, seed: seed ^ 0x5A4D_504C), $1)
        }
        let threads = max(1, threads)
        let batcher = DocumentBatcher(documents: documents, order: order, batchBytes: threads * (4 << 20),
                                      byteLimit: sampleBytes)
        var perThread = [WordCounts](repeating: WordCounts(), count: threads)
        while let batch = try batcher.next() {
            // Cut segments further so every thread gets work, then count concurrently.
            var pieces: [(segment: Int, range: Range<Int>)] = []
            for (s, segment) in batch.enumerated() {
                var start = 0
                while start < segment.bytes.count {
                    var end = segment.bytes.count
                    if end - start > BPEEncoder.pieceBytes * 3 / 2 {
                        end = segment.bytes.withUnsafeBufferPointer { b in
                            let rest = UnsafeBufferPointer(rebasing: b[start...])
                            return start + (Pretokenizer.safeCut(in: rest, lower: 1, upper: BPEEncoder.pieceBytes)
                                ?? Pretokenizer.firstSafeCut(in: rest, from: BPEEncoder.pieceBytes + 1) ?? rest.count)
                        }
                    }
                    pieces.append((s, start..<end))
                    start = end
                }
            }
            let work = pieces
            perThread.withUnsafeMutableBufferPointer { counts in
                let out = counts.baseAddress!
                DispatchQueue.concurrentPerform(iterations: threads) { t in
                    var i = t
                    while i < work.count {
                        batch[work[i].segment].bytes.withUnsafeBufferPointer { b in
                            (out + t).pointee.add(UnsafeBufferPointer(rebasing: b[work[i].range]))
                        }
                        i += threads
                    }
                }
            }
            progress?.update(done: batcher.bytesRead, tokens: nil)
        }
        var total = perThread[0]
        for t in 1..<threads { total.add(perThread[t]) }
        return total
    }
}

// MARK: - Preparing a BPE corpus

/// How `prepareBPECorpus` splits and reads its documents.
public struct BPECorpusOptions: Sendable {
    /// How documents go to /train and /val.
    public enum Split: Sendable, Equatable {
        /// Whole documents held out: `documents` of them if given, else `fraction` of them (at least one),
        /// those with the smallest hash of their name and the seed.
        case byDocument(fraction: Double, documents: Int?)
        /// The documents (each followed by the end token) as one text: its first `fraction` of the
        /// characters is /train and the rest /val, as the character-level corpus splits.
        case atFraction(Double)
    }

    public var split: Split = .byDocument(fraction: 0.1, documents: nil)
    public var seed: UInt64 = 1337
    /// Encoder threads.
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Print a progress line on stderr.
    public var showProgress = false
    /// Text bytes encoded per batch (spread over the threads).
    public var batchBytes = 8 << 20

    public init() {}
}

/// What `prepareBPECorpus` made.
public struct BPECorpusReport: Sendable {
    public let info: CorpusInfo
    public let documents: Int
    public let trainDocuments: Int
    public let valDocuments: Int
    /// Bytes of text read (after decompression).
    public let textBytes: Int
    public let seconds: Double
}

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

/// Counts the characters (UTF-8 lead bytes) of the documents, for a split at a fraction.
private func countCharacters(_ documents: [CorpusDocument]) throws -> Int {
    var total = 0
    var buffer: [UInt8] = []
    for document in documents {
        let stream = try DocumentStream(document)
        while true {
            buffer.removeAll(keepingCapacity: true)
            let n = try stream.read(DocumentBatcher.readBytes, into: &buffer)
            if n == 0 { break }
            for b in buffer where b & 0xC0 != 0x80 { total += 1 }
        }
    }
    return total
}

/// Builds a BPE corpus from documents (files, directories, globs), streaming them in blocks.
///
/// Every document's tokens are followed by the end-of-text token, in input
/// order, in the split the options choose. The corpus is written to a
/// temporary file and renamed into place only when complete (an interrupt
/// by SIGINT or SIGTERM removes the temporary file); an existing output is
/// replaced only then.
@discardableResult
public func prepareBPECorpus(inputs: [String], output: String, tokenizer: BPETokenizer,
                             options: BPECorpusOptions = BPECorpusOptions(),
                             include: [String] = []) throws -> BPECorpusReport {
    let documents = try CorpusInputs.documents(inputs, include: include)
    let outputURL = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath()
    for d in documents where URL(fileURLWithPath: d.path).standardizedFileURL.resolvingSymlinksInPath() == outputURL {
        throw DataError("\(output): the output would overwrite the input \(d.path); choose another output path")
    }
    return try prepareBPECorpus(documents: documents, sources: inputs, output: output, tokenizer: tokenizer,
                                options: options)
}

/// `prepareBPECorpus` over a list of documents; `sources` is recorded in the `source` attribute.
@discardableResult
public func prepareBPECorpus(documents: [CorpusDocument], sources: [String], output: String, tokenizer: BPETokenizer,
                             options: BPECorpusOptions = BPECorpusOptions(),
                             afterBatch: ((Int) throws -> Void)? = nil) throws -> BPECorpusReport {
    let started = Date()
    var valSet = Set<Int>()
    var splitAt: Int?
    switch options.split {
    case let .byDocument(fraction, count):
        valSet = try heldOutDocuments(documents, fraction: fraction, count: count, seed: options.seed)
    case let .atFraction(fraction):
        guard fraction > 0 && fraction < 1 else {
            throw DataError("the split fraction must be between 0 and 1 (got \(fraction))")
        }
        let total = try countCharacters(documents)
        let cut = Int(Double(total) * fraction)
        guard cut > 0 && cut < total else {
            throw DataError("the input text (\(total) characters) is too short to split at \(fraction); give more text")
        }
        splitAt = cut
    }
    let progress = options.showProgress
        ? StreamProgress(label: "prepare", total: documents.reduce(0) { $0 + $1.fileBytes }, unit: .bytes) : nil
    var trainDocuments = 0, valDocuments = 0, textBytes = 0

    try AtomicFile.write(to: output) { temporary in
        try InterruptCleanup.removing(temporary) {
            let file = try H5File.create(temporary)
            defer { file.close() }
            try CorpusFile.writeHeader(file, tokenizer: tokenizer, sources: sources)
            let writer = try SplitWriter(file: file, dtype: TokenDType.fitting(vocabSize: tokenizer.vocabSize))
            let encoder = BPEEncoder(tokenizer: tokenizer, threads: options.threads)
            let batcher = DocumentBatcher(documents: documents, batchBytes: options.batchBytes, splitAtCharacter: splitAt)
            let reader = Prefetcher { try batcher.next().map { ($0, batcher.fileBytesDone) } }
            var inVal = false
            var batches = 0
            var seenTrain = Set<Int>(), seenVal = Set<Int>()
            while let (batch, fileBytesDone) = try reader.next() {
                let ids = encoder.encode(segments: batch)
                for (segment, tokens) in zip(batch, ids) {
                    let toVal = splitAt == nil ? valSet.contains(segment.document) : inVal
                    if toVal { seenVal.insert(segment.document) } else { seenTrain.insert(segment.document) }
                    try writer.append(tokens, val: toVal)
                    if segment.endsDocument { try writer.append([tokenizer.endOfTextID], val: toVal) }
                    if segment.endsTrain { inVal = true }
                    textBytes += segment.bytes.count
                }
                batches += 1
                progress?.update(done: fileBytesDone, tokens: writer.trainCount + writer.valCount)
                try afterBatch?(batches)
            }
            try writer.finish()
            trainDocuments = seenTrain.count
            valDocuments = seenVal.count
            guard writer.trainCount > 0 && writer.valCount > 0 else {
                throw DataError("the \(writer.trainCount > 0 ? "val" : "train") split is empty; give more documents")
            }
            try file.setAttribute("train_tokens", writer.trainCount)
            try file.setAttribute("val_tokens", writer.valCount)
            try file.setAttribute("documents", documents.count)
            try file.setAttribute("train_documents", trainDocuments)
            try file.setAttribute("val_documents", valDocuments)
            try file.setAttribute("text_bytes", textBytes)
            switch options.split {
            case let .byDocument(fraction, count):
                try file.setAttribute("split", "by_document")
                try file.setAttribute("split_seed", Int(truncatingIfNeeded: options.seed))
                if let count { try file.setAttribute("split_val_documents", count) }
                else { try file.setAttribute("split_fraction", fraction) }
            case let .atFraction(fraction):
                try file.setAttribute("split", "at_fraction")
                try file.setAttribute("split_fraction", fraction)
            }
            try file.flush()
        }
    }
    progress?.finish(done: documents.reduce(0) { $0 + $1.fileBytes })
    return BPECorpusReport(info: try CorpusFile.open(output), documents: documents.count,
                           trainDocuments: trainDocuments, valDocuments: valDocuments, textBytes: textBytes,
                           seconds: Date().timeIntervalSince(started))
}

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
    var valSet = Set<Int>()
    var splitAt: Int?
    switch options.split {
    case let .byDocument(fraction, count):
        valSet = try heldOutDocuments(documents, fraction: fraction, count: count, seed: options.seed)
    case let .atFraction(fraction):
        splitAt = Int(Double(try countCharacters(documents)) * fraction)
    }
    let train = try SplitDecoder(path: path, split: .train, tokenizer: tokenizer)
    let val = try SplitDecoder(path: path, split: .val, tokenizer: tokenizer)
    let batcher = DocumentBatcher(documents: documents, batchBytes: options.batchBytes, splitAtCharacter: splitAt)
    var inVal = false
    var compared = 0
    while let batch = try batcher.next() {
        for segment in batch {
            let toVal = splitAt == nil ? valSet.contains(segment.document) : inVal
            let decoder = toVal ? val : train
            let where_ = "\(documents[segment.document].path) (in /\(toVal ? "val" : "train"))"
            try decoder.expect(segment.bytes, context: where_)
            if segment.endsDocument { try decoder.expectEndOfText(context: where_) }
            if segment.endsTrain { inVal = true }
            compared += segment.bytes.count
        }
    }
    for decoder in [train, val] { try decoder.expectEnd() }
    return compared
}

// MARK: - Measuring the encoder

/// Size and speed of encoding some documents.
public struct EncodingMeasurement: Sendable {
    public let documents: Int
    public let bytes: Int
    public let tokens: Int
    /// Seconds spent encoding (reading excluded).
    public let seconds: Double
}

/// Encodes up to `maxBytes` of the documents in batches and times the encoding alone.
///
/// With `check`, every piece's tokens are decoded and compared with its bytes.
public func measureEncoding(tokenizer: BPETokenizer, documents: [CorpusDocument], threads: Int,
                            maxBytes: Int = .max, check: Bool = false) throws -> EncodingMeasurement {
    let encoder = BPEEncoder(tokenizer: tokenizer, threads: threads)
    let batcher = DocumentBatcher(documents: documents, batchBytes: 16 << 20, byteLimit: maxBytes)
    var bytes = 0, tokens = 0
    var seconds = 0.0
    while let batch = try batcher.next() {
        let start = DispatchTime.now().uptimeNanoseconds
        let ids = encoder.encode(segments: batch)
        seconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        for (segment, t) in zip(batch, ids) {
            bytes += segment.bytes.count
            tokens += t.count
            if check && tokenizer.decodeBytes(t) != segment.bytes {
                throw DataError("\(documents[segment.document].path): the tokens do not decode to the text")
            }
        }
    }
    return EncodingMeasurement(documents: batcher.documentsDone, bytes: bytes, tokens: tokens, seconds: seconds)
}

// MARK: - Writing and reading token streams

/// Appends tokens to /train and /val through a buffer per split, as uint16 or uint32.
private final class SplitWriter {
    static let bufferTokens = 1 << 20
    private let datasets16: [H5AppendableDataset<UInt16>]
    private let datasets32: [H5AppendableDataset<UInt32>]
    private var buffers: [[Int32]] = [[], []]
    private(set) var trainCount = 0
    private(set) var valCount = 0

    init(file: H5File, dtype: TokenDType) throws {
        func make<T: H5Scalar>(_ type: T.Type) throws -> [H5AppendableDataset<T>] {
            try CorpusSplit.allCases.map {
                try file.createExtendible($0.datasetPath, type: T.self, chunk: CorpusFile.chunkTokens)
            }
        }
        datasets16 = dtype == .uint16 ? try make(UInt16.self) : []
        datasets32 = dtype == .uint32 ? try make(UInt32.self) : []
        buffers[0].reserveCapacity(Self.bufferTokens)
        buffers[1].reserveCapacity(Self.bufferTokens)
    }

    func append(_ tokens: [Int32], val: Bool) throws {
        let s = val ? 1 : 0
        buffers[s].append(contentsOf: tokens)
        if val { valCount += tokens.count } else { trainCount += tokens.count }
        if buffers[s].count >= Self.bufferTokens { try flush(s) }
    }

    private func flush(_ s: Int) throws {
        if datasets16.isEmpty {
            try datasets32[s].append(buffers[s].map { UInt32(bitPattern: $0) })
        } else {
            try datasets16[s].append(buffers[s].map { UInt16(truncatingIfNeeded: $0) })
        }
        buffers[s].removeAll(keepingCapacity: true)
    }

    func finish() throws {
        try flush(0)
        try flush(1)
        for d in datasets16 { d.close() }
        for d in datasets32 { d.close() }
    }
}

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

/// Produces the next item on a background thread while the caller works on the current one.
private final class Prefetcher<Item>: @unchecked Sendable {
    private let produce: () throws -> Item?
    private let queue = DispatchQueue(label: "swiftgpt.prefetch")
    private let ready = DispatchSemaphore(value: 0)
    private var result: Result<Item?, Error> = .success(nil)
    private var running = false

    init(_ produce: @escaping () throws -> Item?) {
        self.produce = produce
        start()
    }

    private func start() {
        running = true
        queue.async {
            self.result = Result { try self.produce() }
            self.ready.signal()
        }
    }

    /// The next item (nil at the end); starts producing the one after.
    func next() throws -> Item? {
        guard running else { return nil }
        ready.wait()
        running = false
        guard let item = try result.get() else { return nil }
        start()
        return item
    }

    deinit {
        if running { ready.wait() } // let a running read finish before its state goes away
    }
}

extension BPEEncoder {
    /// The ids of each segment's bytes.
    func encode(segments: [DocumentSegment]) -> [[Int32]] {
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

// MARK: - Interrupts

/// Removes a temporary file when the process is interrupted (SIGINT, SIGTERM) while `body` runs.
public enum InterruptCleanup {
    /// Runs `body`; on SIGINT or SIGTERM meanwhile, `path` is deleted and the process exits with status 130 or 143.
    public static func removing<R>(_ path: String, _ body: () throws -> R) rethrows -> R {
        let signals: [Int32] = [SIGINT, SIGTERM]
        var sources: [DispatchSourceSignal] = []
        let cPath = strdup(path)!
        for sig in signals {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                unlink(cPath)
                let message = "\ninterrupted: removed the unfinished \(path)\n"
                _ = message.withCString { write(2, $0, strlen($0)) }
                _exit(128 + sig)
            }
            source.resume()
            sources.append(source)
        }
        defer {
            for source in sources { source.cancel() }
            for sig in signals { signal(sig, SIG_DFL) }
            free(cPath)
        }
        return try body()
    }
}

// MARK: - Progress

/// A progress line on stderr for long streaming jobs: amount done, rate and time left.
///
/// On a terminal the line is redrawn every second; otherwise a line is
/// printed every ten seconds, so logs stay short.
public final class StreamProgress {
    public enum Unit: Sendable { case bytes, count }

    private let label: String
    private let total: Int
    private let unit: Unit
    private let start = Date()
    private var last = Date.distantPast
    private let terminal = isatty(2) != 0

    public init(label: String, total: Int, unit: Unit) {
        self.label = label
        self.total = total
        self.unit = unit
    }

    /// Reports `done` of `total` (and `tokens` written so far, if any); prints when it is time.
    public func update(done: Int, tokens: Int?) {
        let now = Date()
        guard now.timeIntervalSince(last) >= (terminal ? 1 : 10) else { return }
        last = now
        draw(line(done: done, tokens: tokens, elapsed: now.timeIntervalSince(start)), final: false)
    }

    /// Prints the final line.
    public func finish(done: Int, tokens: Int? = nil) {
        draw(line(done: done, tokens: tokens, elapsed: Date().timeIntervalSince(start)), final: true)
    }

    private func amount(_ n: Int) -> String {
        unit == .bytes ? String(format: "%.1f MB", Double(n) / 1e6) : "\(n)"
    }

    private func line(done: Int, tokens: Int?, elapsed: Double) -> String {
        var parts = ["\(label): \(amount(done)) of \(amount(total))"
                     + (total > 0 ? String(format: " (%.0f%%)", 100 * Double(done) / Double(total)) : "")]
        if let tokens { parts.append(String(format: "%.2fM tokens", Double(tokens) / 1e6)) }
        if elapsed > 0 {
            let rate = Double(done) / elapsed
            parts.append(unit == .bytes ? String(format: "%.1f MB/s", rate / 1e6) : String(format: "%.0f/s", rate))
            if done > 0 && done < total { parts.append("ETA " + clock(Double(total - done) / rate)) }
        }
        parts.append("elapsed " + clock(elapsed))
        return parts.joined(separator: ", ")
    }

    private func clock(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds < 1e7 else { return "-" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                         : String(format: "%d:%02d", s / 60, s % 60)
    }

    private func draw(_ text: String, final: Bool) {
        let out: String
        if terminal {
            out = "\r\u{1B}[K" + text + (final ? "\n" : "")
        } else {
            out = text + "\n"
        }
        FileHandle.standardError.write(Data(out.utf8))
    }
}
