// `gpt selftest comm --overlap`: how much of a non-blocking allreduce hides
// behind computation, with and without progress() calls in between.
import Foundation
import GPTComm
import GPTSupport
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Overlap measurement

/// Measures how much of an iallreduce completes while the rank computes, with and without progress().
///
/// For each mode it starts an iallreduce, computes for as long as a blocking
/// allreduce of the same size takes, then waits; the wait is the part of the
/// communication that computation did not hide.
struct OverlapMeasurement {
    let comm: Communicator
    let floats: Int

    func run() {
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: floats)
        defer { buf.deallocate() }
        buf.initialize(repeating: 1, count: floats)
        let repeats = 5

        comm.allreduce(buf, count: floats)  // warm-up: connections, buffers
        var blocking: [Double] = []
        for _ in 0..<repeats {
            comm.barrier()
            let t0 = now()
            comm.allreduce(buf, count: floats)
            blocking.append(now() - t0)
        }
        let tBlock = comm.allreduce(median(blocking), op: .max)

        var results: [(name: String, wait: Double, progress: Double)] = []
        for (name, slices) in [("no MPI calls while computing", 1), ("progress() every 1/20 of the compute", 20),
                               ("progress() every 1/100 of the compute", 100)] {
            var waits: [Double] = [], progresses: [Double] = []
            for _ in 0..<repeats {
                comm.barrier()
                let before = comm.timing
                let request = comm.iallreduce(buf, count: floats)
                let slice = tBlock / Double(slices)
                for _ in 0..<slices {
                    spin(seconds: slice)
                    if slices > 1 { comm.progress() }
                }
                let t0 = now()
                request.wait()
                waits.append(now() - t0)
                progresses.append(comm.timing.progressSeconds - before.progressSeconds)
            }
            results.append((name, comm.allreduce(median(waits), op: .max), comm.allreduce(median(progresses), op: .max)))
        }
        if comm.isRoot {
            let mb = Double(floats * 4) / 1e6
            say(String(format: "overlap: %d rank(s), %.1f MB allreduce, blocking %.1f ms (median of %d, slowest rank)",
                       comm.size, mb, tBlock * 1e3, repeats))
            for result in results {
                let exposed = result.wait + result.progress
                say("overlap: \(result.name): " + String(format: "compute %.1f ms, then wait %.1f ms, progress calls %.1f ms: %.0f%% of the allreduce hidden",
                           tBlock * 1e3, result.wait * 1e3, result.progress * 1e3,
                           max(0, 100 * (1 - exposed / tBlock))))
            }
        }
    }

    private func now() -> Double { monotonicSeconds() }

    private func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

    /// Busy arithmetic for `seconds`, without touching MPI.
    private func spin(seconds: Double) {
        let end = now() + seconds
        var x: Float = 1
        repeat {
            for k in 0..<1000 { x = x * 0.999 + Float(k & 3) }
        } while now() < end
        if x.isNaN { say("overlap: unreachable") }
    }
}

// MARK: - Output

/// Prints one line to standard output and flushes it.
private func say(_ line: String) {
    print(line)
    fflush(stdout)
}
