// Checkpoint files: model configuration, parameters (one dataset per named
// tensor), AdamW moments, training state and tokenizer in one HDF5 file
// (format in docs/FORMATS.md). Written through a temporary file renamed into
// place; every tensor carries a Fletcher-32 checksum that reads verify.
import Foundation
import GPTCore
import GPTSupport

// MARK: - Checkpoint

/// Everything needed to resume training, sample or finetune.
public struct Checkpoint: Sendable {
    public static let format = "swiftgpt-checkpoint"
    public static let formatVersion = 1

    public var modelConfig: GPTConfig
    /// All parameters, flat, in `ParameterLayout(config: modelConfig)` order.
    public var parameters: [Float]
    /// AdamW first moments, same layout (nil: not saved).
    public var adamM: [Float]?
    /// AdamW second moments, same layout (nil: not saved).
    public var adamV: [Float]?
    /// Optimizer steps taken.
    public var step: Int
    public var tokenizerKind: String
    /// The serialized tokenizer (`Tokenizer.serialized()`).
    public var tokenizer: String
    /// The run configuration as the trainer wrote it (TOML or JSON).
    public var runConfig: String
    /// Best validation loss seen so far (nil: none yet).
    public var bestValLoss: Double?
    /// Named integer arrays: RNG states, data-loader positions, ... (keys: no "/").
    public var state: [String: [UInt64]]
    /// Named numbers: learning-rate schedule position, tokens seen, ... (keys: no "/").
    public var scalars: [String: Double]

    public init(modelConfig: GPTConfig, parameters: [Float], adamM: [Float]? = nil, adamV: [Float]? = nil,
                step: Int = 0, tokenizerKind: String, tokenizer: String, runConfig: String = "",
                bestValLoss: Double? = nil, state: [String: [UInt64]] = [:], scalars: [String: Double] = [:]) {
        self.modelConfig = modelConfig
        self.parameters = parameters
        self.adamM = adamM
        self.adamV = adamV
        self.step = step
        self.tokenizerKind = tokenizerKind
        self.tokenizer = tokenizer
        self.runConfig = runConfig
        self.bestValLoss = bestValLoss
        self.state = state
        self.scalars = scalars
    }

    // MARK: - Writing

    /// Writes the checkpoint to `path` atomically.
    ///
    /// The file is written as `<path>.tmp-<pid>` in the same directory,
    /// flushed, fsynced and renamed over `path`. An existing checkpoint is
    /// never replaced by a partial one: on any error the temporary file is
    /// removed and the old file is untouched.
    public func write(to path: String) throws {
        try write(to: path, afterDataset: { _ in })
    }

    /// `write(to:)`, calling `afterDataset` with each dataset's path once it is written.
    public func write(to path: String, afterDataset: (String) throws -> Void) throws {
        let layout = try checkedLayout(path)
        try AtomicFile.write(to: path) { temporary in
            let file = try H5File.create(temporary)
            defer { file.close() }
            try file.setAttribute("format", Self.format)
            try file.setAttribute("format_version", Self.formatVersion)
            try file.setAttribute("step", step)
            try file.setAttribute("model_config", try Self.encode(modelConfig))
            try file.setAttribute("run_config", runConfig)
            try file.setAttribute("tokenizer_kind", tokenizerKind)
            try file.setAttribute("tokenizer", tokenizer)
            try file.setAttribute("parameter_count", layout.count)
            try file.setAttribute("created", ISO8601DateFormatter().string(from: Date()))
            if let bestValLoss { try file.setAttribute("best_val_loss", bestValLoss) }

            try Self.writeTensors(parameters, layout: layout, group: "/model", file: file, afterDataset: afterDataset)
            if let adamM, let adamV {
                try Self.writeTensors(adamM, layout: layout, group: "/optimizer/m", file: file,
                                      afterDataset: afterDataset)
                try Self.writeTensors(adamV, layout: layout, group: "/optimizer/v", file: file,
                                      afterDataset: afterDataset)
            }
            try file.createGroup("/state")
            for (key, values) in state.sorted(by: { $0.key < $1.key }) {
                let name = "/state/" + key
                try file.write(values, shape: [values.count], to: name, fletcher32: true)
                try afterDataset(name)
            }
            for (key, value) in scalars.sorted(by: { $0.key < $1.key }) {
                try file.setAttribute(key, value, on: "/state")
            }
            try file.flush()
        }
    }

