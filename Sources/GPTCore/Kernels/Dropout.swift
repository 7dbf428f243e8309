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

/// The hash threshold of dropout rate p: element i is kept when hash(key, i) >= it.
@inline(__always)
func dropoutThreshold(_ p: Float) -> UInt32 {
    UInt32(min(Double(p) * 4_294_967_296.0, 4_294_967_295.0))
}

/// Which of the eight elements index, index + 1, ..., index + 7 are kept.
@inline(__always)
func dropoutKeep8(key: UInt32, index: Int, threshold: UInt32) -> SIMDMask<SIMD8<Int32>> {
    dropHash(key, SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: index)) &+ laneOffsets)
        .>= SIMD8<UInt32>(repeating: threshold)
}

/// out[i] = keep(i) ? inp[i] / (1 - p) : 0 for i in 0..<N; `index0` is the mask index of element 0.
/// The same call maps an output gradient to an input gradient. `out` may alias `inp`.
public func dropoutApply(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, N: Int,
                         p: Float, key: UInt32, index0: Int = 0) {
    Parallel.forChunks(N, grain: 8192) { start, end in
        dropoutRow(out + start, inp + start, N: end - start, p: p, key: key, index0: index0 + start)
    }
}

/// dropoutApply on one thread, inlined: for the rows of a kernel that is already parallel.
@inline(__always)
func dropoutRow(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, N: Int,
                p: Float, key: UInt32, index0: Int) {
    let threshold = dropoutThreshold(p), scale = Vec(repeating: 1 / (1 - p))
    var i = 0
    while i + 8 <= N {
        let keep = dropoutKeep8(key: key, index: index0 + i, threshold: threshold)
        storeVec((loadVec(inp + i) * scale).replacing(with: 0, where: .!keep), out + i)
        i += 8
    }
    while i < N {
        out[i] = dropHash(key, SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: index0 + i)))[0] >= threshold
            ? inp[i] * scale[0] : 0
        i += 1
    }
}

/// mask[i] = keep(i) ? 1 / (1 - p) : 0 for i in 0..<N, the factor dropoutRow multiplies by
/// (inp[i] * mask[i] is its result, bit for bit, for finite inp): for a kernel that applies
/// one mask more than once (attention backward: to P and to dP).
@inline(__always)
func dropoutMask(_ mask: UnsafeMutablePointer<Float>, N: Int, p: Float, key: UInt32, index0: Int) {
    let threshold = dropoutThreshold(p), scale = Vec(repeating: 1 / (1 - p))
    var i = 0
    while i + 8 <= N {
        let keep = dropoutKeep8(key: key, index: index0 + i, threshold: threshold)
        storeVec(scale.replacing(with: 0, where: .!keep), mask + i)
        i += 8
    }
    while i < N {
        mask[i] = dropHash(key, SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: index0 + i)))[0] >= threshold
            ? scale[0] : 0
        i += 1
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
