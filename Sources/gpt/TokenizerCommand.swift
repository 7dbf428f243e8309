import ArgumentParser
import Foundation
import GPTData
import GPTSupport

/// `gpt tokenizer train|encode|info`: byte-level BPE tokenizers.
struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Train, measure and inspect byte-level BPE tokenizers.",
        subcommands: [Train.self, Encode.self, Info.self])

    /// Threads to use: `requested`, or every core when 0.
    static func threads(_ requested: Int) -> Int {
        requested > 0 ? requested : ProcessInfo.processInfo.activeProcessorCount
    }

    /// A BPE tokenizer from a tokenizer JSON file or a corpus or checkpoint (.h5).
    static func loadBPE(_ path: String) throws -> BPETokenizer {
        if path.lowercased().hasSuffix(".json") { return try readBPETokenizerFile(path) }
        let tokenizer = try storedTokenizer(in: path)
        guard let bpe = tokenizer as? BPETokenizer else {
            throw DataError("\(path): holds a \(tokenizer.kind) tokenizer, not a bpe one")
        }
        return bpe
    }

    // MARK: - train

    /// `gpt tokenizer train --vocab-size N --out tok.json <files or dirs>`
    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Learn BPE merges from a sample of text files or directories.",
            discussion: """
                Reads whole documents in a seeded random order until --sample-mb of text, counts their \
                GPT-2 pre-tokens, then merges the most frequent pairs until the vocabulary has \
                --vocab-size ids (256 bytes + merges + <|endoftext|>). Writes the tokenizer as JSON.
                """)

        @Option(help: "Vocabulary size: 256 byte tokens + merges + 1 special token.") var vocabSize: Int
        @Option(help: "Output tokenizer file (.json).") var out: String
        @Option(help: "Megabytes of text to learn from.") var sampleMb: Double = 100
        @Option(help: "Seed of the document order of the sample.") var seed: UInt64 = 1337
        @Option(help: "Threads counting words (0 = all cores).") var threads = 0
        @Option(help: "In directories, take only files matching this pattern (repeatable), e.g. '*.txt'.")
        var include: [String] = []
        @Argument(help: "Text files, directories or glob patterns (.gz and .xz files are decompressed).")
        var inputs: [String]

        func validate() throws {
            guard vocabSize >= 257 else { throw ValidationError("--vocab-size must be at least 257 (256 bytes + <|endoftext|>)") }
            guard sampleMb > 0 else { throw ValidationError("--sample-mb must be positive") }
            guard threads >= 0 else { throw ValidationError("--threads must be >= 0") }
        }

        func run() throws {
            do {
                let documents = try CorpusInputs.documents(inputs, include: include)
                let tokenizer = try trainTokenizer(documents: documents, vocabSize: vocabSize, sampleMB: sampleMb,
                                                   seed: seed, threads: TokenizerCommand.threads(threads))
                try writeBPETokenizerFile(tokenizer, to: out)
                print("wrote \(out): vocab \(tokenizer.vocabSize) (\(tokenizer.merges.count) merges + "
                      + "\(tokenizer.specialTokens.count) special)")
            } catch { fail(error) }
        }
    }

    // MARK: - encode

    /// `gpt tokenizer encode --tokenizer tok.json <files or dirs>`: speed and compression of a tokenizer.
    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Encode text files with a BPE tokenizer and report tokens, bytes per token and speed.",
            discussion: "Only encoding is timed (not reading). With --check the tokens are decoded and compared.")

        @Option(help: "Tokenizer: a .json file, or a corpus or checkpoint (.h5) holding a bpe tokenizer.")
        var tokenizer: String
        @Option(help: "Encoder threads (0 = all cores).") var threads = 0
        @Option(help: "Stop after this many megabytes of text (0 = all).") var maxMb: Double = 0
        @Flag(help: "Decode the tokens and check they give back the text.") var check = false
        @Option(help: "In directories, take only files matching this pattern (repeatable).") var include: [String] = []
        @Argument(help: "Text files, directories or glob patterns.") var inputs: [String]

        func run() throws {
            do {
                let tok = try TokenizerCommand.loadBPE(tokenizer)
                let documents = try CorpusInputs.documents(inputs, include: include)
                let n = TokenizerCommand.threads(threads)
                let stats = try measureEncoding(tokenizer: tok, documents: documents, threads: n,
                                                maxBytes: maxMb > 0 ? Int(maxMb * 1e6) : .max, check: check)
                let mbps = Double(stats.bytes) / 1e6 / stats.seconds
                print(String(format: "%d documents, %.1f MB -> %d tokens (%.3f bytes/token) in %.2f s: "
                             + "%.1f MB/s with %d thread(s), %.1f MB/s per thread",
                             stats.documents, Double(stats.bytes) / 1e6, stats.tokens,
                             Double(stats.bytes) / Double(max(1, stats.tokens)), stats.seconds, mbps, n,
                             mbps / Double(n)))
                if check { print("decoded tokens match the text (\(stats.bytes) bytes compared)") }
            } catch { fail(error) }
        }
    }

    // MARK: - info

    /// `gpt tokenizer info tok.json|file.h5 [--out tok.json]`
    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Describe a BPE tokenizer (from .json, or the one in a corpus or checkpoint) or export it.")

        @Argument(help: "A tokenizer .json file, or a corpus or checkpoint (.h5).") var file: String
        @Option(help: "Write the tokenizer to this .json file.") var out: String?
        @Option(help: "Merges to show from the start and the end.") var show = 10

        func run() throws {
            do {
                let tok = try TokenizerCommand.loadBPE(file)
                print("bpe tokenizer: vocab \(tok.vocabSize): 256 bytes, \(tok.merges.count) merges, special "
                      + tok.specialTokens.enumerated().map { "\($0.element) = \(256 + tok.merges.count + $0.offset)" }
                        .joined(separator: ", "))
                let m = tok.merges.count
                let shown = Array(0..<min(show, m)) + Array(max(min(show, m), m - show)..<m)
                for i in shown {
                    print(String(format: "  %5d  %@", 256 + i, visible(tok.bytes(of: Int32(256 + i))!)))
                }
                if let out {
                    try writeBPETokenizerFile(tok, to: out)
                    print("wrote \(out)")
                }
            } catch { fail(error) }
        }

        /// Token bytes as a quoted string, spaces shown as '·' and other unprintables escaped.
        private func visible(_ bytes: [UInt8]) -> String {
            var s = ""
            for scalar in String(decoding: bytes, as: UTF8.self).unicodeScalars {
                switch scalar {
                case " ": s += "·"
                case "\n": s += "\\n"
                case "\t": s += "\\t"
                default: s.unicodeScalars.append(scalar)
                }
            }
            return "'" + s + "'"
        }
    }
}

