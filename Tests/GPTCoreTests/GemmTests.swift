import XCTest
import GPTCore
import TestSupport

/// `gemm` on both kernels against a product in Double, on every layout the linear layers
/// use and the edges of the AVX-512 kernel's tiles and blocks; the kernel choice; and the
/// worker pool that runs every parallel loop.
final class GemmTests: XCTestCase {
    override func tearDown() {
        Parallel.setThreads(1)
        super.tearDown()
    }

    /// The kernels this CPU can run; the AVX-512 one is named as skipped where it cannot.
    private func kernels() -> [GEMMKernel] {
        if !GEMMKernel.available(.avx512) {
            print("GemmTests: this CPU lacks AVX-512 (avx512f/cd/bw/dq/vl); only the BLAS kernel is tested")
        }
        return GEMMKernel.allCases.filter(GEMMKernel.available)
    }

    /// One product with the given layout: a is (M,K) or stored transposed, b (K,N) or stored
    /// transposed, with row strides padded by `pad`; c starts as random values.
    private struct Case {
        let M: Int, N: Int, K: Int, transA: Bool, transB: Bool, pad: Int, accumulate: Bool
        var a: [Float], b: [Float], c0: [Float]
        var lda: Int { (transA ? M : K) + pad }
        var ldb: Int { (transB ? K : N) + pad }
        var ldc: Int { N + pad }

        init(M: Int, N: Int, K: Int, transA: Bool, transB: Bool, pad: Int = 0, accumulate: Bool, seed: UInt64) {
            self.M = M; self.N = N; self.K = K; self.transA = transA; self.transB = transB
            self.pad = pad; self.accumulate = accumulate
            var rng = SplitMix64(seed: seed)
            a = (0..<((transA ? K : M) * ((transA ? M : K) + pad))).map { _ in rng.nextFloat() - 0.5 }
            b = (0..<((transB ? N : K) * ((transB ? K : N) + pad))).map { _ in rng.nextFloat() - 0.5 }
            c0 = (0..<(M * (N + pad))).map { _ in rng.nextFloat() - 0.5 }
        }

        func A(_ i: Int, _ k: Int) -> Float { transA ? a[k * lda + i] : a[i * lda + k] }
        func B(_ k: Int, _ j: Int) -> Float { transB ? b[j * ldb + k] : b[k * ldb + j] }

        /// c through `gemm` on the current kernel.
        func run() -> [Float] {
            var c = c0
            a.withUnsafeBufferPointer { a in
                b.withUnsafeBufferPointer { b in
                    c.withUnsafeMutableBufferPointer { c in
                        gemm(M: M, N: N, K: K, a.baseAddress!, ars: transA ? 1 : lda, acs: transA ? lda : 1,
                             b.baseAddress!, brs: transB ? 1 : ldb, bcs: transB ? ldb : 1,
                             c.baseAddress!, ldc: ldc, accumulate: accumulate)
                    }
                }
            }
            return c
        }

        /// The largest error against the product in Double, in units of sum |a||b| of the element.
        func error(_ c: [Float]) -> Double {
            var worst = 0.0
            for i in 0..<M {
                for j in 0..<N {
                    var s = accumulate ? Double(c0[i * ldc + j]) : 0, scale = accumulate ? abs(s) : 0
                    for k in 0..<K {
                        s += Double(A(i, k)) * Double(B(k, j)); scale += abs(Double(A(i, k)) * Double(B(k, j)))
                    }
                    worst = max(worst, abs(Double(c[i * ldc + j]) - s) / max(scale, 1e-30))
                }
                for j in N..<ldc where c[i * ldc + j] != c0[i * ldc + j] { return .infinity }  // past N: untouched
            }
            return worst
        }
    }

