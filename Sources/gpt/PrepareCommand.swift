import ArgumentParser
import Foundation
import GPTData

/// `gpt prepare --tokenizer char --out corpus.h5 input.txt ...`
struct PrepareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prepare",
        abstract: "Tokenize text files into an HDF5 corpus with /train and /val.")

    @Option(help: "Tokenizer: char (the sorted distinct characters of the text).") var tokenizer = "char"
    @Option(help: "Output corpus file (.h5).") var out: String
    @Option(help: "Fraction of the text held out as /val (the end of the text).") var valFraction = 0.1
    @Argument(help: "Input text files.") var inputs: [String]

    func validate() throws {
        guard tokenizer == "char" else { throw ValidationError("unknown tokenizer \"\(tokenizer)\"; use --tokenizer char") }
        guard valFraction > 0 && valFraction < 1 else { throw ValidationError("--val-fraction must be in (0, 1)") }
    }

    func run() throws {
        do {
            let info = try prepareCharCorpus(inputs: inputs, output: out, valFraction: valFraction)
            print("wrote \(info.path): vocab \(info.vocabSize) (\(info.tokenizer.kind)), \(info.trainTokens) train and "
                + "\(info.valTokens) val tokens (\(info.dtype.rawValue))")
        } catch { fail(error) }
    }
}
