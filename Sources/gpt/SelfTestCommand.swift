// `gpt selftest comm`: exercises every Communicator operation with rank-dependent
// data and checks the exact results, one line per check.
//
//   mpirun -np 4 gpt selftest comm              # all checks; exit 1 on any mismatch
//   mpirun -np 4 gpt selftest comm --die-rank 1 # rank 1 kills itself mid-allreduce
//   mpirun -np 2 gpt selftest comm --overlap    # how much of an iallreduce hides behind compute
import ArgumentParser
import Foundation
import GPTComm
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Command

struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Check a subsystem against exact expected results (run under mpirun for several ranks).",
        discussion: """
            comm: every Communicator operation (allreduce sum/mean/max/min for float, double, \
            uint64 and int; broadcast of buffers, strings and bytes; allgather; barrier; \
            non-blocking allreduce in buckets with progress in between) on rank-dependent data. \
            Rank 0 prints one line per check; the exit status is 1 if any rank saw a mismatch.
            """)

    /// What `selftest` can check.
    enum Subsystem: String, ExpressibleByArgument, CaseIterable {
        case comm
    }

    @Argument(help: "What to check: \(Subsystem.allCases.map(\.rawValue).joined(separator: ", ")).")
    var subsystem: Subsystem

    @Option(help: ArgumentHelp("Make this rank SIGKILL itself while the other ranks are in an allreduce.",
                               discussion: "Checks that the job ends with an error instead of hanging."))
    var dieRank: Int?

    @Option(help: ArgumentHelp("Make this rank exit with an error while the other ranks are in an allreduce.",
                               discussion: "Checks that an error exit on one rank aborts the job instead of leaving the others blocked."))
    var failRank: Int?

    @Flag(help: "Broadcast from a root that does not exist, to check that MPI errors are reported and abort the job.")
    var provokeError = false

    @Flag(help: "Measure how much of a non-blocking allreduce hides behind computation, with and without progress().")
    var overlap = false

    @Option(help: "Floats per allreduce in the --overlap measurement.")
    var overlapFloats = 4_000_000

    func validate() throws {
        if let dieRank, dieRank < 0 { throw ValidationError("--die-rank must be a rank (0 or more), not \(dieRank)") }
        if let failRank, failRank < 0 { throw ValidationError("--fail-rank must be a rank (0 or more), not \(failRank)") }
        if overlapFloats < 1 { throw ValidationError("--overlap-floats must be at least 1, not \(overlapFloats)") }
    }

    func run() throws {
        switch subsystem {
        case .comm: try runComm()
        }
    }

    private func runComm() throws {
        let comm = Communicator.world
        for (name, value) in [("--die-rank", dieRank), ("--fail-rank", failRank)] {
            if let value, value >= comm.size {
                comm.finalize()  // every rank reaches the same verdict, so a clean shutdown is safe
                throw ValidationError("\(name) \(value) is not a rank: the world has \(comm.size) rank(s), 0...\(comm.size - 1)")
            }
        }
        if overlap {
            OverlapMeasurement(comm: comm, floats: overlapFloats).run()
            comm.finalize()
            return
        }
        var suite = CommSelfTest(comm: comm)
        try suite.run(dieRank: dieRank, failRank: failRank, provokeError: provokeError)
        let failed = suite.failedChecks
        comm.finalize()
        if failed > 0 { throw ExitCode(1) }
    }
}
