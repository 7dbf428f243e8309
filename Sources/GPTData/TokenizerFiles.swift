// Tokenizers where they are stored: the attributes of a corpus or checkpoint
// file, or the JSON tokenizer file that `gpt tokenizer train` writes.
import Foundation
import GPTSupport
import GPTTokenizers

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

/// Writes `tokenizer` as a tokenizer file (JSON), through a temporary file renamed into place.
public func writeBPETokenizerFile(_ tokenizer: BPETokenizer, to path: String) throws {
    try AtomicFile.write(to: path) { temporary in
        try tokenizer.serialized().write(toFile: temporary, atomically: false, encoding: .utf8)
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