    func testBothKernelsMatchTheProductInDoubleOnEveryLayoutAndEdge() {
        // 12 x 32 tiles, 256-deep k blocks and 512-column b blocks: below, at and past each.
        let shapes: [(Int, Int, Int)] = [(1, 1, 1), (11, 31, 7), (12, 32, 256), (13, 33, 257), (25, 65, 100),
                                         (100, 130, 600), (245, 520, 33), (37, 1, 300), (1, 77, 64)]
        var seed: UInt64 = 1
        for kernel in kernels() {
            GEMMKernel.with(kernel) {
                for threads in [1, 2] {
                    Parallel.setThreads(threads)
                    for (M, N, K) in shapes {
                        for (transA, transB) in [(false, true), (false, false), (true, false), (true, true)] {
                            for accumulate in [false, true] {
                                seed += 1
                                let c = Case(M: M, N: N, K: K, transA: transA, transB: transB, pad: Int(seed % 3),
                                             accumulate: accumulate, seed: seed)
                                let e = c.error(c.run())
                                XCTAssertLessThan(e, 2e-6, "\(kernel) \(threads) thread(s): \(M)x\(N)x\(K) transA \(transA) "
                                                  + "transB \(transB) accumulate \(accumulate) pad \(c.pad)")
                            }
                        }
                    }
                }
            }
        }
    }

    func testAVX512ResultsDoNotDependOnTheThreadCount() throws {
        guard GEMMKernel.available(.avx512) else { throw XCTSkip("this CPU lacks AVX-512 (avx512f/cd/bw/dq/vl)") }
        for (M, N, K) in [(768, 384, 128), (130, 70, 1000), (25, 600, 40)] {
            let c = Case(M: M, N: N, K: K, transA: false, transB: true, accumulate: true, seed: UInt64(M))
            let results = GEMMKernel.with(.avx512) {
                [1, 2, 3, 5].map { t -> [UInt32] in Parallel.setThreads(t); return c.run().map(\.bitPattern) }
            }
            for r in results.dropFirst() { XCTAssertEqual(r, results[0], "\(M)x\(N)x\(K)") }
        }
    }

    func testTheKernelChoiceFollowsTheCPUAndTheSetting() throws {
        let wide: Set<String> = ["avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]
        let avx2: Set<String> = ["avx2", "fma"]
        #if arch(x86_64)
        XCTAssertEqual(try GEMMKernel.choose(setting: nil, cpuFlags: wide), .avx512)
        XCTAssertEqual(try GEMMKernel.choose(setting: "auto", cpuFlags: wide), .avx512)
        XCTAssertEqual(try GEMMKernel.choose(setting: "AVX512", cpuFlags: wide), .avx512)
        #endif
        XCTAssertEqual(try GEMMKernel.choose(setting: nil, cpuFlags: avx2), .blas)
        XCTAssertEqual(try GEMMKernel.choose(setting: "blas", cpuFlags: wide), .blas)
        // AVX-512 without BW/DQ/VL (Knights Landing) is not enough.
        XCTAssertEqual(try GEMMKernel.choose(setting: nil, cpuFlags: avx2.union(["avx512f", "avx512cd"])), .blas)
        XCTAssertThrowsError(try GEMMKernel.choose(setting: "avx512", cpuFlags: avx2)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("avx512f") && text.contains("SWIFTGPT_GEMM=blas"), text)
        }
        XCTAssertThrowsError(try GEMMKernel.choose(setting: "mkl", cpuFlags: wide)) { error in
            XCTAssertTrue("\(error)".contains("auto, blas or avx512"), "\(error)")
        }
    }

