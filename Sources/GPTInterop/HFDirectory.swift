// Hugging Face model directories: `gpt export` writes one from a checkpoint
// (config.json, model.safetensors, the tokenizer files), `gpt import` makes
// a checkpoint from a GPT-2- or Llama-architecture one (HFArchitecture says which). Both check everything before
// writing, and write through a temporary name, so bad input leaves nothing.
import Foundation
import GPTCore
import GPTData
import GPTSupport
import GPTTokenizers

public enum HFDirectory {
    // MARK: - Export

    /// Writes the Hugging Face directory of `checkpoint` (read from `source`) at `directory`,
    /// which must not exist or be empty; the tensors are stored as `dtype`. Returns the
    /// architecture the model was written as.
    @discardableResult
    public static func export(_ checkpoint: Checkpoint, source: String, to directory: String,
                              dtype: SafetensorsDType) throws -> HFArchitecture {
        let config = checkpoint.modelConfig
        let architecture = try HFArchitecture.of(config, source: source)
        let tokenizer = try makeTokenizer(kind: checkpoint.tokenizerKind, serialized: checkpoint.tokenizer)
        guard tokenizer.vocabSize == config.vocabSize else {
            throw DataError("\(source): the tokenizer has \(tokenizer.vocabSize) tokens, the model's vocab_size is "
                            + "\(config.vocabSize); a Hugging Face directory needs them equal")
        }
        var files = try HFTokenizerExport.files(for: tokenizer, modelMaxLength: config.blockSize)
        let endOfText = (tokenizer as? BPETokenizer).map { Int($0.endOfTextID) }
        files["config.json"] = try HFTokenizerExport.json(architecture.json(config, dtype: dtype, endOfText: endOfText))
        let tensors = architecture.export(checkpoint.parameters, config: config)
        try writeDirectory(directory) { temporary in
            for (name, data) in files.sorted(by: { $0.key < $1.key }) {
                guard FileManager.default.createFile(atPath: temporary + "/" + name, contents: data) else {
                    throw DataError("cannot write \(temporary)/\(name)")
                }
            }
            try SafetensorsWriter.write(tensors, dtype: dtype, to: temporary + "/model.safetensors")
        }
        return architecture
    }

    /// Fills a temporary sibling of `directory` with `body`, then renames it into place.
    private static func writeDirectory(_ directory: String, _ body: (String) throws -> Void) throws {
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue, (try? fm.contentsOfDirectory(atPath: directory))?.isEmpty == true else {
                throw DataError("\(directory) already exists; remove it or give another --out")
            }
        }
        let parent = (directory as NSString).deletingLastPathComponent
        guard parent.isEmpty || fm.fileExists(atPath: parent) else {
            throw DataError("\(directory): directory '\(parent)' does not exist; create it first")
        }
        let temporary = directory + ".tmp-\(getpid())"
        try? fm.removeItem(atPath: temporary)
        do {
            try fm.createDirectory(atPath: temporary, withIntermediateDirectories: false)
            try body(temporary)
            guard rename(temporary, directory) == 0 else {
                throw DataError("cannot move \(temporary) to \(directory): \(String(cString: strerror(errno)))")
            }
        } catch {
            try? fm.removeItem(atPath: temporary)
            throw error
        }
    }

    // MARK: - Import

    /// The checkpoint of the GPT-2- or Llama-architecture model in `directory`: its weights, and its
    /// tokenizer with the directory's ids.
    public static func importModel(from directory: String) throws -> Checkpoint {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError("\(directory) is not a directory; give a Hugging Face model directory (config.json, "
                            + "model.safetensors, tokenizer)")
        }
        let configPath = directory + "/config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw DataError("\(directory) has no config.json; it is not a Hugging Face model directory")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw DataError("\(configPath): not a JSON object")
        }
        let architecture = try HFArchitecture.reading(object, path: configPath)
        let config = try architecture.model(from: object, path: configPath)
        let tokenizer = try HFBPEFiles.read(directory: directory).tokenizer(vocabSize: config.vocabSize)
        let file = try SafetensorsFile(path: try weightsPath(directory))
        let parameters = try architecture.parameters(from: file, config: config)
        return Checkpoint(modelConfig: config, parameters: parameters, tokenizerKind: tokenizer.kind,
                          tokenizer: tokenizer.serialized())
    }

    /// model.safetensors, or an error that says what the directory holds instead.
    private static func weightsPath(_ directory: String) throws -> String {
        let fm = FileManager.default
        let path = directory + "/model.safetensors"
        if fm.fileExists(atPath: path) { return path }
        if fm.fileExists(atPath: directory + "/model.safetensors.index.json") {
            throw DataError("\(directory): the weights are sharded (model.safetensors.index.json); gpt import reads one "
                            + "model.safetensors")
        }
        if fm.fileExists(atPath: directory + "/pytorch_model.bin") {
            throw DataError("\(directory) has pytorch_model.bin but no model.safetensors; save it with "
                            + "`model.save_pretrained(dir, safe_serialization=True)` first")
        }
        throw DataError("\(directory) has no model.safetensors")
    }
}
