// MARK: - Kernels written once for any vector width
//
// The exp, the register-tile driver and the softmax rows of the tiled attention are the
// same code at 8 floats (AVX2, GPTCore's baseline) and at 16 (AVX-512, GPTWideKernels), so
// they are generic over the vector type (FloatVector) and inlinable: GPTCore conforms
// SIMD8<Float> and instantiates them with its own compile flags (FastMath.swift),
// GPTWideKernels conforms SIMD16<Float> and instantiates them with AVX-512's
// (WideAttention.swift). This module itself is compiled at the baseline, so the generic
// code an unoptimised (debug) build calls unspecialised runs on any CPU. Each module must
// instantiate only its own width: specialisations are named by their types alone, and the
// linker keeps one copy of each name.

/// A vector of floats the generic kernels run on: SIMD8<Float> (GPTCore) and SIMD16<Float> (here).
/// The requirements are the operations whose generic SIMD versions go lane by lane;
/// each width implements them with its own vector instructions.
public protocol FloatVector: SIMD where Scalar == Float, MaskStorage.Scalar == Int32 {
    /// The lanes where a > b.
    static func lanes(_ a: Self, greaterThan b: Self) -> SIMDMask<MaskStorage>
    /// 2^n for each lane of z = n + 1.5 * 2^23 (an integer n rounded by the float adder).
    static func twoToThe(rounded z: Self) -> Self
}

extension FloatVector {
    @inlinable @inline(__always)
    public static func load(_ p: UnsafePointer<Float>) -> Self {
        UnsafeRawPointer(p).loadUnaligned(as: Self.self)
    }

