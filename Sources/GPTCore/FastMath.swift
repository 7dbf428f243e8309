import GPTSIMD
import GPTWideKernels

// Vectorised exp and tanh for the softmax, cross-entropy and GELU kernels.
// libm's expf/tanhf are scalar calls; these are straight-line SIMD code that
// LLVM keeps in vector registers. Accuracy: within 2 ulp of expf over the
// clamped range, which is far below what fp32 training can notice.

public typealias Vec = SIMD8<Float>

/// The baseline's vector for GPTSIMD's generic kernels (SIMDKernels.swift), which
/// GPTCore instantiates at this width with its own compile flags.
extension SIMD8: FloatVector where Scalar == Float {
    @inlinable @inline(__always)
    public static func lanes(_ a: Self, greaterThan b: Self) -> SIMDMask<MaskStorage> { a .> b }
    @inlinable @inline(__always)
    public static func twoToThe(rounded z: Self) -> Self {
        unsafeBitCast((unsafeBitCast(z, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23, to: Self.self)
    }
}

/// exp of every lane (Cephes expf, one definition for every width: GPTSIMD's FloatVector.fastExp).
@inline(__always)
public func fastExp(_ x: Vec) -> Vec {
    Vec.fastExp(x)
}

@inline(__always)
public func fastExp(_ x: Float) -> Float {
    fastExp(Vec(repeating: x))[0]
}

/// tanh (one definition for every width: GPTSIMD's FloatVector.fastTanh).
@inline(__always)
public func fastTanh(_ x: Vec) -> Vec {
    Vec.fastTanh(x)
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
