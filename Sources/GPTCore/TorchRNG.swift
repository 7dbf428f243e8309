#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// PyTorch's CPU random stream, draw for draw: the generator behind
/// `torch.manual_seed` (a 32-bit Mersenne Twister, MT19937) and the ways
/// torch turns its words into numbers for `randint`, `uniform_` and `normal_`.
///
/// With it a run can consume random numbers exactly as nanoGPT's train.py
/// does (the initial weights, then one `torch.randint` per batch), so a
/// `gpt train` run and a nanoGPT run with the same seed see the same weights,
/// the same training windows and the same evaluation windows (`rng = "torch"`).
/// Checked against values recorded from torch 2.x (Tests/reference/).
public struct TorchGenerator: Sendable, Equatable {
    public static let stateWords = 624
    /// The Mersenne Twister's 624 words.
    public private(set) var state: [UInt32]
    /// Position of the next word in `state` (624: twist first).
    public private(set) var index: Int
    /// The second value of the last Box-Muller pair of a small `normal_` (torch caches it in the generator).
    public private(set) var cachedNormal: Double?

    /// `torch.manual_seed(seed)`.
    public init(seed: UInt64) {
        var s = [UInt32](repeating: 0, count: Self.stateWords)
        s[0] = UInt32(truncatingIfNeeded: seed)
        for i in 1..<Self.stateWords { s[i] = 1_812_433_253 &* (s[i - 1] ^ (s[i - 1] >> 30)) &+ UInt32(i) }
        state = s
        index = Self.stateWords
        cachedNormal = nil
    }

    /// A generator restored from `state`, `index` and `cachedNormal` (a checkpoint); nil if they cannot be one.
    public init?(state: [UInt32], index: Int, cachedNormal: Double?) {
        guard state.count == Self.stateWords, (0...Self.stateWords).contains(index) else { return nil }
        self.state = state
        self.index = index
        self.cachedNormal = cachedNormal
    }

    /// The whole state as integers, for a checkpoint: the 624 words, the index, whether a
    /// normal is cached and its bits (`wordCount` values).
    public var words: [UInt64] {
        state.map { UInt64($0) } + [UInt64(index), cachedNormal == nil ? 0 : 1, cachedNormal?.bitPattern ?? 0]
    }

    public static let wordCount = stateWords + 3

    /// The generator `words` describes; nil if they cannot be one.
    public init?(words: [UInt64]) {
        guard words.count == Self.wordCount, words[..<Self.stateWords].allSatisfy({ $0 <= UInt64(UInt32.max) }),
              words[Self.stateWords] <= UInt64(Self.stateWords), words[Self.stateWords + 1] <= 1 else { return nil }
        self.init(state: words[..<Self.stateWords].map { UInt32($0) }, index: Int(words[Self.stateWords]),
                  cachedNormal: words[Self.stateWords + 1] == 1 ? Double(bitPattern: words[Self.stateWords + 2]) : nil)
    }

    // MARK: - Words

    /// The next 32-bit word (`generator->random()`).
    @inline(__always)
    public mutating func next32() -> UInt32 {
        if index >= Self.stateWords { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// Two words as one, the first in the high half (`generator->random64()`).
    @inline(__always)
    public mutating func next64() -> UInt64 {
        let hi = UInt64(next32())
        return hi << 32 | UInt64(next32())
    }

    private mutating func twist() {
        let n = Self.stateWords, m = 397
        state.withUnsafeMutableBufferPointer { s in
            for i in 0..<n {
                let y = (s[i] & 0x8000_0000) | (s[(i + 1) % n] & 0x7FFF_FFFF)
                s[i] = s[(i + m) % n] ^ (y >> 1) ^ ((y & 1) != 0 ? 0x9908_B0DF : 0)
            }
        }
        index = 0
    }

    // MARK: - Numbers

    /// `torch.randint(n, ...)`, one value: uniform in 0..<n (one word below 2^28, else two).
    @inline(__always)
    public mutating func randint(_ n: Int) -> Int {
        precondition(n > 0, "randint needs a positive bound")
        let r = UInt64(n)
        return Int(r < 1 << 28 ? UInt64(next32()) % r : next64() % r)
    }

    /// A float in [0, 1) from 24 bits of one word, as torch's uniform for float32.
    @inline(__always)
    public mutating func nextFloat() -> Float {
        Float(next32() & 0xFF_FFFF) * (1.0 / 16_777_216.0)
    }

    /// A double in [0, 1) from 53 bits of two words, as torch's uniform for float64.
    @inline(__always)
    public mutating func nextDouble() -> Double {
        Double(next64() & ((1 << 53) - 1)) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// `tensor.uniform_(from, to)` on `count` contiguous floats.
    public mutating func uniform(_ out: UnsafeMutablePointer<Float>, count: Int, from: Float = 0, to: Float = 1) {
        for i in 0..<count { out[i] = nextFloat() * (to - from) + from }
    }

    /// `tensor.normal_(mean, std)` on `count` contiguous floats.
    ///
    /// From 16 values on, torch fills the tensor with uniforms and turns each
    /// block of 16 into normals by Box-Muller (u1 from value j, u2 from value
    /// j + 8), recomputing the last 16 from fresh uniforms when 16 does not
    /// divide the count. Below 16, values come from its double-precision
    /// sampler, which caches the second value of each pair.
    public mutating func normal(_ out: UnsafeMutablePointer<Float>, count: Int, mean: Float, std: Float) {
        if count >= 16 {
            uniform(out, count: count)
            var i = 0
            while i + 16 <= count {
                Self.boxMuller16(out + i, mean: mean, std: std)
                i += 16
            }
            if count % 16 != 0 {
                uniform(out + count - 16, count: 16)
                Self.boxMuller16(out + count - 16, mean: mean, std: std)
            }
        } else {
            for i in 0..<count { out[i] = Float(nextNormal() * Double(std) + Double(mean)) }
        }
    }

    /// One standard normal from the double-precision sampler (`at::normal_distribution<double>`).
    public mutating func nextNormal() -> Double {
        if let c = cachedNormal {
            cachedNormal = nil
            return c
        }
        let u1 = nextDouble(), u2 = nextDouble()
        let r = (-2 * log1p(-u2)).squareRoot()
        let theta = 2 * Double.pi * u1
        cachedNormal = r * sin(theta)
        return r * cos(theta)
    }

    /// As torch's AVX2 kernel (the one x86 machines run): theta in float, n * std + mean fused.
    @inline(__always)
    private static func boxMuller16(_ d: UnsafeMutablePointer<Float>, mean: Float, std: Float) {
        let twoPi = Float(2 * Double.pi)
        for j in 0..<8 {
            let u1: Float = 1 - d[j]
            let u2 = d[j + 8]
            let radius = (-2 * logf(u1)).squareRoot()
            let theta = twoPi * u2
            d[j] = mean.addingProduct(radius * cosf(theta), std)
            d[j + 8] = mean.addingProduct(radius * sinf(theta), std)
        }
    }
}
