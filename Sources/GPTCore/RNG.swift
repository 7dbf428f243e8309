/// A small, fast, seedable generator (SplitMix64) whose whole state is one
/// UInt64, so checkpoints can store and restore it exactly.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return mix64(state)
    }

    /// Uniform in [0, 1) with 24 random bits.
    @inline(__always)
    public mutating func nextFloat() -> Float {
        Float(next() >> 40) * (1.0 / 16_777_216.0)
    }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always)
    public mutating func nextDouble() -> Double {
        Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Uniform integer in 0..<n (n > 0), without modulo bias worth noticing (n << 2^64).
    @inline(__always)
    public mutating func nextInt(below n: Int) -> Int {
        Int(truncatingIfNeeded: next().multipliedFullWidth(by: UInt64(n)).high)
    }

    /// Standard normal by Box-Muller.
    public mutating func nextNormal() -> Double {
        let u1 = max(nextDouble(), 1e-300)
        let u2 = nextDouble()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }
}

/// The SplitMix64 finaliser: a strong 64-bit mixing function.
@inline(__always)
public func mix64(_ x: UInt64) -> UInt64 {
    var z = x
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// Derives an independent seed from a base seed and a list of integers
/// (e.g. seed, rank, step, micro-step), so every stream can be recomputed.
public func deriveSeed(_ base: UInt64, _ parts: Int...) -> UInt64 {
    deriveSeed(base, parts: parts)
}

/// `deriveSeed` over an array of integers.
public func deriveSeed(_ base: UInt64, parts: [Int]) -> UInt64 {
    var h = mix64(base ^ 0x5EED_5EED_5EED_5EED)
    for p in parts { h = mix64(h ^ UInt64(bitPattern: Int64(p)) &+ 0x9E37_79B9_7F4A_7C15) }
    return h
}

/// The random streams of a training run: each draws from `deriveSeed(seed, stream, counters...)`,
/// so every number a run uses can be recomputed from the seed and where it is used.
public enum SeedStream: Int, Sendable {
    /// Start of a training window: counters (step, sample).
    case trainingWindow = 1
    /// Start of an evaluation window: counters (step, batch, row).
    case evaluationWindow = 2
    /// The text sampled at an evaluation: counter (step).
    case evaluationSample = 3
    /// The dropout masks of a micro-step: counters (step, first sample of the micro-batch).
    case dropout = 4
    /// rng = "torch", resumed from a checkpoint without the ranks' streams: counters (step, rank).
    case torchRestart = 6
    /// A training problem of a generated task: counters (step, sample).
    case taskTraining = 7
    /// A problem of a generated task's evaluation batch: counters (step, split, batch, row).
    case taskEvaluation = 8
    /// A problem of a generated task's test set: counter (index).
    case taskTest = 9

    /// The seed of this stream at `counters`, for the run seeded with `base`.
    public func seed(_ base: UInt64, _ counters: Int...) -> UInt64 {
        deriveSeed(base, parts: [rawValue] + counters)
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#else
import Darwin
@inline(__always) func _log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) func _cos(_ x: Double) -> Double { Darwin.cos(x) }
#endif
