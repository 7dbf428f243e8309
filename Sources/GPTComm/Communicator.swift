// The Communicator: the one place where the trainer talks to MPI.
//
// Every rank holds one `Communicator.world`. Its first use initialises MPI
// (MPI_THREAD_SERIALIZED): one thread at a time owns MPI, at first the one
// that initialised it; a `BackgroundAllreducer` borrows it for its
// communication thread while the owner computes, and hands it back. A process
// started without `mpirun` becomes an MPI singleton, a world of one.
//
// Errors: the world communicator uses MPI_ERRORS_RETURN and every return code
// is checked. A failed call prints one line naming the rank, the call and
// MPI's own error text, then aborts the whole job with MPI_Abort, so that no
// peer is left blocked in a collective that will never complete.
//
// This file: identity, MPI start-up, timing, abort and finalize, and the
// checks every call goes through. Collectives.swift has the blocking
// collectives (generic over CommElement.swift's element types),
// AllreduceRequest.swift and BackgroundAllreducer.swift the non-blocking ones,
// DeadlineMonitor.swift the engine behind `collectiveTimeout`.
import CMPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Timing

/// Time this rank spent inside communication calls, accumulated since the last reset.
///
/// `exposedSeconds` is the communication time the trainer could not hide behind
/// computation: blocking collectives, waits on non-blocking requests (and on a
/// `BackgroundAllreducer`'s round), and the MPI progress calls made between layers.
/// `backgroundSeconds` is the time a communication thread spent reducing while
/// the caller computed: communication that overlap hid, wholly or partly.
public struct CommunicationTiming: Sendable {
    /// Seconds inside blocking collectives (allreduce, broadcast, barrier, allgather).
    public var blockingSeconds = 0.0
    /// Seconds inside `AllreduceRequest.wait()`.
    public var waitSeconds = 0.0
    /// Seconds inside `progress()` and `AllreduceRequest.test()`.
    public var progressSeconds = 0.0
    /// Seconds a `BackgroundAllreducer`'s communication thread had buckets in flight (first start to last completion).
    public var backgroundSeconds = 0.0
    /// Number of blocking collectives.
    public var blockingCalls = 0
    /// Number of non-blocking allreduces started (including a `BackgroundAllreducer`'s buckets).
    public var nonBlockingCalls = 0
    /// Bytes passed to allreduce and iallreduce (this rank's buffer sizes, not wire traffic).
    public var reducedBytes = 0

    /// Communication time not overlapped with computation.
    public var exposedSeconds: Double { blockingSeconds + waitSeconds + progressSeconds }

    public init() {}
}

// MARK: - Communicator

/// The MPI world as seen by one rank: identity, collectives and non-blocking allreduce.
///
/// All methods must be called from the thread that owns MPI: the one that first
/// touched `world` (normally the main thread), except while a
/// `BackgroundAllreducer` has borrowed it. Collectives must be called by every
/// rank, in the same order, with the same counts and the same root.
public final class Communicator {
    /// The world of all ranks started together; the first access initialises MPI.
    public static let world = Communicator()

    /// This rank's index in the world, `0..<size`.
    public let rank: Int
    /// Number of ranks in the world (1 when run without `mpirun`).
    public let size: Int
    /// This rank's index among the ranks on the same node, `0..<localSize`.
    public let localRank: Int
    /// Number of ranks on this node (ranks that can share memory with this one).
    public let localSize: Int
    /// Number of distinct nodes in the world.
    public let nodeCount: Int
    /// The node name reported by MPI_Get_processor_name.
    public let hostname: String
    /// Whether this is rank 0, which owns evaluation, checkpoints, samples and logs.
    public var isRoot: Bool { rank == 0 }

    /// Communication time accumulated since start or the last `resetTiming()`.
    public internal(set) var timing = CommunicationTiming()
    /// Whether `finalize()` has run; no MPI call is allowed afterwards.
    public private(set) var isFinalized = false

    /// Seconds one blocking call (a collective, a wait, the end of a `BackgroundAllreducer` round)
    /// may last before this rank aborts the job; 0, the default, waits forever.
    ///
    /// Open MPI ends the job when a rank dies, but not when one hangs or its network goes
    /// silent; this limit turns such a hang into one error line and a job abort.
    public var collectiveTimeout: Double = 0 {
        didSet {
            deadline?.cancel()
            deadline = nil
            guard collectiveTimeout > 0 else { return }
            let label = self.label, limit = collectiveTimeout, world = comm
            deadline = Deadline(limit: limit, describe: { what, elapsed in
                String(format: "gpt: %@: %@ has not completed after %.0f s (collective_timeout = %g s): "
                    + "another rank is hung, stopped or unreachable; aborting all ranks", label as NSString, what as NSString, elapsed, limit)
            }, fire: { message in
                Communicator.printError(message)
                MPI_Abort(world, 1)
                _exit(1)
            })
        }
    }
    /// The clock of the blocking call in progress, watched by the process's `DeadlineMonitor`.
    private var deadline: Deadline?

