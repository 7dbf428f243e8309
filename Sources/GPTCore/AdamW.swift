#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// AdamW as torch.optim.AdamW, with nanoGPT's parameter groups: weight decay
/// on tensors of dimension >= 2 only. Moments live in two flat buffers with
/// the parameter layout, so the update is one loop per tensor.
///
/// A sharded optimizer (ZeRO-1) holds the moments of `shard` only, a slice of the flat
/// buffer, and updates only the parameters in it; each element keeps its tensor's weight
/// decay group, so the shards together make exactly the unsharded update.
public final class AdamW {
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var weightDecay: Float
    /// Number of updates applied so far (for bias correction).
    public var t: Int = 0
    /// First and second moments of the elements of `shard`: `m[0]` belongs to element `shard.lowerBound`.
    public let m: UnsafeMutablePointer<Float>
    public let v: UnsafeMutablePointer<Float>
    /// Elements whose moments this optimizer holds (`shard.count`).
    public let count: Int
    /// The slice of the flat parameter buffer it updates: all of it unless sharded.
    public let shard: Range<Int>
    private let tensors: [TensorView]

    public init(layout: ParameterLayout, shard: Range<Int>? = nil, beta1: Float = 0.9, beta2: Float = 0.95,
                eps: Float = 1e-8, weightDecay: Float = 0.1) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        self.shard = shard ?? 0..<layout.count
        precondition(self.shard.clamped(to: 0..<layout.count) == self.shard, "shard \(self.shard) outside 0..<\(layout.count)")
        count = self.shard.count
        tensors = layout.tensors
        m = .allocate(capacity: count); v = .allocate(capacity: count)
        m.initialize(repeating: 0, count: count); v.initialize(repeating: 0, count: count)
    }

    deinit { m.deallocate(); v.deallocate() }

    /// Clears the moments and the step count (a fresh optimizer for finetuning).
    public func reset() {
        m.update(repeating: 0, count: count); v.update(repeating: 0, count: count); t = 0
    }

    /// Takes this optimizer's slice of moments laid out as the whole flat buffer.
    public func loadMoments(m fullM: UnsafePointer<Float>, v fullV: UnsafePointer<Float>) {
        m.update(from: fullM + shard.lowerBound, count: count)
        v.update(from: fullV + shard.lowerBound, count: count)
    }

    /// One AdamW step: p = p (1 - lr wd) - lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps), on the shard's elements,
    /// with the gradient g = grads * `gradScale`.
    ///
    /// `params` is the whole flat buffer; `grads` holds the shard's gradients (`grads[0]` is
    /// element `shard.lowerBound`: the whole gradient buffer when unsharded). `gradScale` is
    /// gradient clipping's coefficient (`clipCoefficient`) applied in this same pass over the
    /// buffers: the result is bit for bit that of `scaleGradients` followed by a step with 1,
    /// without writing the gradients back.
    public func step(params: UnsafeMutablePointer<Float>, grads: UnsafePointer<Float>, lr: Float,
                     gradScale: Float = 1) {
        t += 1
        let bc1 = 1 - powf(beta1, Float(t)), bc2 = 1 - powf(beta2, Float(t))
        let k = Update(b1: beta1, b2: beta2, eps: eps, stepSize: lr / bc1, bc2Sqrt: bc2.squareRoot(), scale: gradScale)
        let m = self.m, v = self.v, p = params + shard.lowerBound
        for tensor in tensors {
            let elements = (tensor.offset..<(tensor.offset + tensor.count)).clamped(to: shard)
            guard !elements.isEmpty else { continue }
            let decay: Float = tensor.decays ? 1 - lr * weightDecay : 1
            let base = elements.lowerBound - shard.lowerBound
            Parallel.forChunks(elements.count, grain: 16384) { start, end in
                var i = base + start
                let stop = base + end
                while i + 8 <= stop {
                    var pi = loadVec(p + i), mi = loadVec(m + i), vi = loadVec(v + i)
                    k.apply(&pi, &mi, &vi, loadVec(grads + i), decay: decay)
                    storeVec(pi, p + i); storeVec(mi, m + i); storeVec(vi, v + i)
                    i += 8
                }
                guard i < stop else { return }
                // The last 1...7 elements through the same vector code, lane by lane in and out.
                var pi = Vec(), mi = Vec(), vi = Vec(), gi = Vec()
                for j in 0..<(stop - i) { pi[j] = p[i + j]; mi[j] = m[i + j]; vi[j] = v[i + j]; gi[j] = grads[i + j] }
                k.apply(&pi, &mi, &vi, gi, decay: decay)
                for j in 0..<(stop - i) { p[i + j] = pi[j]; m[i + j] = mi[j]; v[i + j] = vi[j] }
            }
        }
    }

    /// The constants of one step and the update of eight elements: torch.optim.AdamW's
    /// operations, in its order.
    private struct Update {
        let b1: Float, b2: Float, eps: Float, stepSize: Float, bc2Sqrt: Float, scale: Float

        @inline(__always)
        func apply(_ p: inout Vec, _ m: inout Vec, _ v: inout Vec, _ grad: Vec, decay: Float) {
            let g = grad * scale
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            let denom = v.squareRoot() / bc2Sqrt + eps
            p = p * decay - stepSize * m / denom
        }
    }
}

