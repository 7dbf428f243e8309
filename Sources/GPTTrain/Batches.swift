import GPTCore
import GPTData

/// Random windows of block_size + 1 tokens, read from the corpus by hyperslab.
///
/// Each window is a pure function of (seed, step, sample index), so a resumed
/// run, or a run on another number of ranks, draws exactly the same windows:
/// the loader has no state to save. Training windows: a step draws U samples
/// (ranks x accumulation steps x batch); sample u belongs to data shard
/// u * S / U of S contiguous shards (S = data shards, by default the number
/// of ranks), and rank r draws samples (r * A + m) * B ..< +B in micro-step m,
/// so with S = world every rank reads only its own 1/world slice of /train.
public final class WindowSampler {
    public let source: TokenSource
    public let blockSize: Int
    public let shards: Int
    private let seed: UInt64
    private let buffer: UnsafeMutablePointer<Int32>

    public init(source: TokenSource, blockSize: Int, shards: Int, seed: UInt64) throws {
        self.source = source
        self.blockSize = blockSize
        self.shards = max(1, shards)
        self.seed = seed
        buffer = .allocate(capacity: blockSize + 1)
        let shortest = source.count / self.shards
        guard shortest > blockSize else {
            throw TrainError("block_size \(blockSize) needs shards of more than \(blockSize) tokens, but /\(source.split.rawValue) "
                + "of \(source.info.path) has \(source.count) tokens in \(self.shards) shard(s) (\(shortest) each): "
                + "lower block_size, use fewer ranks/data_shards, or a larger corpus")
        }
    }

    deinit { buffer.deallocate() }

    /// Fills inputs and targets (B, T) with samples first ..< first + B of step `step`,
    /// out of `samplesPerStep` samples in the step.
    public func fillTraining(inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>,
                             step: Int, first: Int, B: Int, samplesPerStep: Int) throws {
        for b in 0..<B {
            let u = first + b
            let shard = u * shards / samplesPerStep
            let lo = source.count * shard / shards, hi = source.count * (shard + 1) / shards
            let h = deriveSeed(seed, 1, step, u)
            let start = lo + Int(h % UInt64(hi - lo - blockSize))
            try read(start, inputs + b * blockSize, targets + b * blockSize)
        }
    }

    /// Fills batch `k` of the evaluation at step `step`, windows from the whole split.
    public func fillEval(inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>,
                         step: Int, batch k: Int, B: Int) throws {
        for b in 0..<B {
            let h = deriveSeed(seed, 2, step, k, b)
            let start = Int(h % UInt64(source.count - blockSize))
            try read(start, inputs + b * blockSize, targets + b * blockSize)
        }
    }

    private func read(_ start: Int, _ x: UnsafeMutablePointer<Int32>, _ y: UnsafeMutablePointer<Int32>) throws {
        try source.read(offset: start, count: blockSize + 1, into: buffer)
        x.update(from: buffer, count: blockSize)
        y.update(from: buffer + 1, count: blockSize)
    }
}

/// A training error whose description is one line that says what to fix.
public struct TrainError: Error, CustomStringConvertible {
    public let message: String
    /// True when every rank raised this error together (`Trainer.collective`), so the
    /// job can shut down cleanly; false when it may be this rank's alone.
    public let everyRank: Bool

    public init(_ message: String, everyRank: Bool = false) {
        self.message = TrainError.oneLine(message)
        self.everyRank = everyRank
    }

    public var description: String { message }

    /// `error` with what it concerns before it and what to do after it, as one line.
    public init(_ error: Error, about subject: String, hint: String?) {
        self.init(subject + "\(error)" + (hint.map { "; " + $0 } ?? ""))
    }

    /// `text` with its line breaks folded into single spaces.
    public static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: { $0.isNewline }).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }.joined(separator: " ")
    }
}
