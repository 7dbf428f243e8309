import ArgumentParser
import Foundation
import GPTCore
import GPTTrain

extension NormKind: ExpressibleByArgument {}
extension PositionKind: ExpressibleByArgument {}
extension MLPKind: ExpressibleByArgument {}

/// `gpt bench`: the GEMM kernel on the model's GEMM shapes vs full training steps.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure training throughput against the GEMM kernel alone on the model's own GEMM shapes.")

    @Option(help: "Layers.") var nLayer = 6
    @Option(help: "Heads.") var nHead = 6
    @Option(help: "Embedding width.") var nEmbd = 384
    @Option(help: "Context length.") var blockSize = 256
    @Option(help: "Batch size.") var batchSize = 16
    @Option(help: "Vocabulary size.") var vocabSize = 65
    @Option(help: "Dropout of the timed steps (attention probabilities, residual branches, embeddings).")
    var dropout: Float = 0
    @Option(help: "Timed training steps per thread count.") var steps = 5
    @Option(help: "Thread counts to run, comma-separated.") var threads = "1,2"
    @Option(help: "Norm: layernorm or rmsnorm.") var norm = NormKind.layerNorm
    @Option(help: "Positions: learned or rope.") var position = PositionKind.learned
    @Option(help: "MLP: gelu or swiglu.") var mlp = MLPKind.gelu
    @Flag(help: "RMSNorm on every head of q and k.") var qkNorm = false
    @Flag(help: "Also time training steps with each architecture option alone and all four, against GPT-2's block.")
    var compareOptions = false
    @Flag(help: "Also rerun in a child process with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset.")
    var compareKernels = false
    @Option(help: "Write the figures as JSON to this file.") var json: String?
    @Option(help: "World sizes for the memory per rank with zero_stage 1, comma-separated.") var memoryRanks = "2,4,8"
    @Flag(help: "Print the memory per rank only; no timing.") var memoryOnly = false

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1") }
        guard dropout >= 0 && dropout < 1 else { throw ValidationError("--dropout must be in [0, 1), e.g. 0.2") }
        let counts = threads.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("--threads must be a comma-separated list of thread counts >= 1, e.g. 1,2")
        }
        guard worldSizes.count == memoryRanks.split(separator: ",").count, worldSizes.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--memory-ranks must be a comma-separated list of world sizes >= 1, e.g. 2,4,8")
        }
    }

    func run() throws {
        setvbuf(stdout, nil, _IOLBF, 0)  // lines in order, also into a file and before the child's
        var c = GPTConfig(vocabSize: vocabSize, blockSize: blockSize, nLayer: nLayer, nHead: nHead,
                          nEmbd: nEmbd, dropout: dropout, bias: true, tieWeights: true)
        c.norm = norm; c.position = position; c.mlp = mlp; c.qkNorm = qkNorm
        let problems = c.problems()
        guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "; ")) }
        let kernel = BLASKernel.summary
        print("gpt bench: n_layer \(nLayer), n_head \(nHead), n_embd \(nEmbd), block_size \(blockSize), batch \(batchSize), vocab \(vocabSize), dropout \(dropout)")
        if !c.options.isEmpty { print("options: " + c.options.joined(separator: ", ")) }
        print(kernel)
        print("gemm: " + GEMMKernel.current.summary + " (SWIFTGPT_GEMM=blas|avx512|auto chooses)")
        let fpt = Bench.flopsPerToken(c, T: blockSize)
        print(String(format: "model: %.2fM parameters (non-embedding), %.1f MFLOP per token (nanoGPT estimate: 6N + 12LHQT)",
                     Double(ParameterLayout(config: c).nonEmbeddingCount) / 1e6, fpt / 1e6))
        printMemory(c)
        if memoryOnly { return }
        let counts = threads.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        var records = counts.map { measure(c, threads: $0, kernel: kernel) }
        printAttentionKernels(c, threads: counts[0])
        if compareOptions { records += compareArchitectures(c, threads: counts[0]) }
        if let json {
            let data = try JSONSerialization.data(withJSONObject: records, options: [.prettyPrinted, .sortedKeys])
            try data.write(to: URL(fileURLWithPath: json))
        }
        if compareKernels && ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] != nil {
            try rerunWithNativeKernel()
        }
    }

    private var worldSizes: [Int] {
        memoryRanks.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// What one rank holds for this model and batch: zero_stage 0, then zero_stage 1 on each of `--memory-ranks`.
    private func printMemory(_ c: GPTConfig) {
        print("memory per rank (batch \(batchSize) x block \(blockSize)):")
        for (stage, ranks) in [(0, 1)] + worldSizes.map({ (1, $0) }) {
            let m = MemoryEstimate(model: c, batchSize: batchSize, blockSize: blockSize, ranksOnNode: 1,
                                   worldSize: ranks, zeroStage: stage)
            let f = MemoryEstimate.format
            let label = stage == 0 ? "zero_stage 0, any ranks" : "zero_stage 1, \(ranks) ranks"
            print("  \(label.padding(toLength: 24, withPad: " ", startingAt: 0)) parameters \(f(m.parameters)), "
                  + "gradients \(f(m.gradients)), AdamW \(f(m.adamMoments)), activations \(f(m.activations)): \(f(m.perRank))")
        }
    }

    /// Times sgemm and training steps with `n` threads, prints the figures and returns them as a JSON record.
    private func measure(_ c: GPTConfig, threads n: Int, kernel: String) -> [String: Any] {
        Parallel.setThreads(n)
        print("\n== \(n) thread\(n == 1 ? "" : "s") ==")
        // GEMMs are timed before and after the training steps and the faster of the
        // two kept per shape: a VM's neighbours must not make sgemm look slow.
        let shapes = Bench.gemms(c, B: batchSize, T: blockSize)
        let before = Bench.runGemms(shapes)
        let s = Bench.runSteps(c, B: batchSize, T: blockSize, steps: steps)
        let after = Bench.runGemms(shapes)
        let gemms = zip(before, after).map { $0.seconds <= $1.seconds ? $0 : $1 }
        var gemmFlops = 0.0, gemmSeconds = 0.0
        for r in gemms {
            gemmFlops += r.gemm.flops; gemmSeconds += r.seconds
            print(String(format: "  sgemm %-24@ %5d x %5d x %5d  x%-4d %7.1f GFLOP/s", r.gemm.name as NSString,
                         r.gemm.M, r.gemm.N, r.gemm.K, r.gemm.count, r.gflops))
        }
        let sgemm = gemmFlops / gemmSeconds / 1e9
        print(String(format: "  sgemm on the step's shapes: %.1f GFLOP/s (%.3f s of GEMM per step)", sgemm, gemmSeconds))

        let ratio = s.gflops / sgemm
        print(String(format: "  training step: %.3f s, %.0f tokens/s, %.1f GFLOP/s = %.1f%% of sgemm", s.secondsPerStep,
                     s.tokensPerSecond, s.gflops, 100 * ratio))
        // With one thread the CPU time of a step is its work whatever else runs on the machine.
        if n == 1 { print(String(format: "  CPU time of the least expensive step: %.4f s", s.cpuSecondsPerStep)) }
        print("  time per step by layer kind:")
        for (name, sec) in s.breakdown where sec > 0 {
            print(String(format: "    %-18@ %8.1f ms  %5.1f%%", name as NSString, sec * 1e3, 100 * sec / s.secondsPerStep))
        }
        print("  peak RSS of this process so far: " + MemoryEstimate.format(BenchCommand.peakRSS))
        return ["threads": n, "sgemm_gflops": sgemm, "step_seconds": s.secondsPerStep,
                "tokens_per_second": s.tokensPerSecond, "step_gflops": s.gflops, "ratio": ratio, "openblas": kernel,
                "attention_seconds": s.breakdown.first { $0.0 == Profiler.Kind.attention.name }?.1 ?? 0,
                "peak_rss_bytes": BenchCommand.peakRSS, "step_cpu_seconds": s.cpuSecondsPerStep,
                "blas": BLASKernel.library, "gemm_kernel": GEMMKernel.current.rawValue]
    }

    /// The attention of one layer alone, tiled against the (T,T) reference, in CPU time; after
    /// the steps, so that the reference's (T,T) buffers are not in the peak RSS printed above.
    private func printAttentionKernels(_ c: GPTConfig, threads n: Int) {
        Parallel.setThreads(n)
        let k = Bench.attentionKernels(c, B: batchSize, T: blockSize)
        print(String(format: "\nattention alone, one layer forward + backward, %d thread%@ (CPU time): tiled %.1f ms, "
                     + "reference %.1f ms (%.2fx)", n, n == 1 ? "" : "s", k.tiled * 1e3, k.reference * 1e3, k.reference / k.tiled))
    }

    /// Tokens/s of training steps with GPT-2's block, each option alone and all four, on `n` threads.
    private func compareArchitectures(_ base: GPTConfig, threads n: Int) -> [[String: Any]] {
        Parallel.setThreads(n)
        var gpt2 = base
        gpt2.norm = .layerNorm; gpt2.position = .learned; gpt2.mlp = .gelu; gpt2.qkNorm = false
        var arms: [(String, GPTConfig)] = [("gpt2", gpt2)]
        var all = gpt2
        for (name, change) in [("rmsnorm", { (c: inout GPTConfig) in c.norm = .rmsNorm }),
                               ("rope", { (c: inout GPTConfig) in c.position = .rope }),
                               ("swiglu", { (c: inout GPTConfig) in c.mlp = .swiglu }),
                               ("qk_norm", { (c: inout GPTConfig) in c.qkNorm = true })] {
            var c = gpt2
            change(&c); change(&all)
            arms.append((name, c))
        }
        arms.append(("all four", all))
        // Three rounds over the arms, the fastest step of each arm kept: a busy machine slows
        // whichever arm runs at that moment, not always the same one.
        let rounds = 3
        print("\n== architecture options, \(n) thread\(n == 1 ? "" : "s") (fastest step of \(rounds) rounds x \(steps)) ==")
        // With one thread the CPU time of a step is its work whatever else runs; it is the ratio shown.
        var wall = [Double](repeating: .infinity, count: arms.count), cpu = wall
        for _ in 0..<rounds {
            for (i, arm) in arms.enumerated() {
                let r = Bench.runSteps(arm.1, B: batchSize, T: blockSize, steps: steps)
                wall[i] = min(wall[i], r.secondsPerStep)
                cpu[i] = min(cpu[i], r.cpuSecondsPerStep)
            }
        }
        let tokens = Double(batchSize * blockSize), cost = n == 1 ? cpu : wall
        return arms.indices.map { i in
            let params = ParameterLayout(config: arms[i].1).count
            let speed = tokens / cost[i], ratio = cost[0] / cost[i]
            print("  " + arms[i].0.padding(toLength: 9, withPad: " ", startingAt: 0) + String(
                format: " %9d parameters  %8.0f tokens/s (%@)  %5.3fx GPT-2", params, speed,
                (n == 1 ? "CPU time" : "wall clock") as NSString, ratio))
            return ["arch": arms[i].0, "threads": n, "parameters": params, "step_seconds": wall[i],
                    "step_cpu_seconds": cpu[i], "tokens_per_second": speed, "vs_gpt2": ratio]
        }
    }

    /// The largest resident set size this process has had, in bytes (getrusage; Linux counts KiB).
    static var peakRSS: Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss * 1024
    }

    /// Runs this bench again in a child process with OpenBLAS's own choice of kernel.
    private func rerunWithNativeKernel() throws {
        print("\n===== again with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset =====")
        var args = Array(CommandLine.arguments.dropFirst()).filter { $0 != "--compare-kernels" && $0 != "--compare-options" }
        if let i = args.firstIndex(of: "--json"), i + 1 < args.count { args[i + 1] += ".native" }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0].hasPrefix("/") ? CommandLine.arguments[0]
            : FileManager.default.currentDirectoryPath + "/" + CommandLine.arguments[0])
        p.arguments = args
        var childEnv = ProcessInfo.processInfo.environment
        childEnv.removeValue(forKey: "OPENBLAS_CORETYPE")
        childEnv.removeValue(forKey: "OPENBLAS_L2_SIZE")
        childEnv.removeValue(forKey: BLASKernel.markerVariable)
        p.environment = childEnv
        try p.run()
        p.waitUntilExit()
        if p.terminationStatus != 0 { throw ExitCode(p.terminationStatus) }
    }
}
