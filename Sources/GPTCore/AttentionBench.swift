// MARK: - The attention kernels alone, tiled against the reference

extension Bench {
    /// CPU seconds of one layer's attention, forward + backward, with the tiled kernel and with
    /// the (T,T) reference on the same random (B,T,3C) input: the best of `rounds` each.
    /// CPU time is the work of the kernel, less moved than wall time by other jobs on the machine.
    public static func attentionKernels(_ c: GPTConfig, B: Int, T: Int, rounds: Int = 5)
        -> (tiled: Double, reference: Double) {
        let C = c.nEmbd, NH = c.nHead, n = B * T * C, tt = B * NH * T * T
        // qkv (3n), dout (n), out (n), dqkv (3n), lse (B,NH,T); the reference's att, attDrop, datt (tt each).
        let mem = UnsafeMutablePointer<Float>.allocate(capacity: 8 * n + B * NH * T + 3 * tt)
        defer { mem.deallocate() }
        var rng = SplitMix64(seed: 3)
        for i in 0..<(4 * n) { mem[i] = 2 * rng.nextFloat() - 1 }
        let qkv = UnsafePointer(mem), dout = UnsafePointer(mem + 3 * n)
        let out = mem + 4 * n, dqkv = out + n, lse = dqkv + 3 * n
        let att = lse + B * NH * T, attDrop = att + tt, datt = attDrop + tt
        let p = c.dropout, key = dropoutKey(seed: 1, site: 1)
        func best(_ body: () -> Void) -> Double {
            var t = Double.infinity
            for _ in 0..<max(1, rounds) {
                let start = cpuTime()
                body()
                t = min(t, cpuTime() - start)
            }
            return t
        }
        let tiled = best {
            attentionForward(out, lse, qkv, B: B, T: T, C: C, NH: NH, dropoutP: p, dropoutKey: key)
            attentionBackward(dqkv, dout, qkv, out, lse, B: B, T: T, C: C, NH: NH, dropoutP: p, dropoutKey: key)
        }
        let reference = best {
            attentionReferenceForward(out, att, attDrop, qkv, B: B, T: T, C: C, NH: NH, dropoutP: p, dropoutKey: key)
            attentionReferenceBackward(dqkv, datt, dout, qkv, att, attDrop, B: B, T: T, C: C, NH: NH,
                                       dropoutP: p, dropoutKey: key)
        }
        return (tiled, reference)
    }
}
