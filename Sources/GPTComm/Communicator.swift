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
import CMPI
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Reductions

/// How `allreduce` combines floating-point buffers across ranks.
public enum FloatReduction: Sendable, CustomStringConvertible {
    /// Element-wise sum over all ranks.
    case sum
    /// Element-wise sum divided by the number of ranks (gradient averaging).
    case mean
    /// Element-wise maximum over all ranks.
    case max
    /// Element-wise minimum over all ranks.
    case min

    public var description: String {
        switch self {
        case .sum: return "sum"
        case .mean: return "mean"
        case .max: return "max"
        case .min: return "min"
        }
    }

    /// The MPI operation that does the combining (`mean` is a sum, scaled afterwards).
    var mpiOp: MPI_Op {
        switch self {
        case .sum, .mean: return swiftgpt_mpi_sum()
        case .max: return swiftgpt_mpi_max()
        case .min: return swiftgpt_mpi_min()
        }
    }
}

/// How `allreduce` combines integer buffers (checksums, counters, flags) across ranks.
public enum IntegerReduction: Sendable, CustomStringConvertible {
    /// Element-wise sum over all ranks (wraps around on overflow, as MPI does).
    case sum
    /// Element-wise maximum over all ranks.
    case max
    /// Element-wise minimum over all ranks.
    case min

    public var description: String {
        switch self {
        case .sum: return "sum"
        case .max: return "max"
        case .min: return "min"
        }
    }

