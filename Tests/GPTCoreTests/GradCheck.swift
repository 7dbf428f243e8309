import XCTest
import GPTCore

/// A buffer of floats filled from a seeded generator.
final class Buf {
    let p: UnsafeMutablePointer<Float>
    let n: Int
    init(_ n: Int, seed: UInt64 = 0, scale: Float = 1, offset: Float = 0) {
        self.n = n
        p = .allocate(capacity: max(n, 1))
        var rng = SplitMix64(seed: seed &+ 12345)
        for i in 0..<n { p[i] = offset + scale * Float(rng.nextNormal()) }
    }
    init(zeros n: Int) {
        self.n = n
        p = .allocate(capacity: max(n, 1))
        p.initialize(repeating: 0, count: max(n, 1))
    }
    deinit { p.deallocate() }
    func zero() { p.update(repeating: 0, count: n) }
    var array: [Float] { Array(UnsafeBufferPointer(start: p, count: n)) }
}

/// Compares analytic gradients with central finite differences of a scalar loss
/// (computed in Double from the float kernels). Checks up to `samples` entries.
func checkGradient(_ name: String, param: UnsafeMutablePointer<Float>, count: Int, analytic: [Float],
                   samples: Int = 40, eps: Float = 1e-2, tol: Double = 2e-2,
                   file: StaticString = #filePath, line: UInt = #line, loss: () -> Double) {
    XCTAssertEqual(analytic.count, count, "\(name): analytic gradient size", file: file, line: line)
    var rng = SplitMix64(seed: 99)
    let idx: [Int] = count <= samples ? Array(0..<count) : (0..<samples).map { _ in rng.nextInt(below: count) }
    var worst = 0.0
    var nonzero = 0
    for i in idx {
        let old = param[i]
        param[i] = old + eps
        let lp = loss()
        param[i] = old - eps
        let lm = loss()
        param[i] = old
        let numeric = (lp - lm) / (2 * Double(eps))
        let a = Double(analytic[i])
        let err = abs(numeric - a) / max(1e-2, abs(numeric) + abs(a))
        worst = max(worst, err)
        if abs(a) > 1e-6 { nonzero += 1 }
        XCTAssertLessThan(err, tol, "\(name)[\(i)]: analytic \(a) vs numeric \(numeric)", file: file, line: line)
    }
    XCTAssertGreaterThan(nonzero, 0, "\(name): every checked gradient is zero", file: file, line: line)
    print(String(format: "gradcheck %-28@ max rel err %.2e over %d entries", name as NSString, worst, idx.count))
}

/// sum(out * weights) in Double: a loss whose gradient w.r.t. out is `weights`.
func weightedSum(_ out: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ n: Int) -> Double {
    var s = 0.0
    for i in 0..<n { s += Double(out[i]) * Double(w[i]) }
    return s
}
