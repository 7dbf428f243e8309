#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

// MARK: - Rotary position embedding (Su et al. 2021)
//
// Within each head of q and of k (hs wide), pair i = (x[2i], x[2i+1]) turns by
// the angle t * theta_i, theta_i = base^(-2i/hs), t the token's position:
//   x'[2i]   = x[2i] cos - x[2i+1] sin
//   x'[2i+1] = x[2i] sin + x[2i+1] cos
// The rotation is orthogonal, so backward turns the gradient by -angle.

/// cos and sin of every (position, pair), computed in Double: table (maxT, hs/2, 2).
public func ropeTable(maxT: Int, headSize hs: Int, base: Double) -> [Float] {
    var table = [Float](repeating: 0, count: maxT * hs)
    for t in 0..<maxT {
        for i in 0..<(hs / 2) {
            let angle = Double(t) * pow(base, -Double(2 * i) / Double(hs))
            table[(t * hs / 2 + i) * 2] = Float(cos(angle))
            table[(t * hs / 2 + i) * 2 + 1] = Float(sin(angle))
        }
    }
    return table
}

/// Rotates q and k of qkv (B*T rows of 3C) in place; row r is at position t0 + r % T.
/// `inverse` turns by -angle (the backward, applied to the gradient of the rotated q and k).
public func ropeApply(_ qkv: UnsafeMutablePointer<Float>, _ table: UnsafePointer<Float>, B: Int, T: Int, C: Int,
                      NH: Int, firstPosition t0: Int = 0, inverse: Bool = false) {
    let hs = C / NH, C3 = 3 * C, half = hs / 2
    let sign: Float = inverse ? -1 : 1
    Parallel.forChunks(B * T, grain: 16) { start, end in
        for r in start..<end {
            let cs = table + (t0 + r % T) * hs
            let row = qkv + r * C3
            for h in 0..<(2 * NH) {
                let x = row + h * hs
                for i in 0..<half {
                    let c = cs[2 * i], s = sign * cs[2 * i + 1]
                    let a = x[2 * i], b = x[2 * i + 1]
                    x[2 * i] = a * c - b * s
                    x[2 * i + 1] = a * s + b * c
                }
            }
        }
    }
}
