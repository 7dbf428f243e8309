// Vectorised exp and tanh for the softmax, cross-entropy and GELU kernels.
// libm's expf/tanhf are scalar calls; these are straight-line SIMD code that
// LLVM keeps in vector registers. Accuracy: within 2 ulp of expf over the
// clamped range, which is far below what fp32 training can notice.

public typealias Vec = SIMD8<Float>

@inline(__always)
public func fastExp(_ xIn: Vec) -> Vec {
    // Cephes expf: exp(x) = 2^n * exp(r), r = x - n ln2, |r| <= ln2/2.
    // n is rounded with the 1.5 * 2^23 trick rather than SIMD `rounded()` and a
    // float-to-int conversion, which the standard library does lane by lane
    // (30x slower here); the integer n then sits in the low bits of z.
    let x0 = xIn.replacing(with: Vec(repeating: -87), where: xIn .< -87)
        .replacing(with: Vec(repeating: 88), where: xIn .> 88)
    let magic = Vec(repeating: 12_582_912.0)
    let z = x0 * 1.44269504088896341 + magic
    let n = z - magic
    var r = x0 - n * 0.693359375
    r = r - n * -2.12194440e-4
    var p = Vec(repeating: 1.9875691500e-4)
    p = p * r + 1.3981999507e-3
    p = p * r + 8.3334519073e-3
    p = p * r + 4.1665795894e-2
    p = p * r + 1.6666665459e-1
    p = p * r + 5.0000001201e-1
    p = p * (r * r) + r + 1
    let bits = (unsafeBitCast(z, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    return p * unsafeBitCast(bits, to: Vec.self)
}

@inline(__always)
public func fastExp(_ x: Float) -> Float {
    fastExp(Vec(repeating: x))[0]
}

/// tanh(x) = 1 - 2 / (exp(2x) + 1); exact limits at +-inf thanks to the clamp in fastExp.
@inline(__always)
public func fastTanh(_ x: Vec) -> Vec {
    1 - 2 / (fastExp(x + x) + 1)
}

@inline(__always)
public func fastTanh(_ x: Float) -> Float {
    fastTanh(Vec(repeating: x))[0]
}

@inline(__always)
func loadVec(_ p: UnsafePointer<Float>) -> Vec {
    UnsafeRawPointer(p).loadUnaligned(as: Vec.self)
}

@inline(__always)
func storeVec(_ v: Vec, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec.self)
}
