// The character-level corpus, as the lecture and nanoGPT's shakespeare_char
// make it: text files concatenated, one token per character, cut into train
// and val at a fraction of the characters (the split plan's `atFraction`),
// written by the corpus writer.
import Foundation
import GPTSupport
import GPTTokenizers

// MARK: - Preparing a character-level corpus

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
    try CorpusInputs.checkOutput(output, isNot: inputs) { _ in "text file" }
    let (total, characters) = try scanCharacters(inputs, given: given)
    guard total > 0 else { throw DataError("the input text is empty: \(inputs.joined(separator: ", "))") }
    let tokenizer = given ?? CharTokenizer(vocabulary: characters.sorted)
    guard let trainCount = CorpusSplitPlan.trainCharacters(total: total, fraction: 1 - valFraction) else {
        throw DataError("the input text (\(total) characters) is too short to split into train and val with a "
                        + "validation fraction of \(valFraction); give more text")
    }
    try AtomicFile.write(to: output) { temporary in
        let file = try H5File.create(temporary)
        defer { file.close() }
        let writer = try CorpusWriter(file: file, tokenizer: tokenizer, sources: inputs)
        try writeCharacters(inputs, tokenizer: tokenizer, trainCount: trainCount, into: writer)
        try writer.finish()
        guard writer.count(.train) + writer.count(.val) == total else {
            throw DataError("\(inputs.joined(separator: ", ")): the input changed while the corpus was being prepared")
        }
        try file.flush()
    }
    return try CorpusFile.open(output)
}

/// Pass 1: the number of characters of `inputs` and their distinct characters.
///
/// With `given`, a file holding a character outside its vocabulary is an error naming the characters.
private func scanCharacters(_ inputs: [String], given: CharTokenizer?) throws -> (total: Int, characters: ScalarSet) {
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
    return (total, characters)
}

/// Pass 2: encodes `inputs` into `writer`, the first `trainCount` ids to /train and the rest to /val.
private func writeCharacters(_ inputs: [String], tokenizer: CharTokenizer, trainCount: Int,
                             into writer: CorpusWriter) throws {
    var position = 0
    for input in inputs {
        try TextFileReader.forEachBlock(of: input) { scalars in
            for scalar in scalars {
                guard let id = tokenizer.id(of: scalar) else {
                    throw DataError("\(input): the file changed while the corpus was being prepared")
                }
                try writer.append(id, to: position < trainCount ? .train : .val)
                position += 1
            }
        }
    }
}

// MARK: - Character sets

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
