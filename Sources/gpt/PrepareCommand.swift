import ArgumentParser
import Foundation
import GPTData
import GPTSupport

/// `gpt prepare --tokenizer char|bpe ... --out corpus.h5 <inputs>`
struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Tokenize text into an HDF5 corpus with /train and /val.",
        discussion: """
            char: one token per character of the text files, concatenated; /val is the end of the text.
              gpt prepare --tokenizer char --out shakespeare_char.h5 input.txt
            bpe: byte-level BPE over documents (one file = one document; directories are walked, \
            .gz/.xz files decompressed), each followed by <|endoftext|>, streamed in bounded memory; \
            /val is whole documents chosen by a seeded hash of their names.
              gpt prepare --tokenizer bpe --tokenizer-file tok.json --out corpus.h5 corpus_dir/
              gpt prepare --tokenizer bpe --vocab-size 8192 --out corpus.h5 corpus_dir/
            Finetuning data with the tokenizer of a pretraining corpus or checkpoint, split like the char corpus:
              gpt prepare --tokenizer-from runs/pretrain/best.h5 --split-at-fraction 0.9 --out ft.h5 input.txt
            """)

    @Option(help: "Tokenizer: char, or bpe (needs --tokenizer-file, --vocab-size or --tokenizer-from).")
    var tokenizer: String?
    @Option(help: "bpe: the tokenizer file (.json) made by `gpt tokenizer train`.") var tokenizerFile: String?
    @Option(help: "bpe: train a tokenizer of this vocabulary size first, on a sample of the train documents.")
    var vocabSize: Int?
    @Option(help: "With --vocab-size: megabytes of text the tokenizer learns from.") var sampleMb: Double = 100
    @Option(help: "With --vocab-size: also write the trained tokenizer to this .json file.") var saveTokenizer: String?
    @Option(help: "Reuse the tokenizer stored in this corpus or checkpoint (.h5).") var tokenizerFrom: String?
    @Option(help: "Output corpus file (.h5).") var out: String
    @Option(help: "Fraction held out as /val: bpe, of the documents (by hash); char, the end of the text.")
    var valFraction: Double?
    @Option(help: "bpe: hold out exactly this many documents as /val instead.") var valDocs: Int?
    @Option(help: "/train is this fraction of the characters, /val the rest (the inputs as one text).")
    var splitAtFraction: Double?
    @Option(help: "bpe: seed of the document split (and of the tokenizer sample).") var seed: UInt64 = 1337
    @Option(help: "bpe: encoder threads (0 = all cores).") var threads = 0
    @Option(help: "bpe: in directories and globs, take only files matching this pattern (repeatable), e.g. '*.txt'.")
    var include: [String] = []
    @Flag(help: "bpe: afterwards, decode every token and compare with the documents.") var verify = false
    @Flag(help: "No progress line on stderr.") var quiet = false
    @Argument(help: "Input text files (bpe: also directories and glob patterns).") var inputs: [String]

    func validate() throws {
        if let t = tokenizer, t != "char" && t != "bpe" {
            throw ValidationError("unknown tokenizer \"\(t)\"; use --tokenizer char or --tokenizer bpe")
        }
        if valFraction != nil && splitAtFraction != nil {
            throw ValidationError("give --val-fraction or --split-at-fraction, not both")
        }
        if valDocs != nil && (valFraction != nil || splitAtFraction != nil) {
            throw ValidationError("--val-docs chooses the split by itself; leave out --val-fraction and --split-at-fraction")
        }
        if let f = valFraction, !(f > 0 && f < 1) { throw ValidationError("--val-fraction must be in (0, 1)") }
        if let f = splitAtFraction, !(f > 0 && f < 1) { throw ValidationError("--split-at-fraction must be in (0, 1)") }
        if let n = valDocs, n < 1 { throw ValidationError("--val-docs must be at least 1") }
        if let n = vocabSize, n < 257 { throw ValidationError("--vocab-size must be at least 257 (256 bytes + <|endoftext|>)") }
        guard sampleMb > 0 else { throw ValidationError("--sample-mb must be positive") }
        guard threads >= 0 else { throw ValidationError("--threads must be >= 0") }
        let sources = [tokenizerFile, vocabSize.map(String.init), tokenizerFrom].compactMap { $0 }
        if sources.count > 1 {
            throw ValidationError("give one of --tokenizer-file, --vocab-size and --tokenizer-from")
        }
        if saveTokenizer != nil && vocabSize == nil { throw ValidationError("--save-tokenizer goes with --vocab-size") }
        if tokenizer == "char" && (tokenizerFile != nil || vocabSize != nil) {
            throw ValidationError("--tokenizer-file and --vocab-size are for --tokenizer bpe")
        }
        if tokenizer == "bpe" && sources.isEmpty {
            throw ValidationError("--tokenizer bpe needs --tokenizer-file tok.json, --vocab-size N or --tokenizer-from file.h5")
        }
    }

    func run() throws {
        do {
            for input in inputs {
                var isDirectory: ObjCBool = false
                let isPattern = input.contains("*") || input.contains("?")
                guard isPattern || FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) else {
                    throw DataError("input text file \(input) not found; give the path of a UTF-8 text file")
                }
                if !isPattern, !isDirectory.boolValue,
                   let size = try? FileManager.default.attributesOfItem(atPath: input)[.size] as? Int, size == 0 {
                    throw DataError("input text file \(input) is empty; give a file with the training text")
                }
            }
            // The tokenizer: named, from a file, or implied by the options.
            var given: (any Tokenizer)?
            if let path = tokenizerFrom {
                let stored = try storedTokenizer(in: path)
                if let t = tokenizer, t != stored.kind {
                    throw DataError("\(path) holds a \(stored.kind) tokenizer, but --tokenizer \(t) was asked for")
                }
                given = stored
            } else if let path = tokenizerFile {
                given = try readBPETokenizerFile(path)
            }
            let kind = given?.kind ?? tokenizer ?? (vocabSize != nil ? "bpe" : "char")
            if kind == "char" {
                try prepareChar(given as? CharTokenizer)
            } else {
                try prepareBPE(given as? BPETokenizer)
            }
        } catch { fail(error) }
    }

    // MARK: - Character level

    private func prepareChar(_ given: CharTokenizer?) throws {
        if valDocs != nil || verify || !include.isEmpty {
            throw DataError("--val-docs, --verify and --include are for --tokenizer bpe; the char corpus splits the text "
                            + "at --val-fraction from its end")
        }
        let fraction = splitAtFraction.map { 1 - $0 } ?? valFraction ?? 0.1
        let info: CorpusInfo
        do {
            info = try prepareCharCorpus(inputs: inputs, output: out, valFraction: fraction, tokenizer: given)
        } catch let error as DataError where error.message.contains("not UTF-8") || error.message.contains("NUL") {
            throw DataError("\(error); prepare reads UTF-8 text files (the training text)")
        }
        print("wrote \(info.path): vocab \(info.vocabSize) (\(info.tokenizer.kind)), \(info.trainTokens) train and "
            + "\(info.valTokens) val tokens (\(info.dtype.rawValue))")
    }

    // MARK: - BPE

    private func prepareBPE(_ given: BPETokenizer?) throws {
        var options = BPECorpusOptions()
        options.seed = seed
        options.threads = TokenizerCommand.threads(threads)
        options.showProgress = !quiet
        if let f = splitAtFraction {
            options.split = .atFraction(f)
        } else {
            options.split = .byDocument(fraction: valFraction ?? 0.1, documents: valDocs)
        }
        let documents = try CorpusInputs.documents(inputs, include: include)
        try CorpusInputs.checkOutput(out, isNot: documents.map(\.path))
        let bpe: BPETokenizer
        if let given {
            bpe = given
        } else {
            // Learn from the train documents only, so /val stays unseen.
            var sample = documents
            if case let .byDocument(fraction, count) = options.split, documents.count >= 2 {
                let held = try heldOutDocuments(documents, fraction: fraction, count: count, seed: seed)
                sample = documents.indices.filter { !held.contains($0) }.map { documents[$0] }
            }
            bpe = try trainTokenizer(documents: sample, vocabSize: vocabSize!, sampleMB: sampleMb, seed: seed,
                                     threads: options.threads)
            if let path = saveTokenizer {
                try writeBPETokenizerFile(bpe, to: path)
                print("wrote \(path): vocab \(bpe.vocabSize)")
            }
        }
        let report = try prepareBPECorpus(documents: documents, sources: inputs, output: out, tokenizer: bpe,
                                          options: options)
        let info = report.info
        print(String(format: "wrote %@: vocab %d (bpe), %d train and %d val tokens (%@); %d documents (%d train, %d val), "
                     + "%.1f MB of text, %.2f bytes/token, %.1f s (%.1f MB/s)",
                     info.path, info.vocabSize, info.trainTokens, info.valTokens, info.dtype.rawValue, report.documents,
                     report.trainDocuments, report.valDocuments, Double(report.textBytes) / 1e6,
                     Double(report.textBytes) / Double(max(1, info.trainTokens + info.valTokens - report.documents)),
                     report.seconds, Double(report.textBytes) / 1e6 / max(report.seconds, 1e-9)))
        if verify {
            let start = Date()
            let compared = try verifyBPECorpus(out, documents: documents, options: options)
            print(String(format: "verified: the tokens decode to the documents (%d bytes compared, %.1f s)", compared,
                         Date().timeIntervalSince(start)))
        }
    }
}
