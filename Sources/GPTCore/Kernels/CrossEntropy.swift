#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

// MARK: - Softmax cross-entropy with ignored targets (-1), as PyTorch's ignore_index

/// losses (N) = -log softmax(logits)[target] per row (0 where target < 0).
/// Returns the sum over rows with a target and how many there are.
@discardableResult
public func crossEntropyForward(_ losses: UnsafeMutablePointer<Float>, _ logits: UnsafePointer<Float>,
                                _ targets: UnsafePointer<Int32>, N: Int, V: Int) -> (sum: Double, count: Int) {
    Parallel.forChunks(N, grain: 16) { start, end in
        for r in start..<end {
            let tgt = Int(targets[r])
            if tgt < 0 { losses[r] = 0; continue }
            let x = logits + r * V
            let (mx, sum) = rowMaxAndExpSum(x, V)
            losses[r] = logf(sum) + mx - x[tgt]
        }
    }
    var total = 0.0
    var count = 0
    for r in 0..<N where targets[r] >= 0 {
        total += Double(losses[r])
        count += 1
    }
    return (total, count)
}

/// dlogits (N,V) = (softmax(logits) - onehot(target)) * dloss for rows with a target, 0 otherwise.
/// `dlogits` may alias `logits`. `dloss` is d(total loss)/d(per-row loss), e.g. 1/count.
public func crossEntropyBackward(_ dlogits: UnsafeMutablePointer<Float>, _ logits: UnsafePointer<Float>,
                                 _ targets: UnsafePointer<Int32>, N: Int, V: Int, dloss: Float) {
    Parallel.forChunks(N, grain: 16) { start, end in
        for r in start..<end {
            let tgt = Int(targets[r])
            let x = logits + r * V
            let d = dlogits + r * V
            if tgt < 0 {
                for j in 0..<V { d[j] = 0 }
                continue
            }
            let (mx, sum) = rowMaxAndExpSum(x, V)
            let s = dloss / sum
            let mv = Vec(repeating: mx)
            var j = 0
            while j + 8 <= V {
                storeVec(fastExp(loadVec(x + j) - mv) * s, d + j)
                j += 8
            }
            while j < V { d[j] = fastExp(x[j] - mx) * s; j += 1 }
            d[tgt] -= dloss
        }
    }
}

@inline(__always)
func rowMaxAndExpSum(_ x: UnsafePointer<Float>, _ V: Int) -> (Float, Float) {
    var mx = -Float.infinity
    for j in 0..<V { mx = max(mx, x[j]) }
    let mv = Vec(repeating: mx)
    var acc = Vec()
    var j = 0
    while j + 8 <= V { acc += fastExp(loadVec(x + j) - mv); j += 8 }
    var sum = acc.sum()
    while j < V { sum += fastExp(x[j] - mx); j += 1 }
    return (mx, sum)
}
