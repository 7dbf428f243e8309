// swift-tools-version: 6.0
//
// SwiftGPT: a distributed data-parallel GPT trainer for CPU clusters.
//
// Module map (each module imports only those above it):
//   C libraries (Debian packages, found with pkg-config) -> CBLAS (OpenBLAS, or BLIS), CMPI, CHDF5
//   GPTSupport     small shared pieces: monotonic clock, lock + condition, progress line,
//                  interrupt cleanup, string quoting, the input error type, SHA-256 and HMAC
//   GPTTokenizers  text <-> token ids: the char and byte-level BPE tokenizers, BPE training
//   GPTSIMD        kernels written once for any vector width (exp, attention's tiles and softmax rows)
//   GPTWideKernels the AVX-512 kernels (the GEMM's and attention's register tiles, the softmax
//                  rows at 16 floats), run only where the CPU has it
//   GPTCore        the model: kernels (forward/backward pairs), parameters, AdamW, sampling
//   GPTData        files: the HDF5 wrapper, corpora (read, prepared from text or documents),
//                  checkpoints, tokenizer files
//   GPTComm        the only module that talks MPI: Communicator, generic collectives, the
//                  communication thread, one deadline monitor for the watchdogs
//   GPTInterop     files other tools read: Hugging Face model directories (safetensors,
//                  GPT-2's tokenizer files), TensorBoard event files
//   GPTTrain       configs (one key table), batch sources, the training loop and its parts
//                  (state, evaluator, reports to console, metrics.jsonl and TensorBoard), checkpoints on disk
//   gpt            the command-line tool
import PackageDescription

// Release builds are what we measure (plain -O: preconditions stay checked,
// so bad input is a clear error and never memory corruption). The
// "haswell" CPU level (AVX2 + FMA, i.e. x86-64-v3: every x86 server since 2013-2015) lets LLVM
// vectorise our element-wise kernels 8 floats wide with fused multiply-add.
// Set SWIFTGPT_TARGET_CPU to override (e.g. "native", or "x86-64" for very old CPUs).
let targetCPU = Context.environment["SWIFTGPT_TARGET_CPU"] ?? "haswell"
let hotLoopFlags: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", targetCPU], .when(platforms: [.linux], configuration: .release)),
]

// GPTWideKernels holds the kernels for CPUs with AVX-512 (the GEMM's register tile), compiled
// for that level so the compiler uses 512-bit registers; GPTCore calls into it only after
// checking the CPU's flags (Kernels/Gemm.swift). On other architectures it builds as plain code.
#if arch(x86_64)
let wideFlags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "skylake-avx512"], .when(platforms: [.linux]))]
#else
let wideFlags: [SwiftSetting] = []
#endif

// The CBLAS under every matrix multiply, chosen when the package is built: OpenBLAS (the
// default, Debian's libopenblas-dev) or, with SWIFTGPT_BLAS=blis, BLIS (Debian's libblis-dev),
// through a shim with the same helpers (Sources/CBLAS, Sources/CBLAS/BLIS). Build the other
// into its own folder: SWIFTGPT_BLAS=blis swift build -c release --build-path .build-blis
let blas = Context.environment["SWIFTGPT_BLAS"] ?? "openblas"
let cblas: Target
switch blas {
case "openblas":
    cblas = .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                           providers: [.apt(["libopenblas-dev"])])
case "blis":  // Debian ships no blis.pc; blis.h and libblis.so are on the default paths
    cblas = .systemLibrary(name: "CBLAS", path: "Sources/CBLAS/BLIS", providers: [.apt(["libblis-dev"])])
default:
    fatalError("SWIFTGPT_BLAS must be openblas (the default) or blis, not \"\(blas)\"")
}

let package = Package(
    name: "SwiftGPT",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "gpt", targets: ["gpt"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        // MARK: - C libraries
        cblas,
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev"])]),

        // MARK: - Libraries
        .target(name: "GPTSupport"),
        .target(name: "GPTTokenizers", dependencies: ["GPTSupport"], swiftSettings: hotLoopFlags),
        .target(name: "GPTSIMD", swiftSettings: hotLoopFlags),
        .target(name: "GPTWideKernels", dependencies: ["GPTSIMD"], swiftSettings: wideFlags),
        .target(name: "GPTCore", dependencies: ["CBLAS", "GPTSupport", "GPTSIMD", "GPTWideKernels"],
                swiftSettings: hotLoopFlags),
        .target(name: "GPTData", dependencies: ["CHDF5", "GPTCore", "GPTTokenizers", "GPTSupport"],
                swiftSettings: hotLoopFlags),
        .target(name: "GPTComm", dependencies: ["CMPI", "GPTSupport"]),
        .target(name: "GPTInterop", dependencies: ["GPTCore", "GPTData", "GPTTokenizers", "GPTSupport"]),
        .target(name: "GPTTrain",
                dependencies: ["GPTCore", "GPTData", "GPTComm", "GPTInterop", "GPTSupport",
                               .product(name: "TOMLKit", package: "TOMLKit")],
                swiftSettings: hotLoopFlags),

        // MARK: - Command-line tool
        .executableTarget(name: "gpt",
                          dependencies: ["GPTTrain", "GPTInterop", "GPTSupport",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: hotLoopFlags),

        // MARK: - Tests
        .target(name: "TestSupport", dependencies: ["GPTCore", "GPTData"], path: "Tests/TestSupport"),
        .testTarget(name: "GPTCoreTests", dependencies: ["GPTCore", "GPTData", "TestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "GPTDataTests", dependencies: ["GPTData", "GPTSupport", "TestSupport"]),
        .testTarget(name: "GPTTrainTests", dependencies: ["GPTTrain", "GPTSupport", "TestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "GPTInteropTests",
                    dependencies: ["GPTInterop", "GPTTrain", "GPTTokenizers", "GPTSupport", "TestSupport"]),
        .testTarget(name: "DistributedTests", dependencies: ["GPTTrain", "TestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