    func testABadSettingIsOneErrorLineAndTheRunLogNamesTheKernel() throws {
        let r = try TestSupport.run(try GPTBinary.path(), ["bench", "--memory-only"], environment: ["SWIFTGPT_GEMM": "fastest"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertEqual(r.output.split(separator: "\n").filter { $0.hasPrefix("error:") }.count, 1, r.output)
        XCTAssertTrue(r.output.contains("SWIFTGPT_GEMM=fastest is not a GEMM kernel"), r.output)
        for kernel in kernels() {
            let ok = try TestSupport.run(try GPTBinary.path(), ["bench", "--memory-only"], environment: ["SWIFTGPT_GEMM": kernel.rawValue])
            XCTAssertEqual(ok.status, 0, ok.output)
            XCTAssertTrue(ok.output.contains("gemm: " + (kernel == .blas ? "cblas_sgemm" : "SwiftGPT AVX-512")), ok.output)
        }
    }

    /// GELU forward is one generic definition run 8 or 16 floats wide: the same floats either way,
    /// also in the tail that is not a whole vector.
    func testGELUForwardGivesTheSameFloatsAtBothWidths() throws {
        guard GEMMKernel.available(.avx512) else { throw XCTSkip("this CPU lacks AVX-512 (avx512f/cd/bw/dq/vl)") }
        var rng = SplitMix64(seed: 7)
        let n = 10_007
        let x = (0..<n).map { i -> Float in i % 97 == 0 ? [0, -0.0, 30, -30, 1e-30][i % 5] : 12 * (rng.nextFloat() - 0.5) }
        func run(_ kernel: GEMMKernel) -> [UInt32] {
            var out = [Float](repeating: .nan, count: n)
            GEMMKernel.with(kernel) {
                x.withUnsafeBufferPointer { i in
                    out.withUnsafeMutableBufferPointer { geluForward($0.baseAddress!, i.baseAddress!, N: n) }
                }
            }
            return out.map(\.bitPattern)
        }
        for threads in [1, 2] {
            Parallel.setThreads(threads)
            let narrow = run(.blas), wide = run(.avx512)
            XCTAssertEqual(narrow, wide, "\(threads) thread(s)")
            XCTAssertFalse(narrow.contains { Float(bitPattern: $0).isNaN })
        }
    }

    // MARK: - The worker pool

    func testEveryChunkRunsOnceForAnyThreadCount() {
        for threads in [1, 2, 3, 4, 8, 2, 1, 3] {  // growing and shrinking the pool
            Parallel.setThreads(threads)
            for count in [0, 1, 2, 3, 7, 64, 1000] {
                let hits = UnsafeMutablePointer<Int>.allocate(capacity: max(1, count))
                hits.initialize(repeating: 0, count: max(1, count))
                defer { hits.deallocate() }
                var chunksSeen = Set<Int>()
                let lock = NSLock()
                Parallel.forIndexedChunks(count) { chunk, start, end in
                    lock.lock(); chunksSeen.insert(chunk); lock.unlock()
                    for i in start..<end { hits[i] += 1 }
                }
                XCTAssertTrue((0..<count).allSatisfy { hits[$0] == 1 }, "\(threads) threads, \(count) items")
                XCTAssertTrue(chunksSeen.allSatisfy { $0 < Parallel.chunkCount(count) }, "\(threads) threads, \(count) items")
            }
        }
    }

    func testNestedLoopsAndLoopsFromTwoThreadsAtOnceAllFinish() {
        Parallel.setThreads(2)
        let total = UnsafeMutablePointer<Int>.allocate(capacity: 2)
        total.initialize(repeating: 0, count: 2)
        defer { total.deallocate() }
        // Two threads each run 20,000 tiny loops whose chunks start nested loops of their own.
        DispatchQueue.concurrentPerform(iterations: 2) { t in
            var sum = 0
            for _ in 0..<20_000 {
                let parts = UnsafeMutablePointer<Int>.allocate(capacity: 2)
                parts.initialize(repeating: 0, count: 2)
                Parallel.forIndexedChunks(2) { chunk, start, end in
                    var inner = 0
                    let lock = NSLock()
                    Parallel.forChunks(4) { s, e in lock.lock(); inner += e - s; lock.unlock() }
                    parts[chunk] = (end - start) * inner
                }
                sum += parts[0] + parts[1]
                parts.deallocate()
            }
            total[t] = sum
        }
        XCTAssertEqual(total[0], 20_000 * 8)
        XCTAssertEqual(total[1], 20_000 * 8)
    }
}
