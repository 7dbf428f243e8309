// MARK: - Dropout with a counter-based mask
//
// The mask is a pure function of (key, element index): keep element i when
// hash(key, i) >= p * 2^32. Nothing is stored; backward recomputes the same
// mask, results do not depend on the thread count, and a resumed run gets
// the same masks from the same (seed, step, micro-step, site) key.

@inline(__always)
func fmix32(_ hIn: SIMD8<UInt32>) -> SIMD8<UInt32> {
    var h = hIn
    h ^= h &>> 16
    h &*= 0x85EB_CA6B
    h ^= h &>> 13
    h &*= 0xC2B2_AE35
    h ^= h &>> 16
    return h
}

@inline(__always)
func dropHash(_ key: UInt32, _ i: SIMD8<UInt32>) -> SIMD8<UInt32> {
    fmix32(i &* 0x9E37_79B1 &+ key)
}

private let laneOffsets = SIMD8<UInt32>(0, 1, 2, 3, 4, 5, 6, 7)

/// The 32-bit key for one dropout site (an embedding, a residual branch, attention probs).
public func dropoutKey(seed: UInt64, site: Int) -> UInt32 {
    UInt32(truncatingIfNeeded: mix64(seed ^ mix64(UInt64(site) &+ 0xD5A6_1266_F0C9_392F)))
}

/// out[i] = keep(i) ? inp[i] / (1 - p) : 0 for i in 0..<N; `index0` is the mask index of element 0.
/// The same call maps an output gradient to an input gradient. `out` may alias `inp`.
public func dropoutApply(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, N: Int,
                         p: Float, key: UInt32, index0: Int = 0) {
    let threshold = UInt32(min(Double(p) * 4_294_967_296.0, 4_294_967_295.0))
    let scale = Vec(repeating: 1 / (1 - p))
    Parallel.forChunks(N, grain: 8192) { start, end in
        var i = start
        while i + 8 <= end {
            let h = dropHash(key, SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: index0 + i)) &+ laneOffsets)
            let keep = h .>= SIMD8<UInt32>(repeating: threshold)
            storeVec((loadVec(inp + i) * scale).replacing(with: 0, where: .!keep), out + i)
            i += 8
        }
        while i < end {
            let h = dropHash(key, SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: index0 + i)))[0]
            out[i] = h >= threshold ? inp[i] * scale[0] : 0
            i += 1
        }
    }
}

// MARK: - Residual add

/// out (N) = a + b.
public func residualForward(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>,
                            _ b: UnsafePointer<Float>, N: Int) {
    Parallel.forChunks(N, grain: 8192) { start, end in
        for i in start..<end { out[i] = a[i] + b[i] }
    }
}
