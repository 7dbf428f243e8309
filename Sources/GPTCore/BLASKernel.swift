import CBLAS
#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Which CBLAS and which of its kernels run our GEMMs, and a fix for CPUs OpenBLAS does not know.
///
/// The library is a build choice (Package.swift: OpenBLAS, or BLIS with SWIFTGPT_BLAS=blis);
/// `library` and `current` say which one this binary runs, for `gpt bench` and the run log.
///
/// OpenBLAS (as packaged by Debian, a DYNAMIC_ARCH build) chooses its kernel
/// at load time from the CPU's family and model numbers. A CPU newer than the
/// library (an Emerald Rapids Xeon under OpenBLAS 0.3.21, say) gets the
/// generic SSE3 kernel, "Prescott": a third of the speed of the AVX2 kernel,
/// a fifth of the AVX-512 one. The only documented override is the
/// environment variable OPENBLAS_CORETYPE, read once when the library loads,
/// so `gpt` starts over (execv, same process, before MPI_Init) with it set
/// when OpenBLAS picked a kernel without AVX2 on a CPU that has it. A
/// user-set OPENBLAS_CORETYPE is always left alone.
public enum BLASKernel {
    /// Set (to the kernel chosen) in the environment of a process `gpt` restarted.
    public static let markerVariable = "SWIFTGPT_OPENBLAS_CORETYPE_CHOSEN"

    /// The CBLAS this binary is linked with: "OpenBLAS" or "BLIS".
    public static var provider: String { String(cString: swiftgpt_blas_provider()) }

    /// The library and its version, "OpenBLAS 0.3.21" or "BLIS 0.9.0".
    public static var library: String {
        guard let line = swiftgpt_blas_config() else { return provider }
        return String(cString: line).split(separator: " ").prefix(2).joined(separator: " ")
    }

    /// The kernel the library runs in this process (OpenBLAS: "Haswell", "SkylakeX", "Prescott", ...;
    /// BLIS: "zen3", "haswell", "skx", ...).
    public static var current: String {
        guard let name = swiftgpt_blas_kernel() else { return "unknown" }
        return String(String(cString: name).split(whereSeparator: { $0 == " " || $0 == "\n" }).first ?? "unknown")
    }

    /// The variables this decision reads, from the process environment.
    static var environment: [String: String] {
        var result: [String: String] = [:]
        for name in ["OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", markerVariable] {
            if let value = getenv(name) { result[name] = String(cString: value) }
        }
        return result
    }

    /// OpenBLAS kernels that use neither AVX2 nor AVX-512: its fallbacks for x86 CPUs it cannot name.
    static let legacyKernels: Set<String> = [
        "katmai", "coppermine", "northwood", "prescott", "banias", "core2", "penryn", "dunnington", "nehalem",
        "sandybridge", "atom", "nano", "athlon", "opteron", "opteron_sse3", "barcelona", "bobcat", "bulldozer",
        "piledriver", "steamroller", "excavator",
    ]

    /// The OPENBLAS_CORETYPE to restart with, or nil to keep what OpenBLAS chose.
    ///
    /// - Parameters:
    ///   - detected: OpenBLAS's kernel name in this process.
    ///   - cpuFlags: the CPU feature flags the kernel reports (as in /proc/cpuinfo: "avx2", "fma", "avx512f", ...).
    ///   - environment: this process's environment.
    public static func override(detected: String, cpuFlags: Set<String>,
                                environment: [String: String]) -> String? {
        if environment["OPENBLAS_CORETYPE"] != nil || environment[markerVariable] != nil { return nil }
        guard legacyKernels.contains(detected.lowercased()) else { return nil }
        if cpuFlags.isSuperset(of: ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"]) { return "SkylakeX" }
        if cpuFlags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        return nil
    }

    /// The CPU feature flags of the first processor in /proc/cpuinfo (empty where there is none).
    public static func cpuFlags(cpuinfo path: String = "/proc/cpuinfo") -> Set<String> {
        guard let f = fopen(path, "r") else { return [] }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, f) > 0, let line {
            let text = String(cString: line)
            guard text.hasPrefix("flags"), let colon = text.firstIndex(of: ":") else { continue }
            return Set(text[text.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        }
        return []
    }

    /// Restarts this process with a better OPENBLAS_CORETYPE when OpenBLAS fell back to a
    /// legacy kernel on an AVX2 or AVX-512 CPU; returns (doing nothing) otherwise or if
    /// the restart fails. Call first thing in `main`, before MPI or any thread starts.
    public static func restartIfMisdetected() {
        guard provider == "OpenBLAS",
              let coretype = override(detected: current, cpuFlags: cpuFlags(), environment: environment) else { return }
        setenv("OPENBLAS_CORETYPE", coretype, 1)
        setenv(markerVariable, coretype, 1)
        var argv: [UnsafeMutablePointer<CChar>?] = CommandLine.arguments.map { strdup($0) }
        argv.append(nil)
        execv("/proc/self/exe", argv)
        // execv returned: run on with OpenBLAS's own choice.
        unsetenv("OPENBLAS_CORETYPE")
        unsetenv(markerVariable)
    }

    /// One line for logs: the library, its kernel and who chose it, and its thread call.
    public static var summary: String {
        "\(library), kernel " + kernelOrigin + "; threads set by " + String(cString: swiftgpt_blas_thread_call())
    }

    /// The kernel, and who chose it.
    private static var kernelOrigin: String {
        guard provider == "OpenBLAS" else { return "\(current) (detected by \(provider))" }
        if let chosen = environment[markerVariable], chosen == environment["OPENBLAS_CORETYPE"] {
            return "\(current) (set by gpt: OpenBLAS does not recognise this CPU and would "
                + "run its generic SSE kernel; OPENBLAS_CORETYPE=\(chosen))"
        }
        if let set = environment["OPENBLAS_CORETYPE"] {
            return "\(current) (OPENBLAS_CORETYPE=\(set)"
                + (environment["OPENBLAS_L2_SIZE"].map { ", OPENBLAS_L2_SIZE=\($0)" } ?? "") + ")"
        }
        return "\(current) (detected by OpenBLAS)"
    }
}