// MARK: - Gradient norm and clipping

/// The global L2 norm of `count` gradients (accumulated in Double).
public func gradientNorm(_ grads: UnsafePointer<Float>, count: Int) -> Float {
    Float(gradientSquareSum(grads, count: count).squareRoot())
}

/// The sum of squares of `count` gradients, in Double: one shard's part of the squared global norm.
public func gradientSquareSum(_ grads: UnsafePointer<Float>, count: Int) -> Double {
    let chunks = Parallel.chunkCount(count, grain: 65536)
    var partial = [Double](repeating: 0, count: chunks)
    let per = (count + chunks - 1) / chunks
    partial.withUnsafeMutableBufferPointer { part in
        Parallel.forChunks(count, grain: 65536) { start, end in
            var acc = Vec()
            var s = 0.0
            var i = start
            // Sum squares in float blocks of 4096, then into Double: accurate and vectorised.
            while i < end {
                let stop = min(end, i + 4096)
                acc = Vec()
                while i + 8 <= stop { let g = loadVec(grads + i); acc += g * g; i += 8 }
                var f = acc.sum()
                while i < stop { f += grads[i] * grads[i]; i += 1 }
                s += Double(f)
            }
            part[start / per] = s
        }
    }
    return partial.reduce(0, +)
}

/// Scales gradients so the global norm is at most `maxNorm`, as
/// torch.nn.utils.clip_grad_norm_ (coefficient maxNorm / (norm + 1e-6), capped at 1).
/// Returns the norm before clipping.
@discardableResult
public func clipGradients(_ grads: UnsafeMutablePointer<Float>, count: Int, maxNorm: Float) -> Float {
    let norm = gradientNorm(grads, count: count)
    scaleGradients(grads, count: count, norm: norm, maxNorm: maxNorm)
    return norm
}

/// Gradient clipping's coefficient for a global norm `norm`: maxNorm / (norm + 1e-6) when that
/// is below 1, else 1; 1 when `maxNorm` is 0 (no clipping) or the norm is not finite.
public func clipCoefficient(norm: Float, maxNorm: Float) -> Float {
    guard maxNorm > 0, norm.isFinite else { return 1 }
    return min(1, maxNorm / (norm + 1e-6))
}

/// Clipping with a norm known beforehand (a shard of the gradients and the global norm):
/// multiplies by `clipCoefficient(norm:maxNorm:)` when that is below 1. The trainer passes the
/// coefficient to `AdamW.step` instead, which saves this pass over the gradients.
public func scaleGradients(_ grads: UnsafeMutablePointer<Float>, count: Int, norm: Float, maxNorm: Float) {
    let coef = clipCoefficient(norm: norm, maxNorm: maxNorm)
    if coef < 1 {
        Parallel.forChunks(count, grain: 65536) { start, end in
            for i in start..<end { grads[i] *= coef }
        }
    }
}

// MARK: - Learning-rate schedule

/// nanoGPT's learning-rate schedule (`get_lr`): linear warmup, cosine decay to `minLR`, then constant.
///
/// The one definition of the schedule: the trainer, the tests and `TrainConfig.lrSchedule` use it.
/// For the 0-based iteration `it`:
///
///     it <  warmupIters:  learningRate * (it + 1) / (warmupIters + 1)
///     it >  decayIters:   minLR
///     otherwise:          minLR + 0.5 * (1 + cos(pi * ratio)) * (learningRate - minLR),
///                         ratio = (it - warmupIters) / max(1, decayIters - warmupIters)
///
/// and `learningRate` at every iteration when `decay` is false. The ratio and cosine are in
/// Double, the rest in Float.
public struct LRSchedule: Sendable, Equatable {
    /// Peak rate, reached at the end of the warmup.
    public var learningRate: Float
    /// Final rate, from `decayIters` on.
    public var minLR: Float
    public var warmupIters: Int
    public var decayIters: Int
    /// False keeps `learningRate` throughout.
    public var decay: Bool

    public init(learningRate: Float, minLR: Float, warmupIters: Int, decayIters: Int, decay: Bool = true) {
        self.learningRate = learningRate; self.minLR = minLR
        self.warmupIters = warmupIters; self.decayIters = decayIters; self.decay = decay
    }

    /// The learning rate for iteration `it` (0-based).
    public func lr(at it: Int) -> Float {
        guard decay else { return learningRate }
        if it < warmupIters { return learningRate * Float(it + 1) / Float(warmupIters + 1) }
        if it > decayIters { return minLR }
        let ratio = Double(it - warmupIters) / Double(max(1, decayIters - warmupIters))
        let coeff = 0.5 * (1 + cos(Double.pi * ratio))
        return minLR + Float(coeff) * (learningRate - minLR)
    }
}