    var mpiOp: MPI_Op {
        switch self {
        case .sum: return swiftgpt_mpi_sum()
        case .max: return swiftgpt_mpi_max()
        case .min: return swiftgpt_mpi_min()
        }
    }
}

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
            watchdog = nil
            guard collectiveTimeout > 0 else { return }
            let label = self.label, limit = collectiveTimeout, world = comm
            watchdog = CollectiveWatchdog(limit: limit) { what, elapsed in
                Communicator.printError(String(format: "gpt: %@: %@ has not completed after %.0f s (collective_timeout = %g s): "
                    + "another rank is hung, stopped or unreachable; aborting all ranks", label as NSString, what as NSString, elapsed, limit))
                MPI_Abort(world, 1)
                _exit(1)
            }
        }
    }
    private var watchdog: CollectiveWatchdog?

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

    // MARK: - Allreduce (blocking, in place)

    /// Combines `count` floats element-wise across ranks, in place; every rank gets the result.
    public func allreduce(_ buf: UnsafeMutablePointer<Float>, count: Int, op: FloatReduction = .sum) {
        allreduceRaw(UnsafeMutableRawPointer(buf), count: count, stride: MemoryLayout<Float>.stride,
                     type: swiftgpt_mpi_float(), op: op.mpiOp, what: "allreduce(\(count) floats, \(op))")
        if op == .mean { Communicator.divide(buf, count: count, by: Float(size)) }
    }

    /// Combines `count` doubles element-wise across ranks, in place.
    public func allreduce(_ buf: UnsafeMutablePointer<Double>, count: Int, op: FloatReduction = .sum) {
        allreduceRaw(UnsafeMutableRawPointer(buf), count: count, stride: MemoryLayout<Double>.stride,
                     type: swiftgpt_mpi_double(), op: op.mpiOp, what: "allreduce(\(count) doubles, \(op))")
        if op == .mean {
            let n = Double(size)
            for i in 0..<count { buf[i] /= n }
        }
    }

    /// Combines `count` unsigned 64-bit integers element-wise across ranks, in place.
    public func allreduce(_ buf: UnsafeMutablePointer<UInt64>, count: Int, op: IntegerReduction) {
        allreduceRaw(UnsafeMutableRawPointer(buf), count: count, stride: MemoryLayout<UInt64>.stride,
                     type: swiftgpt_mpi_uint64(), op: op.mpiOp, what: "allreduce(\(count) uint64, \(op))")
    }

    /// Combines `count` signed integers element-wise across ranks, in place.
    public func allreduce(_ buf: UnsafeMutablePointer<Int>, count: Int, op: IntegerReduction) {
        allreduceRaw(UnsafeMutableRawPointer(buf), count: count, stride: MemoryLayout<Int>.stride,
                     type: swiftgpt_mpi_int64(), op: op.mpiOp, what: "allreduce(\(count) int64, \(op))")
    }

    /// Combines one float across ranks (e.g. the mean loss).
    public func allreduce(_ value: Float, op: FloatReduction) -> Float {
        var v = value
        allreduce(&v, count: 1, op: op)
        return v
    }

    /// Combines one double across ranks.
    public func allreduce(_ value: Double, op: FloatReduction) -> Double {
        var v = value
        allreduce(&v, count: 1, op: op)
        return v
    }

    /// Combines one unsigned 64-bit integer across ranks.
    public func allreduce(_ value: UInt64, op: IntegerReduction) -> UInt64 {
        var v = value
        allreduce(&v, count: 1, op: op)
        return v
    }

    /// Combines one signed integer across ranks (e.g. "did any rank fail": `.max` of 0/1).
    public func allreduce(_ value: Int, op: IntegerReduction) -> Int {
        var v = value
        allreduce(&v, count: 1, op: op)
        return v
    }

    // MARK: - Broadcast

    /// Copies `count` floats from `root`'s buffer into every other rank's buffer.
    public func broadcast(_ buf: UnsafeMutablePointer<Float>, count: Int, root: Int = 0) {
        broadcastRaw(UnsafeMutableRawPointer(buf), count: count, stride: MemoryLayout<Float>.stride,
                     type: swiftgpt_mpi_float(), root: root, what: "broadcast(\(count) floats, root \(root))")
    }

    /// Copies `count` doubles from `root`'s buffer into every other rank's buffer.
    public func broadcast(_ buf: UnsafeMutablePointer<Double>, count: Int, root: Int = 0) {
        broadcastRaw(UnsafeMutableRawPointer(buf), count: count, stride: MemoryLayout<Double>.stride,
                     type: swiftgpt_mpi_double(), root: root, what: "broadcast(\(count) doubles, root \(root))")
    }

    /// Copies `count` unsigned 64-bit integers from `root` to every other rank.
    public func broadcast(_ buf: UnsafeMutablePointer<UInt64>, count: Int, root: Int = 0) {
        broadcastRaw(UnsafeMutableRawPointer(buf), count: count, stride: MemoryLayout<UInt64>.stride,
                     type: swiftgpt_mpi_uint64(), root: root, what: "broadcast(\(count) uint64, root \(root))")
    }

    /// Copies `count` signed integers from `root` to every other rank.
    public func broadcast(_ buf: UnsafeMutablePointer<Int>, count: Int, root: Int = 0) {
        broadcastRaw(UnsafeMutableRawPointer(buf), count: count, stride: MemoryLayout<Int>.stride,
                     type: swiftgpt_mpi_int64(), root: root, what: "broadcast(\(count) int64, root \(root))")
    }

    /// Returns `root`'s value on every rank (other ranks' arguments are ignored).
    public func broadcast(_ value: UInt64, root: Int = 0) -> UInt64 {
        var v = value
        broadcast(&v, count: 1, root: root)
        return v
    }

    /// Returns `root`'s value on every rank (other ranks' arguments are ignored).
    public func broadcast(_ value: Int, root: Int = 0) -> Int {
        var v = value
        broadcast(&v, count: 1, root: root)
        return v
    }

    /// Returns `root`'s bytes on every rank; the length need not be known elsewhere.
    public func broadcast(_ data: Data, root: Int = 0) -> Data {
        var length = rank == root ? data.count : 0
        broadcast(&length, count: 1, root: root)
        var bytes = rank == root ? [UInt8](data) : [UInt8](repeating: 0, count: length)
        bytes.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return }
            broadcastRaw(base, count: length, stride: 1, type: swiftgpt_mpi_byte(), root: root,
                         what: "broadcast(\(length) bytes, root \(root))")
        }
        return Data(bytes)
    }

    /// Returns `root`'s string on every rank (UTF-8 on the wire).
    public func broadcast(_ string: String, root: Int = 0) -> String {
        String(decoding: broadcast(Data(string.utf8), root: root), as: UTF8.self)
    }

    // MARK: - Barrier and allgather

    /// Blocks until every rank has reached the barrier.
    public func barrier() {
        enter("barrier")
        let t0 = MPI_Wtime()
        check(blocking("barrier") { MPI_Barrier(comm) }, "MPI_Barrier")
        noteBlocking(since: t0)
    }

    /// Returns every rank's value, indexed by rank.
    public func allgather(_ value: UInt64) -> [UInt64] {
        allgather([value]).map { $0[0] }
    }

    /// Returns every rank's value, indexed by rank.
    public func allgather(_ value: Double) -> [Double] {
        enter("allgather")
        var send = value
        var result = [Double](repeating: 0, count: size)
        let t0 = MPI_Wtime()
        check(blocking("allgather(1 double)") {
            MPI_Allgather(&send, 1, swiftgpt_mpi_double(), &result, 1, swiftgpt_mpi_double(), comm)
        }, "MPI_Allgather(1 double)")
        noteBlocking(since: t0)
        return result
    }

    /// Returns every rank's array, indexed by rank; all ranks must pass arrays of the same length.
    public func allgather(_ values: [UInt64]) -> [[UInt64]] {
        enter("allgather")
        let count = values.count
        if allreduce(count, op: .max) != allreduce(count, op: .min) {
            fail("allgather: ranks passed arrays of different lengths (this rank: \(count)); "
                 + "every rank must pass the same number of values")
        }
        guard count > 0 else { return Array(repeating: [], count: size) }
        var flat = [UInt64](repeating: 0, count: count * size)
        let t0 = MPI_Wtime()
        values.withUnsafeBufferPointer { send in
            check(blocking("allgather(\(count) uint64)") {
                MPI_Allgather(send.baseAddress, Int32(count), swiftgpt_mpi_uint64(),
                              &flat, Int32(count), swiftgpt_mpi_uint64(), comm)
            }, "MPI_Allgather(\(count) uint64)")
        }
        noteBlocking(since: t0)
        return (0..<size).map { Array(flat[($0 * count)..<(($0 + 1) * count)]) }
    }

    /// Returns every rank's bytes, indexed by rank; lengths may differ.
    public func allgather(_ data: Data) -> [Data] {
        enter("allgather")
        let lengths = allgather(UInt64(data.count)).map { Int($0) }
        let total = lengths.reduce(0, +)
        guard total <= Int(Int32.max) else {
            fail("allgather: \(total) bytes in all exceed one MPI call; gather smaller pieces")
        }
        var displacements = [Int32](repeating: 0, count: size)
        if size > 1 {
            for r in 1..<size { displacements[r] = displacements[r - 1] + Int32(lengths[r - 1]) }
        }
        let counts = lengths.map { Int32($0) }
        var received = [UInt8](repeating: 0, count: Swift.max(total, 1))
        let send = [UInt8](data)
        let t0 = MPI_Wtime()
        check(blocking("allgather(\(send.count) bytes)") {
            MPI_Allgatherv(send, Int32(send.count), swiftgpt_mpi_byte(),
                           &received, counts, displacements, swiftgpt_mpi_byte(), comm)
        }, "MPI_Allgatherv(\(send.count) bytes)")
        noteBlocking(since: t0)
        return (0..<size).map { Data(received[Int(displacements[$0])..<(Int(displacements[$0]) + lengths[$0])]) }
    }

    /// Returns every rank's string, indexed by rank.
    public func allgather(_ string: String) -> [String] {
        allgather(Data(string.utf8)).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Ranks whose `value` differs from rank 0's (e.g. parameter checksums); empty when all agree.
    public func ranksDifferingFromRoot(_ value: UInt64) -> [Int] {
        let all = allgather(value)
        return all.indices.filter { all[$0] != all[0] }
    }

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
        guard let watchdog else { return body() }
        return watchdog.guarded(what(), body)
    }

    /// Checks a caller-given element count.
    func validate(count: Int, _ what: @autoclosure () -> String) {
        if count < 0 { fail("\(what()): count must not be negative") }
    }

    private func noteBlocking(since t0: Double) {
        timing.blockingSeconds += MPI_Wtime() - t0
        timing.blockingCalls += 1
    }

    private func allreduceRaw(_ base: UnsafeMutableRawPointer, count: Int, stride: Int,
                              type: MPI_Datatype?, op: MPI_Op?, what: @autoclosure () -> String) {
        enter("allreduce")
        validate(count: count, what())
        let t0 = MPI_Wtime()
        var done = 0
        while done < count {
            let n = Swift.min(count - done, Communicator.maxChunk)
            check(blocking(what()) { MPI_Allreduce(swiftgpt_mpi_in_place(), base + done * stride, Int32(n), type, op, comm) },
                  "MPI_Allreduce in " + what())
            done += n
        }
        noteBlocking(since: t0)
        timing.reducedBytes += count * stride
    }

    private func broadcastRaw(_ base: UnsafeMutableRawPointer, count: Int, stride: Int,
                              type: MPI_Datatype?, root: Int, what: @autoclosure () -> String) {
        enter("broadcast")
        validate(count: count, what())
        guard let root32 = Int32(exactly: root) else { fail("\(what()): root \(root) is not a rank") }
        let t0 = MPI_Wtime()
        var done = 0
        repeat {
            let n = Swift.min(count - done, Communicator.maxChunk)
            check(blocking(what()) { MPI_Bcast(base + done * stride, Int32(n), type, root32, comm) }, "MPI_Bcast in " + what())
            done += n
        } while done < count
        noteBlocking(since: t0)
    }

    /// Divides each element by `n` (a correctly rounded mean, unlike multiplying by 1/n).
    static func divide(_ buf: UnsafeMutablePointer<Float>, count: Int, by n: Float) {
        for i in 0..<count { buf[i] /= n }
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