    /// The layout of `modelConfig`, after checking that every field fits it.
    private func checkedLayout(_ path: String) throws -> ParameterLayout {
        let problems = modelConfig.problems()
        guard problems.isEmpty else {
            throw DataError("\(path): cannot write checkpoint: \(problems.joined(separator: "; "))")
        }
        let layout = ParameterLayout(config: modelConfig)
        let arrays = [("parameters", parameters), ("adamM", adamM), ("adamV", adamV)]
        for case let (name, array?) in arrays where array.count != layout.count {
            throw DataError("\(path): cannot write checkpoint: \(name) holds \(array.count) floats, "
                            + "the model_config needs \(layout.count)")
        }
        guard (adamM == nil) == (adamV == nil) else {
            throw DataError("\(path): cannot write checkpoint: give both AdamW moments (adamM and adamV) or neither")
        }
        for key in Array(state.keys) + Array(scalars.keys) where key.isEmpty || key.contains("/") || key == "." {
            throw DataError("\(path): cannot write checkpoint: state key '\(key)' must be non-empty, not '.', "
                            + "and contain no '/'")
        }
        for key in state.keys where scalars[key] != nil {
            throw DataError("\(path): cannot write checkpoint: '\(key)' is both a state array and a scalar")
        }
        return layout
    }