    let comm: MPI_Comm?
    private var localComm: MPI_Comm?
    /// The thread that may call MPI now (MPI_THREAD_SERIALIZED); guarded by `ownerLock`.
    private var owner: pthread_t
    private let ownerLock = NSLock()
    /// Non-blocking allreduces not yet known to be complete, oldest first.
    var outstanding: [AllreduceRequest] = []

    /// Largest element count handed to one MPI call (MPI counts are 32-bit).
    static let maxChunk = 1 << 30

    /// The live instance, for the process-exit handler (which must not touch `world`'s lazy initialiser).
    private static var instance: Communicator?

    private init() {
        var alreadyInitialized: Int32 = 0
        MPI_Initialized(&alreadyInitialized)
        guard alreadyInitialized == 0 else {
            Communicator.exitBeforeInit("MPI was initialised outside Communicator; only Communicator.world may call MPI_Init")
        }
        Communicator.chooseNonBlockingAllreduceAlgorithm()
        var provided: Int32 = 0
        let rc = MPI_Init_thread(nil, nil, swiftgpt_mpi_thread_serialized(), &provided)
        guard rc == MPI_SUCCESS else {
            Communicator.exitBeforeInit("MPI_Init_thread failed: \(Communicator.errorText(rc)); "
                + "is Open MPI installed (openmpi-bin) and, under mpirun, are all ranks started the same way?")
        }
        owner = pthread_self()
        let world = swiftgpt_mpi_comm_world()
        comm = world
        guard provided >= swiftgpt_mpi_thread_serialized() else {
            Communicator.abortBeforeInit(world, "MPI provides thread level \(provided), but MPI_THREAD_SERIALIZED is required "
                + "(the gradient allreduce runs on its own thread); use an Open MPI built with thread support")
        }
        Communicator.checkBeforeInit(world, MPI_Comm_set_errhandler(world, swiftgpt_mpi_errors_return()),
                                     "MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN)")

        var r: Int32 = 0, n: Int32 = 0
        Communicator.checkBeforeInit(world, MPI_Comm_rank(world, &r), "MPI_Comm_rank")
        Communicator.checkBeforeInit(world, MPI_Comm_size(world, &n), "MPI_Comm_size")
        rank = Int(r)
        size = Int(n)

        var name = [CChar](repeating: 0, count: Int(swiftgpt_mpi_max_processor_name()) + 1)
        var nameLength: Int32 = 0
        Communicator.checkBeforeInit(world, MPI_Get_processor_name(&name, &nameLength), "MPI_Get_processor_name")
        hostname = String(decoding: name.prefix(Int(nameLength)).map { UInt8(bitPattern: $0) }, as: UTF8.self)

        var local: MPI_Comm? = swiftgpt_mpi_comm_null()
        Communicator.checkBeforeInit(world, MPI_Comm_split_type(world, swiftgpt_mpi_comm_type_shared(), r,
                                                                 swiftgpt_mpi_info_null(), &local),
                                     "MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)")
        Communicator.checkBeforeInit(world, MPI_Comm_set_errhandler(local, swiftgpt_mpi_errors_return()),
                                     "MPI_Comm_set_errhandler(node communicator)")
        var lr: Int32 = 0, ln: Int32 = 0
        Communicator.checkBeforeInit(world, MPI_Comm_rank(local, &lr), "MPI_Comm_rank(node communicator)")
        Communicator.checkBeforeInit(world, MPI_Comm_size(local, &ln), "MPI_Comm_size(node communicator)")
        localComm = local
        localRank = Int(lr)
        localSize = Int(ln)

        var leaders: Int64 = lr == 0 ? 1 : 0
        Communicator.checkBeforeInit(world, MPI_Allreduce(swiftgpt_mpi_in_place(), &leaders, 1, swiftgpt_mpi_int64(),
                                                          swiftgpt_mpi_sum(), world),
                                     "MPI_Allreduce(node count)")
        nodeCount = Int(leaders)

        Communicator.instance = self
        on_exit(communicatorProcessExit, nil)
    }

