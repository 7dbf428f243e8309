// Writing a BPE corpus from documents larger than memory: streamed in blocks
// through the parallel encoder into the corpus writer, split into train and
// val by the split plan. Memory stays bounded whatever the corpus size: a few
// blocks of text, the encoder's word caches and one buffer of tokens per split.
import Foundation
import GPTSupport
import GPTTokenizers

// MARK: - Preparing a BPE corpus

/// How `prepareBPECorpus` splits and reads its documents.
public struct BPECorpusOptions: Sendable {
    /// How documents go to /train and /val: the corpus split plan.
    public typealias Split = CorpusSplitPlan

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

// MARK: - Writing

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
    try CorpusInputs.checkOutput(output, isNot: documents.map(\.path))
    return try prepareBPECorpus(documents: documents, sources: inputs, output: output, tokenizer: tokenizer,
                                options: options)
}

/// `prepareBPECorpus` over a list of documents; `sources` is recorded in the `source` attribute.
@discardableResult
public func prepareBPECorpus(documents: [CorpusDocument], sources: [String], output: String, tokenizer: BPETokenizer,
                             options: BPECorpusOptions = BPECorpusOptions(),
                             afterBatch: ((Int) throws -> Void)? = nil) throws -> BPECorpusReport {
    let started = monotonicSeconds()
    let split = try options.split.resolve(documents, seed: options.seed) { try countCharacters(documents) }
    let totalBytes = documents.reduce(0) { $0 + $1.fileBytes }
    let progress = options.showProgress ? ProgressLine(total: totalBytes, label: "prepare", unit: .bytes,
                                                            output: ProgressLine.standardError) : nil
    progress?.logInterval = 10
    var tally = DocumentTally()
    try AtomicFile.write(to: output) { temporary in
        try InterruptCleanup.removing(temporary) {
            let file = try H5File.create(temporary)
            defer { file.close() }
            let writer = try CorpusWriter(file: file, tokenizer: tokenizer, sources: sources)
            tally = try encodeDocuments(documents, split: split, tokenizer: tokenizer, into: writer, options: options,
                                        progress: progress, afterBatch: afterBatch)
            try writer.finish()
            guard writer.count(.train) > 0 && writer.count(.val) > 0 else {
                throw DataError("the \(writer.count(.train) > 0 ? "val" : "train") split is empty; give more documents")
            }
            try tally.writeAttributes(file, documents: documents.count)
            try options.split.writeAttributes(file, seed: options.seed)
            try file.flush()
        }
    }
    progress?.finish(step: totalBytes)
    return BPECorpusReport(info: try CorpusFile.open(output), documents: documents.count,
                           trainDocuments: tally.train.count, valDocuments: tally.val.count,
                           textBytes: tally.textBytes, seconds: monotonicSeconds() - started)
}

/// Encodes the documents batch by batch (the next batch is read meanwhile) into `writer`.
///
/// Each piece's tokens go to the split `split` routes it to, and an
/// end-of-text token follows the last piece of every document.
private func encodeDocuments(_ documents: [CorpusDocument], split: ResolvedSplit, tokenizer: BPETokenizer,
                             into writer: CorpusWriter, options: BPECorpusOptions, progress: ProgressLine?,
                             afterBatch: ((Int) throws -> Void)?) throws -> DocumentTally {
    let encoder = BPEEncoder(tokenizer: tokenizer, threads: options.threads)
    let batcher = DocumentBatcher(documents: documents, batchBytes: options.batchBytes,
                                  splitAtCharacter: split.splitAtCharacter)
    let reader = Prefetcher { try batcher.next().map { ($0, batcher.fileBytesDone) } }
    var router = ResolvedSplit.Router(split)
    var tally = DocumentTally()
    var batches = 0
    while let (batch, fileBytesDone) = try reader.next() {
        for (segment, tokens) in zip(batch, encoder.encode(segments: batch)) {
            let target = router.route(segment)
            tally.add(segment, to: target)
            try writer.append(tokens, to: target)
            if segment.endsDocument { try writer.append(tokenizer.endOfTextID, to: target) }
        }
        batches += 1
        let written = writer.count(.train) + writer.count(.val)
        progress?.update(step: fileBytesDone, extra: String(format: "%.2fM tokens", Double(written) / 1e6))
        try afterBatch?(batches)
    }
    return tally
}

/// The documents that went to each split, and the bytes of text read.
private struct DocumentTally {
    var train = Set<Int>(), val = Set<Int>()
    var textBytes = 0

    mutating func add(_ segment: DocumentSegment, to split: CorpusSplit) {
        if split == .val { val.insert(segment.document) } else { train.insert(segment.document) }
        textBytes += segment.bytes.count
    }

    /// Writes the document and text counts of a BPE corpus.
    func writeAttributes(_ file: H5File, documents: Int) throws {
        try file.setAttribute("documents", documents)
        try file.setAttribute("train_documents", train.count)
        try file.setAttribute("val_documents", val.count)
        try file.setAttribute("text_bytes", textBytes)
    }
}

// MARK: - Counting characters

/// Counts the characters (UTF-8 lead bytes) of the documents, for a split at a fraction.
func countCharacters(_ documents: [CorpusDocument]) throws -> Int {
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
