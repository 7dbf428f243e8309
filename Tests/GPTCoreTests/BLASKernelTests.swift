import XCTest
import GPTCore
import TestSupport

/// The OpenBLAS kernel choice: OpenBLAS's fallback for CPUs it cannot name is
/// replaced by the best kernel the CPU's flags allow, and only then.
final class BLASKernelTests: XCTestCase {
    private let avx512: Set<String> = ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]
    private let avx2: Set<String> = ["sse4_2", "avx", "avx2", "fma"]

    func testLegacyFallbackIsReplacedByTheBestKernelTheCPUHas() {
        XCTAssertEqual(BLASKernel.override(detected: "Prescott", cpuFlags: avx512, environment: [:]), "SkylakeX")
        XCTAssertEqual(BLASKernel.override(detected: "Prescott", cpuFlags: avx2, environment: [:]), "Haswell")
        XCTAssertEqual(BLASKernel.override(detected: "Nehalem", cpuFlags: avx2, environment: [:]), "Haswell")
        // AVX-512 without BW/VL/DQ (Knights Landing) is not enough for SkylakeX.
        XCTAssertEqual(BLASKernel.override(detected: "Prescott", cpuFlags: avx2.union(["avx512f", "avx512cd"]),
                                           environment: [:]), "Haswell")
    }

    func testAGoodChoiceAUserChoiceAndAnOldCPUAreLeftAlone() {
        XCTAssertNil(BLASKernel.override(detected: "Haswell", cpuFlags: avx512, environment: [:]))
        XCTAssertNil(BLASKernel.override(detected: "SkylakeX", cpuFlags: avx512, environment: [:]))
        XCTAssertNil(BLASKernel.override(detected: "Zen", cpuFlags: avx2, environment: [:]))
        XCTAssertNil(BLASKernel.override(detected: "Prescott", cpuFlags: avx512, environment: ["OPENBLAS_CORETYPE": "Prescott"]))
        XCTAssertNil(BLASKernel.override(detected: "Prescott", cpuFlags: avx512,
                                         environment: [BLASKernel.markerVariable: "SkylakeX"]), "restarts at most once")
        XCTAssertNil(BLASKernel.override(detected: "Prescott", cpuFlags: ["sse3", "sse4_2", "avx"], environment: [:]))
    }

    func testCPUFlagsAreReadFromCpuinfo() throws {
        let dir = try TemporaryDirectory()
        let path = dir.file("cpuinfo")
        try "processor\t: 0\nmodel name\t: Test CPU\nflags\t\t: fpu sse2 avx2 fma avx512f\nbugs\t\t: spectre\n\nprocessor\t: 1\nflags\t\t: fpu\n"
            .write(toFile: path, atomically: false, encoding: .utf8)
        XCTAssertEqual(BLASKernel.cpuFlags(cpuinfo: path), ["fpu", "sse2", "avx2", "fma", "avx512f"])
        XCTAssertEqual(BLASKernel.cpuFlags(cpuinfo: dir.file("missing")), [])
    }

    /// The real library on this machine: with OPENBLAS_CORETYPE unset (bench's own child
    /// process), gpt never runs a kernel without AVX2 on a CPU that has AVX2.
    func testGPTRunsAnAVX2KernelWhereTheCPUHasIt() throws {
        let flags = BLASKernel.cpuFlags()
        try XCTSkipUnless(flags.isSuperset(of: ["avx2", "fma"]), "this CPU has no AVX2")
        try XCTSkipUnless(BLASKernel.provider == "OpenBLAS", "this build uses \(BLASKernel.provider), not OpenBLAS")
        let r = try TestSupport.run(try GPTBinary.path(), ["bench", "--n-layer", "1", "--n-head", "1", "--n-embd", "16", "--block-size", "8",
                                               "--batch-size", "2", "--steps", "1", "--threads", "1", "--compare-kernels"],
                        environment: ["OPENBLAS_CORETYPE": "Haswell"], timeout: 120)
        XCTAssertEqual(r.status, 0, r.output)
        let kernels = r.output.split(separator: "\n").filter { $0.hasPrefix("OpenBLAS ") && $0.contains(", kernel ") }
        XCTAssertEqual(kernels.count, 2, r.output)
        XCTAssertTrue(kernels[0].contains(", kernel Haswell (OPENBLAS_CORETYPE=Haswell"), String(kernels[0]))
        XCTAssertTrue(kernels[0].hasSuffix("; threads set by openblas_set_num_threads"), String(kernels[0]))
        let unset = kernels[1].components(separatedBy: ", kernel ")[1].split(separator: " ")[0].lowercased()
        XCTAssertTrue(["haswell", "skylakex", "cooperlake", "sapphirerapids", "zen"].contains(unset),
                      "with OPENBLAS_CORETYPE unset the kernel is \(kernels[1])")
    }
}