// MARK: - Training

/// Trains a BPE tokenizer on `sampleMB` of the documents, with a progress line on stderr.
///
/// Documents with no text at all (empty files) are an error: there is nothing to learn merges from.
func trainTokenizer(documents: [CorpusDocument], vocabSize: Int, sampleMB: Double, seed: UInt64,
                    threads: Int) throws -> BPETokenizer {
    let budget = Int(sampleMB * 1e6)
    let available = documents.reduce(0) { $0 + $1.fileBytes }
    let start = monotonicSeconds()
    let counting = ProgressLine(total: min(budget, available), label: "tokenizer: counting words", unit: .bytes,
                                output: ProgressLine.standardError)
    counting.logInterval = 10
    let words = try BPETrainer.countWords(documents: documents, sampleBytes: budget, seed: seed, threads: threads,
                                          progress: counting)
    guard words.textBytes > 0 else {
        counting.finish()
        let names = documents.prefix(3).map(\.path).joined(separator: ", ") + (documents.count > 3 ? ", ..." : "")
        throw DataError("no text to learn merges from: \(names) \(documents.count == 1 ? "is" : "are") empty; "
                        + "give files that hold text")
    }
    counting.finish(step: words.textBytes)
    let counted = monotonicSeconds()
    let target = vocabSize - 257
    let merging = ProgressLine(total: target, label: "tokenizer: merges", output: ProgressLine.standardError)
    merging.logInterval = 10
    let tokenizer = try BPETrainer.train(words: words, vocabSize: vocabSize) { merging.update(step: $0) }
    merging.finish(step: tokenizer.merges.count)
    FileHandle.standardError.write(Data(String(
        format: "tokenizer: %.1f MB of text, %d distinct words; counting %.1f s, %d merges %.1f s\n",
        Double(words.textBytes) / 1e6, words.distinctWords, counted - start,
        tokenizer.merges.count, monotonicSeconds() - counted).utf8))
    if tokenizer.vocabSize < vocabSize {
        FileHandle.standardError.write(Data(("tokenizer: note: only \(tokenizer.vocabSize) ids, not \(vocabSize): no "
            + "pair occurs \(BPETrainer.minPairCount) times any more; give more text for a larger vocabulary\n").utf8))
    }
    return tokenizer
}

// MARK: - Measuring the encoder

/// Size and speed of encoding some documents.
struct EncodingMeasurement: Sendable {
    let documents: Int
    let bytes: Int
    let tokens: Int
    /// Seconds spent encoding (reading excluded).
    let seconds: Double
}

/// Encodes up to `maxBytes` of the documents in batches and times the encoding alone.
///
/// With `check`, every piece's tokens are decoded and compared with its bytes.
func measureEncoding(tokenizer: BPETokenizer, documents: [CorpusDocument], threads: Int,
                     maxBytes: Int = .max, check: Bool = false) throws -> EncodingMeasurement {
    let encoder = BPEEncoder(tokenizer: tokenizer, threads: threads)
    let batcher = DocumentBatcher(documents: documents, batchBytes: 16 << 20, byteLimit: maxBytes)
    var bytes = 0, tokens = 0
    var seconds = 0.0
    while let batch = try batcher.next() {
        let start = monotonicSeconds()
        let ids = encoder.encode(segments: batch)
        seconds += monotonicSeconds() - start
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
