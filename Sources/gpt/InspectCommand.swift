import ArgumentParser
import Foundation
import GPTCore
import GPTData
import GPTSupport

/// `gpt inspect file.h5`: what a corpus or checkpoint holds, validated.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe and validate a corpus or checkpoint file.")

    @Argument(help: "A corpus or checkpoint file (.h5).") var file: String

    func run() throws {
        do {
            let f: H5File
            do {
                f = try H5File.open(file)
            } catch {
                throw DataError("\(error); inspect reads a corpus made by `gpt prepare` or a checkpoint written by `gpt train`")
            }
            let format = (try? f.stringAttribute("format")) ?? "unknown"
            f.close()
            switch format {
            case "swiftgpt-corpus":
                let info = try CorpusFile.validate(file)
                print("corpus \(file): vocab \(info.vocabSize) (\(info.tokenizer.kind) tokenizer), \(info.dtype.rawValue) tokens")
                print("  /train \(info.trainTokens) tokens, /val \(info.valTokens) tokens; source \(info.source)")
                print("  token ids checked: all below vocab_size")
            case "swiftgpt-checkpoint":
                let c = try Checkpoint.read(from: file)
                let layout = ParameterLayout(config: c.modelConfig)
                print("checkpoint \(file): step \(c.step), \(c.tokenizerKind) tokenizer, best val loss "
                    + (c.bestValLoss.map { String(format: "%.4f", $0) } ?? "-"))
                let m = c.modelConfig
                print("  model: n_layer \(m.nLayer), n_head \(m.nHead), n_embd \(m.nEmbd), block_size \(m.blockSize), "
                    + "vocab_size \(m.vocabSize), bias \(m.bias), tie_weights \(m.tieWeights): \(layout.count) parameters")
                print("  optimizer state: \(c.adamM != nil ? "yes" : "no"); every tensor verified")
            default:
                throw DataError("\(file) is neither a swiftgpt corpus nor a checkpoint (format attribute: \(format)); "
                    + "inspect reads a corpus made by `gpt prepare` or a checkpoint written by `gpt train`")
            }
        } catch { fail(error) }
    }
}
