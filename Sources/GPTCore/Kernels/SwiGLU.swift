// MARK: - SwiGLU (Shazeer 2020): silu(a) * b, a and b the two halves of c_fc's output

/// out (N,H) = silu(a) * b with inp (N,2H) = [a | b] per row, silu(a) = a * sigmoid(a).
public func swigluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, N: Int, H: Int) {
    Parallel.forChunks(N, grain: 16) { start, end in
        for r in start..<end {
            let a = inp + r * 2 * H, b = a + H, o = out + r * H
            var i = 0
            while i + 8 <= H {
                let x = loadVec(a + i)
                storeVec(x / (1 + fastExp(-x)) * loadVec(b + i), o + i)
                i += 8
            }
            while i < H { o[i] = a[i] / (1 + fastExp(-a[i])) * b[i]; i += 1 }
        }
    }
}

/// dinp (N,2H) = gradient of swigluForward's input from dout (N,H) (written, not accumulated):
/// da = dout * b * sigmoid(a) (1 + a (1 - sigmoid(a))), db = dout * silu(a).
public func swigluBackward(_ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                           _ dout: UnsafePointer<Float>, N: Int, H: Int) {
    Parallel.forChunks(N, grain: 16) { start, end in
        for r in start..<end {
            let a = inp + r * 2 * H, b = a + H, d = dout + r * H
            let da = dinp + r * 2 * H, db = da + H
            var i = 0
            while i + 8 <= H {
                let x = loadVec(a + i), g = loadVec(d + i)
                let sig = 1 / (1 + fastExp(-x))
                storeVec(g * loadVec(b + i) * sig * (1 + x * (1 - sig)), da + i)
                storeVec(g * x * sig, db + i)
                i += 8
            }
            while i < H {
                let x = a[i], sig = 1 / (1 + fastExp(-x))
                da[i] = d[i] * b[i] * sig * (1 + x * (1 - sig))
                db[i] = d[i] * x * sig
                i += 1
            }
        }
    }
}
