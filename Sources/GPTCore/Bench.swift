import CBLAS
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif
import Dispatch
import GPTSupport

/// Throughput of one model's training step against its GEMM kernel alone on the same shapes.
public enum Bench {
    /// One GEMM shape of a training step and how often a step runs it.
    public struct Gemm: Sendable {
        public let name: String
        public let transA: Bool, transB: Bool
        public let M: Int, N: Int, K: Int
        public let count: Int
        public var flops: Double { 2 * Double(M) * Double(N) * Double(K) * Double(count) }

        public init(name: String, transA: Bool, transB: Bool, M: Int, N: Int, K: Int, count: Int) {
            self.name = name; self.transA = transA; self.transB = transB
            self.M = M; self.N = N; self.K = K; self.count = count
        }
    }

    public struct GemmResult: Sendable {
        public let gemm: Bench.Gemm
        public let seconds: Double   // per step (all `count` calls)
        public var gflops: Double { gemm.flops / seconds / 1e9 }
    }

    public struct StepResult: Sendable {
        public let secondsPerStep: Double
        public let tokensPerStep: Int
        public let flopsPerStep: Double
        public let breakdown: [(String, Double)]   // seconds per step per kind of layer
        /// CPU seconds of the process in its least expensive step: with one thread, the work of a
        /// step whatever else the machine runs.
        public var cpuSecondsPerStep = Double.infinity
        public var tokensPerSecond: Double { Double(tokensPerStep) / secondsPerStep }
        public var gflops: Double { flopsPerStep / secondsPerStep / 1e9 }
    }

    /// FLOPs per token as nanoGPT's estimate_mfu: 6N + 12 L H Q T (N = non-embedding parameters).
    public static func flopsPerToken(_ c: GPTConfig, T: Int) -> Double {
        let n = Double(ParameterLayout(config: c).nonEmbeddingCount)
        return 6 * n + 12 * Double(c.nLayer * c.nHead * c.headSize * T)
    }

    /// Every GEMM of one training step (forward + backward), grouped by shape.
    public static func gemms(_ c: GPTConfig, B: Int, T: Int) -> [Gemm] {
        let N = B * T, C = c.nEmbd, L = c.nLayer, V = c.vocabSize, hs = c.headSize, bh = B * c.nHead
        var g: [Gemm] = []
        for (name, inC, outC, n) in [("c_attn", C, 3 * C, L), ("attn.c_proj", C, C, L), ("c_fc", C, c.mlpInner, L),
                                     ("mlp.c_proj", c.mlpHidden, C, L), ("lm_head", C, V, 1)] {
            g.append(Gemm(name: name + " fwd", transA: false, transB: true, M: N, N: outC, K: inC, count: n))
            g.append(Gemm(name: name + " bwd dx", transA: false, transB: false, M: N, N: inC, K: outC, count: n))
            g.append(Gemm(name: name + " bwd dW", transA: true, transB: false, M: outC, N: inC, K: N, count: n))
        }
        g.append(Gemm(name: "attn q@k^T fwd", transA: false, transB: true, M: T, N: T, K: hs, count: L * bh))
        g.append(Gemm(name: "attn att@v fwd", transA: false, transB: false, M: T, N: hs, K: T, count: L * bh))
        g.append(Gemm(name: "attn bwd (x4)", transA: false, transB: false, M: T, N: hs, K: T, count: 4 * L * bh))
        return g
    }

    /// Times each GEMM shape (contiguous operands) and returns seconds per step
    /// (the best of `rounds` timings, so a briefly busy machine does not skew it).
    public static func runGemms(_ gemms: [Gemm], minSeconds: Double = 0.1, rounds: Int = 3) -> [GemmResult] {
        gemms.map { g in
            let lda = g.transA ? g.M : g.K, ldb = g.transB ? g.K : g.N
            let a = UnsafeMutablePointer<Float>.allocate(capacity: g.M * g.K)
            let b = UnsafeMutablePointer<Float>.allocate(capacity: g.K * g.N)
            let cc = UnsafeMutablePointer<Float>.allocate(capacity: g.M * g.N)
            defer { a.deallocate(); b.deallocate(); cc.deallocate() }
            var rng = SplitMix64(seed: 1)
            for i in 0..<(g.M * g.K) { a[i] = rng.nextFloat() - 0.5 }
            for i in 0..<(g.K * g.N) { b[i] = rng.nextFloat() - 0.5 }
            cc.initialize(repeating: 0, count: g.M * g.N)
            func call() {  // the step's own path: `gemm`, on the kernel it runs
                gemm(M: g.M, N: g.N, K: g.K, a, ars: g.transA ? 1 : lda, acs: g.transA ? lda : 1,
                     b, brs: g.transB ? 1 : ldb, bcs: g.transB ? ldb : 1, cc, ldc: g.N, accumulate: false)
            }
            call()
            var best = Double.infinity
            for _ in 0..<max(1, rounds) {
                var calls = 0
                let start = now()
                repeat { call(); calls += 1 } while now() - start < minSeconds || calls < 3
                best = min(best, (now() - start) / Double(calls))
            }
            return GemmResult(gemm: g, seconds: best * Double(g.count))
        }
    }

    /// Times full training steps: forward, backward, clipping and AdamW.
    public static func runSteps(_ c: GPTConfig, B: Int, T: Int, steps: Int, warmup: Int = 1) -> StepResult {
        let model = GPT(config: c, seed: 1)
        let opt = AdamW(layout: model.layout, beta1: 0.9, beta2: 0.99, weightDecay: 0.1)
        var rng = SplitMix64(seed: 2)
        let inputs = (0..<(B * T)).map { _ in Int32(rng.nextInt(below: c.vocabSize)) }
        let targets = (0..<(B * T)).map { _ in Int32(rng.nextInt(below: c.vocabSize)) }
        let profiler = Profiler()
        func step() {
            model.zeroGrad()
            inputs.withUnsafeBufferPointer { i in
                targets.withUnsafeBufferPointer { t in
                    _ = model.forward(inputs: i.baseAddress!, targets: t.baseAddress!, B: B, T: T)
                }
            }
            model.backward()
            profiler.begin(.optimizer)
            let norm = gradientNorm(model.grads, count: model.parameterCount)  // clipped in AdamW's pass, as the trainer
            opt.step(params: model.params, grads: model.grads, lr: 1e-4, gradScale: clipCoefficient(norm: norm, maxNorm: 1))
            profiler.end(.optimizer)
        }
        for _ in 0..<warmup { step() }
        model.profiler = profiler
        profiler.reset()
        // The fastest step: the least disturbed by anything else on the machine.
        var per = Double.infinity, cpu = Double.infinity
        for _ in 0..<steps {
            let start = now(), cpuStart = cpuTime()
            step()
            per = min(per, now() - start)
            cpu = min(cpu, cpuTime() - cpuStart)
        }
        let breakdown = Profiler.Kind.allCases.map { ($0.name, profiler.seconds[$0.rawValue] / Double(steps)) }
        var result = StepResult(secondsPerStep: per, tokensPerStep: B * T,
                                flopsPerStep: flopsPerToken(c, T: T) * Double(B * T), breakdown: breakdown)
        result.cpuSecondsPerStep = cpu
        return result
    }

    /// CPU seconds used by this process so far (all its threads).
    public static func cpuTime() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    public static func now() -> Double { monotonicSeconds() }
}
