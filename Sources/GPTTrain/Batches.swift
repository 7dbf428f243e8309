import GPTCore
import GPTData

/// Random windows of block_size + 1 tokens, read from the corpus by hyperslab.
///
/// A window is given by its start. With `rng = "counter"` each start is a
/// pure function of (seed, step, sample index), so a resumed run, or a run
/// on another number of ranks, draws exactly the same windows: the loader has
/// no state to save. Training windows: a step draws U samples (ranks x
/// accumulation steps x batch); sample u belongs to data shard u * S / U of S
/// contiguous shards (S = data shards, by default the number of ranks), and
/// rank r draws samples (r * A + m) * B ..< +B in micro-step m, so with
/// S = world every rank reads only its own 1/world slice of /train. With
/// `rng = "torch"` the starts are drawn from a `TorchGenerator` instead, one
/// `torch.randint(shard tokens - block_size)` per window, as nanoGPT's
/// get_batch does.
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

    // MARK: Starts

    /// The tokens of the shard training sample `u` (of `samplesPerStep` in a step) is drawn from.
    private func shardRange(sample u: Int, samplesPerStep: Int) -> Range<Int> {
        let shard = u * shards / samplesPerStep
        return source.count * shard / shards ..< source.count * (shard + 1) / shards
    }

    /// Start of training sample `u` of step `step` (counter stream).
    public func trainingStart(step: Int, sample u: Int, samplesPerStep: Int) -> Int {
        let r = shardRange(sample: u, samplesPerStep: samplesPerStep)
        return r.lowerBound + Int(SeedStream.trainingWindow.seed(seed, step, u) % UInt64(r.count - blockSize))
    }

    /// Start of training sample `u`, drawn from `g` (torch stream).
    public func trainingStart(sample u: Int, samplesPerStep: Int, generator g: inout TorchGenerator) -> Int {
        let r = shardRange(sample: u, samplesPerStep: samplesPerStep)
        return r.lowerBound + g.randint(r.count - blockSize)
    }

    /// Start of row `b` of evaluation batch `k` at step `step`, over the whole split (counter stream).
    public func evalStart(step: Int, batch k: Int, row b: Int) -> Int {
        Int(SeedStream.evaluationWindow.seed(seed, step, k, b) % UInt64(source.count - blockSize))
    }

    /// Start of an evaluation window over the whole split, drawn from `g` (torch stream).
    public func evalStart(generator g: inout TorchGenerator) -> Int {
        g.randint(source.count - blockSize)
    }

    // MARK: Windows

    /// Fills inputs and targets (B, T) with the windows at `starts` (B of them).
    public func fill(inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>, starts: [Int]) throws {
        for (b, start) in starts.enumerated() {
            try source.read(offset: start, count: blockSize + 1, into: buffer)
            (inputs + b * blockSize).update(from: buffer, count: blockSize)
            (targets + b * blockSize).update(from: buffer + 1, count: blockSize)
        }
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