    @inlinable @inline(__always)
    public func store(_ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: self, as: Self.self)
    }

    /// exp of every lane, within 2 ulp of expf over the clamped range [-87, 88].
    @inlinable @inline(__always)
    public static func fastExp(_ xIn: Self) -> Self {
        // Cephes expf: exp(x) = 2^n * exp(r), r = x - n ln2, |r| <= ln2/2.
        // n is rounded with the 1.5 * 2^23 trick rather than SIMD `rounded()` and a
        // float-to-int conversion, which the standard library does lane by lane
        // (30x slower here); the integer n then sits in the low bits of z.
        let lo = Self(repeating: -87), hi = Self(repeating: 88)
        let x0 = xIn.replacing(with: lo, where: lanes(lo, greaterThan: xIn))
            .replacing(with: hi, where: lanes(xIn, greaterThan: hi))
        let magic = Self(repeating: 12_582_912.0)
        let z = x0 * 1.44269504088896341 + magic
        let n = z - magic
        var r = x0 - n * 0.693359375
        r = r - n * -2.12194440e-4
        var p = Self(repeating: 1.9875691500e-4)
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        p = p * (r * r) + r + 1
        return p * twoToThe(rounded: z)
    }

    // MARK: Register-tiled products

    /// c (M,N) = a (M,K) b (K,N), or c += a b when `accumulate`, by register tiles of
    /// `rows` x `columns`: `tile(a, b, c)` computes the one whose corner is at those
    /// pointers, and the edges go a row at a time. a's element (m, k) is `a[m * am + k * ak]`;
    /// b and c are row-major with row strides `ldb` and `ldc`.
    @inlinable @inline(__always)
    public static func tileGemm(M: Int, N: Int, K: Int, _ a: UnsafePointer<Float>, am: Int, ak: Int,
                                _ b: UnsafePointer<Float>, ldb: Int, _ c: UnsafeMutablePointer<Float>, ldc: Int,
                                accumulate: Bool, rows: Int, columns: Int,
                                tile: (UnsafePointer<Float>, UnsafePointer<Float>,
                                       UnsafeMutablePointer<Float>) -> Void) {
        var m = 0
        while m + rows <= M {
            var n = 0
            while n + columns <= N {
                tile(a + m * am, b + n, c + m * ldc + n)
                n += columns
            }
            if n < N {
                for r in m..<(m + rows) { tileRow(N - n, K, a + r * am, ak, b + n, ldb, c + r * ldc + n, accumulate) }
            }
            m += rows
        }
        for r in m..<M { tileRow(N, K, a + r * am, ak, b, ldb, c + r * ldc, accumulate) }
    }

    /// One row of c (N columns) = a (K, stride ak) b, or += when `accumulate`: a tile's edges.
    @inlinable @inline(__always)
    static func tileRow(_ N: Int, _ K: Int, _ a: UnsafePointer<Float>, _ ak: Int, _ b: UnsafePointer<Float>,
                        _ ldb: Int, _ c: UnsafeMutablePointer<Float>, _ accumulate: Bool) {
        var n = 0
        while n + scalarCount <= N {
            var acc = accumulate ? load(c + n) : Self()
            for k in 0..<K { acc = acc.addingProduct(Self(repeating: a[k * ak]), load(b + k * ldb + n)) }
            acc.store(c + n)
            n += scalarCount
        }
        while n < N {
            var s: Float = accumulate ? c[n] : 0
            for k in 0..<K { s += a[k * ak] * b[k * ldb + n] }
            c[n] = s
            n += 1
        }
    }

    // MARK: Softmax rows of the tiled attention

    /// The largest of n floats.
    @inlinable @inline(__always)
    public static func maxOfRow(_ row: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = Self(repeating: -.infinity)
        var c = 0
        while c + scalarCount <= n {
            let v = load(row + c)
            acc = acc.replacing(with: v, where: lanes(v, greaterThan: acc))
            c += scalarCount
        }
        var mx = acc[0]
        for i in 1..<scalarCount { mx = Swift.max(mx, acc[i]) }
        while c < n { mx = Swift.max(mx, row[c]); c += 1 }
        return mx
    }

    /// The causal softmax weights of one tile row, in place: row[c] = exp(scale row[c] - shift)
    /// for the `valid` columns left of the diagonal, 0 for the rest of `width`; returns their sum.
    @inlinable @inline(__always)
    public static func causalExpRow(_ row: UnsafeMutablePointer<Float>, valid: Int, width: Int, scale: Float,
                                    shift: Float) -> Float {
        let sv = Self(repeating: scale), mv = Self(repeating: shift)
        var acc = Self()
        var c = 0
        while c + scalarCount <= valid {
            let e = fastExp(load(row + c) * sv - mv)
            e.store(row + c)
            acc += e
            c += scalarCount
        }
        if c < valid && c + scalarCount <= width {  // the last, partial vector, with 0 from `valid` on
            let past = lanes(laneIndices, greaterThan: Self(repeating: Float(valid - c - 1)))
            let e = fastExp(load(row + c) * sv - mv).replacing(with: Self(), where: past)
            e.store(row + c)
            acc += e
            c += scalarCount
        }
        var sum = acc.sum()
        while c < valid { row[c] = fastExp(Self(repeating: row[c] * scale - shift))[0]; sum += row[c]; c += 1 }
        while c + scalarCount <= width { Self().store(row + c); c += scalarCount }
        while c < width { row[c] = 0; c += 1 }
        return sum
    }

    /// 0, 1, 2, ... in the lanes.
    @inlinable @inline(__always)
    static var laneIndices: Self {
        var v = Self()
        for i in 0..<scalarCount { v[i] = Float(i) }
        return v
    }

    /// The number of a tile row's columns left of the causal diagonal (up to `width`), for
    /// query position `t` and the tile's first key position `j0`.
    @inlinable @inline(__always)
    public static func causalColumns(query t: Int, firstKey j0: Int, width: Int) -> Int {
        Swift.max(0, Swift.min(width, t - j0 + 1))
    }

    /// One key tile's step of the online softmax, forward: the scores s (rows, width), row
    /// stride lds, of query positions t0 ..< t0 + rows and key positions j0 ..< j0 + width,
    /// become exp(scale s - m) with m the running row maximum (0 right of the diagonal); the
    /// running maximum and sum (rows each) are updated, and the output rows o (row stride
    /// ldo, hs columns) rescaled to the new maximum, except on a row's first tile (running
    /// maximum -inf), whose product the caller writes over them.
    @inlinable @inline(__always)
    public static func onlineSoftmaxTile(_ s: UnsafeMutablePointer<Float>, lds: Int, rows: Int, width: Int,
                                         t0: Int, j0: Int, scale: Float, max rowMax: UnsafeMutablePointer<Float>,
                                         sum rowSum: UnsafeMutablePointer<Float>,
                                         out o: UnsafeMutablePointer<Float>, ldo: Int, hs: Int) {
        for r in 0..<rows {
            let row = s + r * lds
            let valid = causalColumns(query: t0 + r, firstKey: j0, width: width)
            guard valid > 0 else { row.update(repeating: 0, count: width); continue }
            let mx = Swift.max(rowMax[r], maxOfRow(row, valid) * scale)
            let sum = causalExpRow(row, valid: valid, width: width, scale: scale, shift: mx)
            let first = rowMax[r] == -.infinity
            let corr = fastExp(Self(repeating: rowMax[r] - mx))
            rowSum[r] = rowSum[r] * corr[0] + sum
            rowMax[r] = mx
            if !first && corr[0] != 1 { scaleRow(o + r * ldo, hs, by: corr) }
        }
    }

    /// row[i] *= factor (all lanes the same) for i in 0..<n.
    @inlinable @inline(__always)
    public static func scaleRow(_ row: UnsafeMutablePointer<Float>, _ n: Int, by factor: Self) {
        var i = 0
        while i + scalarCount <= n { (load(row + i) * factor).store(row + i); i += scalarCount }
        while i < n { row[i] *= factor[0]; i += 1 }
    }

    /// Backward's probabilities of one tile, recomputed in place from the scores p (rows,
    /// width), row stride ldp: exp(scale p - lse[r]) left of the diagonal, 0 right of it, for
    /// query positions t0 ..< t0 + rows and key positions j0 ..< j0 + width.
    @inlinable @inline(__always)
    public static func causalExpTile(_ p: UnsafeMutablePointer<Float>, ldp: Int, rows: Int, width: Int, t0: Int,
                                     j0: Int, scale: Float, lse: UnsafePointer<Float>) {
        for r in 0..<rows {
            _ = causalExpRow(p + r * ldp, valid: causalColumns(query: t0 + r, firstKey: j0, width: width),
                             width: width, scale: scale, shift: lse[r])
        }
    }

    /// dS of one tile in place, row stride ld: d = p (d mask - D[r]) scale, or without the
    /// mask (dropout off) p (d - D[r]) scale.
    @inlinable @inline(__always)
    public static func softmaxGradTile(_ d: UnsafeMutablePointer<Float>, _ p: UnsafePointer<Float>,
                                       _ mask: UnsafePointer<Float>?, ld: Int, rows: Int, width: Int,
                                       D: UnsafePointer<Float>, scale: Float) {
        let sv = Self(repeating: scale)
        for r in 0..<rows {
            let dr = d + r * ld, pr = p + r * ld, dv = Self(repeating: D[r]), Dr = D[r]
            var c = 0
            if let m = mask.map({ $0 + r * ld }) {
                while c + scalarCount <= width {
                    (load(pr + c) * (load(dr + c) * load(m + c) - dv) * sv).store(dr + c)
                    c += scalarCount
                }
                while c < width { dr[c] = pr[c] * (dr[c] * m[c] - Dr) * scale; c += 1 }
            } else {
                while c + scalarCount <= width {
                    (load(pr + c) * (load(dr + c) - dv) * sv).store(dr + c)
                    c += scalarCount
                }
                while c < width { dr[c] = pr[c] * (dr[c] - Dr) * scale; c += 1 }
            }
        }
    }
}

// MARK: - GELU

extension FloatVector {
    /// sqrt(2/pi), the scale inside GELU's tanh.
    @inlinable
    public static var geluScale: Float { 0.7978845608028654 }

    /// tanh(x) = 1 - 2 / (exp(2x) + 1); exact limits at +-inf thanks to the clamp in fastExp.
    @inlinable @inline(__always)
    public static func fastTanh(_ x: Self) -> Self {
        1 - 2 / (fastExp(x + x) + 1)
    }

    /// out[i] = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) for i in start..<end, x = inp[i]:
    /// GPT-2's GELU. The lanes are independent, so every width gives the same floats.
    @inlinable @inline(__always)
    public static func geluForwardRange(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                                        _ start: Int, _ end: Int) {
        @inline(__always) func gelu(_ x: Self) -> Self {
            let u: Self = geluScale * (x + 0.044715 * x * x * x)
            return 0.5 * x * (1 + fastTanh(u))
        }
        var i = start
        while i + scalarCount <= end {
            gelu(load(inp + i)).store(out + i)
            i += scalarCount
        }
        while i < end {  // the tail: one lane of a vector
            out[i] = gelu(Self(repeating: inp[i]))[0]
            i += 1
        }
    }
}