    private static func encode(_ config: GPTConfig) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(config), as: UTF8.self)
    }

    /// Writes each tensor of `layout` from the flat `values` as `<group>/<name>` with its shape.
    private static func writeTensors(_ values: [Float], layout: ParameterLayout, group: String, file: H5File,
                                     afterDataset: (String) throws -> Void) throws {
        try file.createGroup(group)
        try values.withUnsafeBufferPointer { flat in
            for tensor in layout.tensors {
                let name = group + "/" + tensor.name
                let slice = UnsafeBufferPointer(rebasing: flat[tensor.offset ..< tensor.offset + tensor.count])
                try file.write(slice, shape: tensor.shape, to: name, fletcher32: true)
                try afterDataset(name)
            }
        }
    }

    // MARK: - Reading

    /// Reads and validates the checkpoint at `path`.
    ///
    /// Checks that it is an HDF5 swiftgpt-checkpoint whose model_config is
    /// valid and which holds every tensor of that config's layout with the
    /// right shape (and nothing else); checksums are verified as tensors are
    /// read. `includeOptimizer: false` skips the AdamW moments (for sampling).
    public static func read(from path: String, includeOptimizer: Bool = true) throws -> Checkpoint {
        let file = try H5File.open(path)
        guard file.hasAttribute("format") else {
            throw DataError("\(path): not a swiftgpt checkpoint (no 'format' attribute)")
        }
        let format = try file.stringAttribute("format")
        guard format == Self.format else {
            throw DataError("\(path): not a swiftgpt checkpoint (its format is '\(format)')")
        }
        for name in ["format_version", "step", "model_config", "run_config", "tokenizer_kind", "tokenizer"]
        where !file.hasAttribute(name) {
            throw DataError("\(path): checkpoint is missing the '\(name)' attribute")
        }
        let version = try file.intAttribute("format_version")
        guard version <= Self.formatVersion else {
            throw DataError("\(path): checkpoint format_version \(version) is newer than this build reads "
                            + "(\(Self.formatVersion)); update SwiftGPT")
        }
        let configJSON = try file.stringAttribute("model_config")
        let config: GPTConfig
        do {
            config = try JSONDecoder().decode(GPTConfig.self, from: Data(configJSON.utf8))
        } catch {
            throw DataError("\(path): model_config is not a valid GPT configuration (\(error)): \(configJSON)")
        }
        let problems = config.problems()
        guard problems.isEmpty else {
            throw DataError("\(path): model_config is invalid: \(problems.joined(separator: "; "))")
        }
        let layout = ParameterLayout(config: config)

        let parameters = try readTensors(layout: layout, group: "/model", file: file)
        var adamM: [Float]?
        var adamV: [Float]?
        if includeOptimizer && file.exists("/optimizer") {
            adamM = try readTensors(layout: layout, group: "/optimizer/m", file: file)
            adamV = try readTensors(layout: layout, group: "/optimizer/v", file: file)
        }
        let (state, scalars) = try readState(file)
        return Checkpoint(
            modelConfig: config, parameters: parameters, adamM: adamM, adamV: adamV,
            step: try file.intAttribute("step"), tokenizerKind: try file.stringAttribute("tokenizer_kind"),
            tokenizer: try file.stringAttribute("tokenizer"), runConfig: try file.stringAttribute("run_config"),
            bestValLoss: file.hasAttribute("best_val_loss") ? try file.doubleAttribute("best_val_loss") : nil,
            state: state, scalars: scalars)
    }

    /// The `/state` group: its 1-D integer datasets and its numeric attributes.
    private static func readState(_ file: H5File) throws -> (state: [String: [UInt64]], scalars: [String: Double]) {
        var state: [String: [UInt64]] = [:]
        var scalars: [String: Double] = [:]
        guard file.exists("/state") else { return ([:], [:]) }
        for key in try file.childNames(of: "/state") {
            let name = "/state/" + key
            let dataset = try file.openDataset(name)
            guard dataset.elementType.isInteger, dataset.shape.count == 1 else {
                throw DataError("\(file.path): state entry '\(name)' must be a 1-D integer array "
                                + "(it is \(dataset.elementType) of shape \(dataset.shape))")
            }
            state[key] = try readChecked(file.path) { try file.read(name, as: UInt64.self) }
        }
        for key in try file.attributeNames(on: "/state") {
            scalars[key] = try file.doubleAttribute(key, on: "/state")
        }
        return (state, scalars)
    }

    /// Reads every tensor of `layout` from `<group>/<name>` into one flat buffer, checking names and shapes.
    private static func readTensors(layout: ParameterLayout, group: String, file: H5File) throws -> [Float] {
        let path = file.path
        guard file.exists(group) else { throw DataError("\(path): checkpoint has no group '\(group)'") }
        let expected = Set(layout.tensors.map(\.name))
        if let extra = try file.childNames(of: group).first(where: { !expected.contains($0) }) {
            throw DataError("\(path): tensor '\(group)/\(extra)' is not part of the model its model_config "
                            + "describes; the file is inconsistent")
        }
        return try [Float](unsafeUninitializedCapacity: layout.count) { flat, initialized in
            for tensor in layout.tensors {
                let name = group + "/" + tensor.name
                guard file.exists(name) else { throw DataError("\(path): missing tensor '\(name)'") }
                let dataset = try file.openDataset(name)
                guard dataset.shape == tensor.shape else {
                    throw DataError("\(path): tensor '\(name)' has shape \(dataset.shape), but model_config "
                                    + "needs \(tensor.shape)")
                }
                guard dataset.elementType == .float32 || dataset.elementType == .float64 else {
                    throw DataError("\(path): tensor '\(name)' holds \(dataset.elementType), expected float32")
                }
                let destination = UnsafeMutableBufferPointer(rebasing: flat[tensor.offset ..< tensor.offset + tensor.count])
                try readChecked(path) { try dataset.read(into: destination) }
            }
            initialized = layout.count
        }
    }

    /// Runs a dataset read, turning an HDF5 failure into a message that says the file is damaged.
    private static func readChecked<R>(_ path: String, _ read: () throws -> R) throws -> R {
        do {
            return try read()
        } catch let error as H5Error {
            let detail = error.message.hasPrefix(path + ": ") ? String(error.message.dropFirst(path.count + 2))
                                                              : error.message
            throw DataError("\(path): the checkpoint is damaged: \(detail)")
        }
    }
}
