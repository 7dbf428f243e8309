import Foundation
import GPTCore

/// What a training run will hold in memory, worked out from its config before anything is allocated.
///
/// Per rank: the parameters, their gradients and AdamW's two moments (four
/// buffers of the parameter layout; with zero_stage 1 on more than one rank only the
/// moments of rank 0's shard, the largest), the activation arena for (batch_size,
/// block_size) as `GPT.activationFloatCount` sizes it, and the token buffers
/// (inputs and targets, in the trainer and in the model: four buffers of
/// batch_size x block_size Int32). Per node: per rank times the ranks on the
/// node. Every size is overflow-checked; nil means more bytes than an `Int` counts.
public struct MemoryEstimate: Sendable {
    public let parameters: Int?, gradients: Int?, adamMoments: Int?, activations: Int?, tokenBuffers: Int?
    public let ranksOnNode: Int
    /// Elements whose AdamW moments one rank holds: all parameters, or rank 0's shard with zero_stage 1.
    public let optimizerElements: Int?

    /// Bytes one rank holds.
    public var perRank: Int? { CheckedSize.sum([parameters, gradients, adamMoments, activations, tokenBuffers]) }
    /// Bytes the ranks on one node hold together.
    public var perNode: Int? { CheckedSize.times(perRank, ranksOnNode) }

    /// The estimate for `model` trained on (B, T) batches by `ranksOnNode` ranks per node, of
    /// `worldSize` ranks in all with ZeRO stage `zeroStage`.
    public init(model: GPTConfig, batchSize B: Int, blockSize T: Int, ranksOnNode: Int, worldSize: Int = 1, zeroStage: Int = 0) {
        let float = MemoryLayout<Float>.size, token = MemoryLayout<Int32>.size
        let count = ParameterLayout.floatCount(config: model)
        let shard = count.map { zeroStage >= 1 && worldSize > 1 ? ShardLayout(count: $0, ranks: worldSize).largest : $0 }
        let params = CheckedSize.times(count, float)
        parameters = params
        gradients = params
        optimizerElements = shard
        adamMoments = CheckedSize.times(shard, 2 * float)
        activations = CheckedSize.times(GPT.activationFloatCount(config: model, B: B, T: T), float)
        tokenBuffers = CheckedSize.product([4, B, T, token])
        self.ranksOnNode = max(1, ranksOnNode)
    }

    /// The estimate for the run of `config` on `model` (the config's own model, or a
    /// checkpoint's), with the run's dropout, batch_size and block_size, as the trainer builds it.
    public init(_ config: TrainConfig, model: GPTConfig, ranksOnNode: Int, worldSize: Int = 1) {
        var m = model
        m.dropout = Float(config.dropout)
        self.init(model: m, batchSize: config.batchSize, blockSize: config.blockSize, ranksOnNode: ranksOnNode,
                  worldSize: worldSize, zeroStage: config.zeroStage)
    }

    /// This machine's physical memory in bytes: sysconf(_SC_PHYS_PAGES) x the page size.
    ///
    /// Physical memory rather than /proc/meminfo's MemAvailable: the check refuses
    /// what cannot run on this machine at all, and gives the same answer to the
    /// same command every time; MemAvailable moves with the page cache and with
    /// whatever else runs at the moment, so it would refuse runs that fit.
    public static var physicalMemory: Int {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return Int.max }
        return CheckedSize.product([pages, size]) ?? Int.max
    }

    /// Throws a one-line `TrainError` when the node's ranks would need more than
    /// `available` bytes: the estimate, what the machine has, and which keys to lower.
    public func check(available: Int = MemoryEstimate.physicalMemory) throws {
        if let need = perNode, need <= available { return }
        let parts = [("parameters", parameters), ("gradients", gradients), ("AdamW moments", adamMoments),
                     ("activations", activations), ("token buffers", tokenBuffers)]
        let ranks = "\(ranksOnNode) rank\(ranksOnNode == 1 ? "" : "s") x \(MemoryEstimate.format(perRank))"
        let total = perNode.map { "about " + MemoryEstimate.format($0) } ?? MemoryEstimate.format(nil)
        throw TrainError("the run needs \(total) of memory on this node (\(ranks): "
            + parts.map { "\($0.0) \(MemoryEstimate.format($0.1))" }.joined(separator: ", ")
            + "), more than the \(MemoryEstimate.format(available)) of physical memory this machine has; "
            + advice)
    }

    /// Which keys to lower, the largest part first.
    private var advice: String {
        let activationsLead = (activations ?? .max) >= (CheckedSize.times(parameters, 4) ?? .max)
        let batch = "batch_size (raise gradient_accumulation_steps to keep the tokens per step) or block_size"
        let model = "n_embd or n_layer"
        let keys = activationsLead ? "lower \(batch), or \(model)" : "lower \(model), or \(batch)"
        return keys + (ranksOnNode > 1 ? ", or start fewer ranks per node" : "")
    }

    /// Bytes with a binary unit and three significant digits: "512 B", "1.50 KiB", "23.4 GiB"; nil is "more than 8 EiB".
    public static func format(_ bytes: Int?) -> String {
        guard let bytes else { return "more than 8 EiB" }
        if bytes < 1024 { return "\(bytes) B" }
        var v = Double(bytes)
        for unit in ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"] {
            v /= 1024
            if v < 9.995 { return formatted(v, 2, unit) }
            if v < 99.95 { return formatted(v, 1, unit) }
            if v < 1023.5 || unit == "EiB" { return formatted(v, 0, unit) }
        }
        return "\(bytes) B"
    }

    private static func formatted(_ v: Double, _ decimals: Int, _ unit: String) -> String {
        String(format: "%.\(decimals)f ", v) + unit
    }
}
