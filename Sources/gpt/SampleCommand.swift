import ArgumentParser
import Foundation
import GPTCore
import GPTData
import GPTTrain

/// `gpt sample ckpt.h5 --prompt ... --tokens N --temperature T --top-k K --seed S`
struct SampleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Generate text from a checkpoint, streamed to stdout.")

    @Argument(help: "Checkpoint file (.h5), or a run directory (its latest.h5).") var checkpoint: String
    @Option(help: "Text to start from.") var prompt = "\n"
    @Option(help: "Tokens to generate.") var tokens = 500
    @Option(help: "Softmax temperature (0 = always the most likely token).") var temperature: Float = 0.8
    @Option(help: "Sample only among the k most likely tokens (0 = all).") var topK = 200
    @Option(help: "Random seed.") var seed: UInt64 = 1337
    @Option(help: "Number of samples.") var samples = 1
    @Option(help: "Threads (0 = all cores).") var threads = 0
    @Flag(help: "Recompute the whole context for every token instead of using the key/value cache.") var noCache = false

    func validate() throws {
        guard tokens >= 0 else { throw ValidationError("--tokens must be >= 0") }
        guard topK >= 0 else { throw ValidationError("--top-k must be >= 0") }
        guard samples >= 1 else { throw ValidationError("--samples must be at least 1") }
        guard temperature.isFinite else { throw ValidationError("--temperature must be a finite number") }
    }

    func run() throws {
        do {
            Parallel.setThreads(threads > 0 ? threads : ProcessInfo.processInfo.activeProcessorCount)
            let path = try checkpointPath()
            let (model, tok) = try loadModel(path)
            var ids: [Int32]
            do {
                ids = try tok.encodeChecked(prompt)
            } catch {
                throw TrainError(error, about: "--prompt: ",
                                 hint: "the model of \(path) knows only the \(tok.vocabSize) characters of its training text")
            }
            if ids.isEmpty { ids = [0] }
            let sampler = Sampler(model: model)
            // An arithmetic model's answer ends at the end marker.
            let stop = ArithmeticVocabulary.isArithmetic(tok) ? ArithmeticVocabulary.endToken : nil
            let stdout = FileHandle.standardOutput
            for s in 0..<samples {
                stdout.write(Data(prompt.utf8))
                var pending: [Int32] = []
                _ = sampler.generate(prompt: ids, maxNewTokens: tokens, temperature: temperature, topK: topK > 0 ? topK : nil,
                                     seed: seed &+ UInt64(s), useCache: !noCache, stopAt: stop) { t in
                    pending.append(t)
                    // Decode as soon as the pending tokens form whole characters.
                    let text = tok.decode(pending)
                    if !text.contains("\u{FFFD}") || pending.count > 8 {
                        stdout.write(Data(text.utf8))
                        pending.removeAll()
                    }
                }
                if !pending.isEmpty { stdout.write(Data(tok.decode(pending).utf8)) }
                stdout.write(Data((samples > 1 ? "\n---------------\n" : "\n").utf8))
            }
        } catch { fail(error) }
    }

    private static let hint = "give a checkpoint written by `gpt train` (ckpt_*.h5, latest.h5) or its run directory"

    /// The checkpoint file: the argument, or the latest.h5 of the run directory it names.
    private func checkpointPath() throws -> String {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: checkpoint, isDirectory: &isDir) else {
            throw TrainError("checkpoint \(checkpoint) not found; \(Self.hint)")
        }
        guard isDir.boolValue else { return checkpoint }
        let path = checkpoint + "/latest.h5"
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainError("\(checkpoint) holds no checkpoint (no latest.h5); train first, or \(Self.hint)")
        }
        return path
    }

    /// The checkpoint's model, in eval mode, and its tokenizer.
    private func loadModel(_ path: String) throws -> (GPT, any Tokenizer) {
        let ckpt: Checkpoint
        do {
            ckpt = try Checkpoint.read(from: path, includeOptimizer: false)
        } catch {
            throw TrainError(error, about: "cannot sample: ", hint: Self.hint)
        }
        let tok = try makeTokenizer(kind: ckpt.tokenizerKind, serialized: ckpt.tokenizer)
        var mc = ckpt.modelConfig
        mc.dropout = 0
        let model = GPT(config: mc, seed: 0)
        ckpt.parameters.withUnsafeBufferPointer { model.params.update(from: $0.baseAddress!, count: model.parameterCount) }
        model.training = false
        return (model, tok)
    }
}
