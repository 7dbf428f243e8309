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
            let hint = "prepare reads UTF-8 text files (the training text)"
            for input in inputs {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) else {
                    throw DataError("input text file \(input) not found; give the path of a UTF-8 text file")
                }
                if !isDirectory.boolValue, let size = try? FileManager.default.attributesOfItem(atPath: input)[.size] as? Int,
                   size == 0 {
                    throw DataError("input text file \(input) is empty; give a file with the training text")
                }
            }
            let info: CorpusInfo
            do {
                info = try prepareCharCorpus(inputs: inputs, output: out, valFraction: valFraction)
            } catch let error as DataError where error.message.contains("not UTF-8") || error.message.contains("NUL") {
                throw DataError("\(error); \(hint)")
            }
            print("wrote \(info.path): vocab \(info.vocabSize) (\(info.tokenizer.kind)), \(info.trainTokens) train and "
                + "\(info.valTokens) val tokens (\(info.dtype.rawValue))")
        } catch { fail(error) }
    }
}
