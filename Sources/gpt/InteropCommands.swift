import ArgumentParser
import Foundation
import GPTData
import GPTInterop
import GPTTrain

/// `gpt export ckpt.h5 --out DIR [--dtype f32|bf16|f16]`: a Hugging Face model directory.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint as a Hugging Face model directory (GPT2LMHeadModel or LlamaForCausalLM: config.json, "
            + "model.safetensors, tokenizer).")

    @Argument(help: "Checkpoint file (.h5).") var checkpoint: String
    @Option(help: "Output directory (must not exist, or be empty).") var out: String
    @Option(help: "Tensor type in model.safetensors: f32, bf16 or f16.") var dtype = "f32"

    func validate() throws {
        guard ["f32", "bf16", "f16"].contains(dtype) else { throw ValidationError("--dtype must be f32, bf16 or f16") }
    }

    func run() throws {
        do {
            let ckpt = try readCheckpoint(checkpoint, toDo: "export",
                                          hint: "give a checkpoint written by `gpt train` or `gpt import` (ckpt_*.h5, latest.h5)")
            let type = SafetensorsDType(rawValue: dtype.uppercased())!
            let architecture: HFArchitecture
            do {
                architecture = try HFDirectory.export(ckpt, source: checkpoint, to: out, dtype: type)
            } catch {
                throw TrainError(error, about: "cannot export: ", hint: nil)
            }
            print("\(out): \(architecture.rawValue) (\(ckpt.modelConfig.nLayer) layers, \(ckpt.modelConfig.nEmbd) wide, vocab "
                  + "\(ckpt.modelConfig.vocabSize)), \(type.rawValue) tensors, \(ckpt.tokenizerKind) tokenizer")
        } catch { fail(error) }
    }
}

/// `gpt import DIR --out ckpt.h5`: a Hugging Face GPT-2 or Llama directory as a checkpoint.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Make a checkpoint from a Hugging Face GPT-2 or Llama directory (config.json, model.safetensors, GPT-2's "
            + "tokenizer).")

    @Argument(help: "Hugging Face model directory.") var directory: String
    @Option(help: "Output checkpoint file (.h5).") var out: String

    func run() throws {
        do {
            let ckpt: Checkpoint
            do {
                ckpt = try HFDirectory.importModel(from: directory)
                try ckpt.write(to: out)
            } catch {
                throw TrainError(error, about: "cannot import: ", hint: nil)
            }
            print("\(out): \(ckpt.modelConfig.nLayer) layers, \(ckpt.modelConfig.nHead) heads, \(ckpt.modelConfig.nEmbd) "
                  + "wide, block \(ckpt.modelConfig.blockSize), vocab \(ckpt.modelConfig.vocabSize) (bpe tokenizer with the "
                  + "directory's ids)")
        } catch { fail(error) }
    }
}