    /// Makes Open MPI's non-blocking allreduce (libnbc) use its ring algorithm, unless the user chose one.
    ///
    /// For an in-place reduction, or fewer than 4 ranks, libnbc otherwise picks a binomial
    /// tree: a reduce to rank 0 followed by a broadcast, each moving the whole buffer over
    /// rank 0's link, one after the other. The ring (reduce-scatter then allgather around
    /// the ranks) moves 2(p-1)/p of the buffer per link, in both directions at once: half
    /// the time or less for large gradient buckets. Every rank gets the same result either way.
    /// MCA parameters are read from the environment by MPI_Init.
    private static func chooseNonBlockingAllreduceAlgorithm() {
        setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0)
    }

    /// "rank 1 of 4 on node2", for messages.
    public var label: String { "rank \(rank) of \(size) on \(hostname)" }

    /// Zeroes the accumulated communication timing.
    public func resetTiming() { timing = CommunicationTiming() }

    // MARK: - Abort and finalize

    /// Ends the whole job at once (MPI_Abort), so that no rank stays blocked waiting for this one.
    ///
    /// `message`, when given, is printed to standard error first, prefixed with this rank's label.
    public func abort(code: Int32 = 1, message: String? = nil) -> Never {
        if let message { Communicator.printError("gpt: \(label): \(message)") }
        if isFinalized { exit(code) }
        MPI_Abort(comm, code)
        exit(code)
    }

    /// Waits for outstanding requests and shuts MPI down; collective; safe to call more than once.
    ///
    /// Runs by itself at process exit when not called: on a clean exit (status 0)
    /// or in a world of one it finalises; on an error exit in a larger world it
    /// aborts the job instead, because the other ranks may be blocked in a
    /// collective that this rank will never join.
    public func finalize() {
        guard !isFinalized else { return }
        enter("finalize")
        let t0 = MPI_Wtime()
        for request in outstanding { request.wait() }
        outstanding.removeAll()
        timing.waitSeconds += MPI_Wtime() - t0
        if localComm != swiftgpt_mpi_comm_null() {
            check(MPI_Comm_free(&localComm), "MPI_Comm_free(node communicator)")
        }
        check(blocking("finalize") { MPI_Finalize() }, "MPI_Finalize")
        isFinalized = true
    }

    /// Called from the process-exit handler when `finalize()` was not.
    fileprivate func processExiting(status: Int32) {
        guard !isFinalized else { return }
        if status == 0 || size == 1 {
            finalize()
        } else {
            Communicator.printError("gpt: \(label): exiting with status \(status) before finalize(); "
                                    + "aborting the job so that no rank waits for this one")
            MPI_Abort(comm, status)
        }
    }

    fileprivate static func processExiting(status: Int32) {
        instance?.processExiting(status: status)
    }

    // MARK: - Internals shared with AllreduceRequest

    /// Checks that MPI may be called here and now.
    func enter(_ what: String) {
        if isFinalized { fail("\(what) called after finalize()") }
        if !callerOwnsMPI {
            fail("\(what) called from a thread that does not own MPI now (MPI_THREAD_SERIALIZED: only the "
                 + "thread that initialised MPI may call it, and not while a BackgroundAllreducer is reducing)")
        }
    }

    /// Whether the calling thread is the one allowed to call MPI now.
    var callerOwnsMPI: Bool {
        ownerLock.lock()
        defer { ownerLock.unlock() }
        return pthread_equal(pthread_self(), owner) != 0
    }

    /// Passes MPI to `thread`; only the current owner may do this.
    func handOverMPI(to thread: pthread_t, _ what: @autoclosure () -> String) {
        enter(what())
        ownerLock.lock()
        owner = thread
        ownerLock.unlock()
    }

    /// Turns a non-success MPI return code into one clear line and a job abort.
    func check(_ rc: Int32, _ what: @autoclosure () -> String) {
        if rc != MPI_SUCCESS { fail("\(what()) failed: \(Communicator.errorText(rc))") }
    }

    /// Prints `message` with this rank's label and aborts the job.
    func fail(_ message: String) -> Never {
        Communicator.printError("gpt: \(label): \(message); aborting all ranks")
        if isFinalized { exit(1) }
        MPI_Abort(comm, 1)
        exit(1)
    }

    /// Runs `body`, a blocking MPI call named `what`, under `collectiveTimeout`.
    func blocking<T>(_ what: @autoclosure () -> String, _ body: () -> T) -> T {
        guard let deadline else { return body() }
        return deadline.guarded(what(), body)
    }

    /// Checks a caller-given element count.
    func validate(count: Int, _ what: @autoclosure () -> String) {
        if count < 0 { fail("\(what()): count must not be negative") }
    }

    // MARK: - Errors before the instance exists

    static func errorText(_ rc: Int32) -> String {
        var text = [CChar](repeating: 0, count: Int(swiftgpt_mpi_max_error_string()) + 1)
        var length: Int32 = 0
        guard MPI_Error_string(rc, &text, &length) == MPI_SUCCESS else { return "MPI error code \(rc)" }
        return String(decoding: text.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func printError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    private static func exitBeforeInit(_ message: String) -> Never {
        printError("gpt: \(message)")
        exit(1)
    }

    private static func abortBeforeInit(_ world: MPI_Comm?, _ message: String) -> Never {
        printError("gpt: \(message); aborting all ranks")
        MPI_Abort(world, 1)
        exit(1)
    }

    private static func checkBeforeInit(_ world: MPI_Comm?, _ rc: Int32, _ what: String) {
        if rc != MPI_SUCCESS { abortBeforeInit(world, "\(what) failed: \(errorText(rc))") }
    }
}

/// The process-exit hook registered with `on_exit`, which passes the exit status.
private func communicatorProcessExit(status: Int32, _: UnsafeMutableRawPointer?) {
    Communicator.processExiting(status: status)
}
