// Gradient averaging on a communication thread, overlapped with backward.
//
// Open MPI moves a non-blocking collective forward only inside MPI calls
// (libnbc and the TCP transport have no progress thread of their own), so a
// request that the computing thread starts and leaves alone mostly waits for
// `wait()`. Here a second thread, the communication thread, does all MPI work
// of a round: the computing thread hands it buckets of finished gradients and
// goes on computing; the communication thread starts an MPI_Iallreduce per
// bucket (for ZeRO-1, the steps of a ring reduce-scatter, and after the update
// the all-gather of the parameters, block by block) and tests all outstanding ones with one MPI_Testsome every
// `pollInterval`, sleeping in between, so the transfers advance while
// backward runs and it costs little CPU time while there is nothing to move.
// When backward is done the computing thread calls `finish()`, and the
// communication thread waits for the rest with MPI_Waitsome.
//
// MPI runs at MPI_THREAD_SERIALIZED: during a round (first `start` to the end
// of `finish()`) the communication thread owns MPI and the computing thread
// must not call it; the Communicator enforces this.
import CMPI
import Foundation
import GPTSupport
#if canImport(Glibc)
import Glibc
#endif

// MARK: - BackgroundAllreducer

/// Averages float buffers across ranks on a communication thread while the caller keeps computing.
///
/// One round: `start(_:count:)` once per bucket, as soon as the bucket's values
/// are final (every rank must start the same buckets in the same order), then
/// `finish()`, which returns when every bucket holds the mean over all ranks.
/// Between the first `start` and the end of `finish()` the caller must neither
/// touch the buckets nor call any other Communicator method.
public final class BackgroundAllreducer {
    /// What the communication thread did in the last completed round.
    public struct Round: Sendable {
        /// Buckets reduced.
        public var buckets = 0
        /// Floats reduced, over all buckets.
        public var floats = 0
        /// Seconds from the first bucket's start to the last one's completion.
        public var busySeconds = 0.0
        /// Seconds the caller was blocked in `finish()` (communication not hidden).
        public var waitSeconds = 0.0
        /// MPI_Testsome calls over the running buckets while the caller computed.
        public var polls = 0
        /// Buckets already complete when the caller called `finish()`.
        public var completedBeforeFinish = 0
    }

    /// Seconds between two tests of the outstanding requests while the caller computes.
    public let pollInterval: Double
    /// Statistics of the last completed round.
    public var lastRound: Round { state.withLock { state.lastRound } }
    /// Whether a round is running (between the first `start` and the end of `finish()`).
    public var isActive: Bool { state.withLock { state.active } }

    private let communicator: Communicator
    private let state: ReducerState
    private var thread = pthread_t()
    private var caller = pthread_t()

    /// Starts the communication thread, which sleeps until the first bucket arrives.
    ///
    /// `pollInterval` defaults to `SWIFTGPT_COMM_POLL_US` microseconds, else 500 µs: often enough
    /// to keep a 1 Gbit/s link busy (socket buffers hold far more than 0.5 ms of traffic), rare
    /// enough to cost the computing thread about 1 % (docs/DISTRIBUTED.md has the measurements).
    public init(communicator: Communicator, pollInterval: Double? = nil) {
        self.communicator = communicator
        var interval = pollInterval ?? 500e-6
        if pollInterval == nil, let text = ProcessInfo.processInfo.environment["SWIFTGPT_COMM_POLL_US"] {
            guard let microseconds = Double(text), microseconds >= 1, microseconds.isFinite else {
                communicator.fail("SWIFTGPT_COMM_POLL_US=\(text) is not a number of microseconds >= 1; unset it or give e.g. 500")
            }
            interval = microseconds * 1e-6
        }
        self.pollInterval = max(1e-6, interval)
        state = ReducerState(communicator: communicator, pollInterval: self.pollInterval)
        let box = Unmanaged.passRetained(state).toOpaque()
        let rc = pthread_create(&thread, nil, { argument in
            let state = Unmanaged<ReducerState>.fromOpaque(argument!).takeRetainedValue()
            state.run()
            return nil
        }, box)
        if rc != 0 {
            Unmanaged<ReducerState>.fromOpaque(box).release()
            communicator.fail("cannot start the communication thread: \(String(cString: strerror(rc)))")
        }
    }

    deinit {
        state.withLock {
            precondition(!state.active, "BackgroundAllreducer released during a round; call finish() first")
            state.shutdown = true
            state.signal()
        }
        pthread_join(thread, nil)
    }

    // MARK: - A round

    /// Hands `count` floats at `buffer` to the communication thread, which starts summing them across ranks.
    ///
    /// The first call of a round passes MPI to the communication thread.
    public func start(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        communicator.validate(count: count, "BackgroundAllreducer.start(\(count) floats)")
        enqueue(Bucket(buffer: buffer, count: count, slices: nil, gathers: false))
    }

    /// Hands the bucket `buffer` (the sum of `counts` floats) to the communication thread, which
    /// reduce-scatters it in place: this rank's slice of the bucket (`counts[rank]` floats after
    /// the counts of the ranks before it) ends up holding the mean over all ranks, the rest of the
    /// bucket undefined. Otherwise as `start(_:count:)`.
    public func startReduceScatter(_ buffer: UnsafeMutablePointer<Float>, counts: [Int]) {
        let slices = communicator.slices(counts, "BackgroundAllreducer.startReduceScatter(\(counts.reduce(0, +)) floats)")
        enqueue(Bucket(buffer: buffer, count: counts[communicator.rank], slices: slices, gathers: false))
    }

    /// Hands the bucket `buffer` (the sum of `counts` floats) to the communication thread, which
    /// all-gathers it in place: rank r's slice (`counts[r]` floats after the counts of the ranks
    /// before it) goes to every rank (ZeRO-1's updated parameters). `wait(forBucket:)` waits for one
    /// bucket without ending the round. Otherwise as `start(_:count:)`.
    public func startAllgather(_ buffer: UnsafeMutablePointer<Float>, counts: [Int]) {
        let slices = communicator.slices(counts, "BackgroundAllreducer.startAllgather(\(counts.reduce(0, +)) floats)")
        enqueue(Bucket(buffer: buffer, count: slices.total, slices: slices, gathers: true))
    }

    /// Blocks until bucket `index` of the running round (the buckets counted from 0 in the order
    /// they were started) is complete; the round goes on, and MPI stays with the communication thread.
    /// The time spent here is exposed communication, as in `finish()`.
    public func wait(forBucket index: Int) {
        let t0 = monotonicSeconds()
        communicator.blocking("parameter all-gather (communication thread)") {
            state.withLock {
                precondition(state.active && index < state.started, "bucket \(index) was not started in this round")
                state.callerWaits = true
                state.signal()
                while !state.isComplete(index) { state.wait() }
                state.callerWaits = false
            }
        }
        let waited = monotonicSeconds() - t0
        state.withLock { state.waitedForBuckets += waited }
    }

    private func enqueue(_ bucket: Bucket) {
        let beginsRound = state.withLock { !state.active }
        if beginsRound {
            caller = pthread_self()
            communicator.handOverMPI(to: thread, "BackgroundAllreducer.start")
        }
        state.withLock {
            if beginsRound { state.beginRound(caller: caller) }
            state.queue.append(bucket)
            state.started += 1
            state.signal()
        }
    }

    /// Blocks until every bucket of the round holds the mean over all ranks; MPI returns to the caller.
    ///
    /// The time spent here is exposed communication (`Communicator.timing.waitSeconds`);
    /// the communication thread's busy time goes to `timing.backgroundSeconds`.
    public func finish() {
        // A clock outside MPI: the communication thread owns MPI until the round ends.
        let t0 = monotonicSeconds()
        let round: Round? = communicator.blocking("gradient allreduce (communication thread)") {
            state.withLock {
                guard state.active else { return nil }
                state.finishing = true
                state.signal()
                while state.active { state.wait() }
                return state.lastRound
            }
        }
        guard var round else { return }
        let waited = monotonicSeconds() - t0 + state.withLock { state.waitedForBuckets }
        round.waitSeconds = waited
        state.withLock { state.lastRound.waitSeconds = waited }
        communicator.timing.waitSeconds += waited
        communicator.timing.backgroundSeconds += round.busySeconds
        communicator.timing.nonBlockingCalls += round.buckets
        communicator.timing.reducedBytes += round.floats * MemoryLayout<Float>.stride
    }
}

// MARK: - The communication thread

/// One bucket of a round, in place: allreduced (`slices` nil), reduce-scattered into this rank's
/// slice, or (`gathers`) every rank's slice all-gathered.
private struct Bucket {
    let buffer: UnsafeMutablePointer<Float>
    /// Floats of the result on this rank (the bucket, or this rank's slice of it).
    let count: Int
    let slices: SliceCounts?
    let gathers: Bool
}

/// What the caller and the communication thread share; every field is guarded by the mutex.
private final class ReducerState {
    let communicator: Communicator
    let pollInterval: Double
    var queue: [Bucket] = []
    var active = false
    var finishing = false
    var shutdown = false
    var lastRound = BackgroundAllreducer.Round()
    /// Buckets started in this round, and the completion of each (published by the communication thread).
    var started = 0
    var completed: [Bool] = []
    /// The caller is blocked in `wait(forBucket:)`: test without sleeping.
    var callerWaits = false
    /// Seconds the caller spent in `wait(forBucket:)` this round.
    var waitedForBuckets = 0.0
    private var caller = pthread_t()
    private let lock = ConditionLock()

    init(communicator: Communicator, pollInterval: Double) {
        self.communicator = communicator
        self.pollInterval = pollInterval
    }

    func withLock<T>(_ body: () throws -> T) rethrows -> T { try lock.withLock(body) }

    /// Wakes the other side; call with the mutex held.
    func signal() { lock.broadcast() }

    /// Waits for a signal; call with the mutex held.
    func wait() { lock.wait() }

    /// Waits for a signal or `seconds`; call with the mutex held.
    func wait(seconds: Double) { lock.wait(seconds: seconds) }

    /// Opens a round; call with the mutex held, after MPI was handed to the communication thread.
    func beginRound(caller: pthread_t) {
        self.caller = caller
        active = true
        finishing = false
        lastRound = BackgroundAllreducer.Round()
        started = 0
        completed = []
        waitedForBuckets = 0
    }

    /// Whether bucket `index` of the round is complete; call with the mutex held.
    func isComplete(_ index: Int) -> Bool { index < completed.count && completed[index] }

    /// The communication thread's loop: sleep until a round starts, then run it; ends at shutdown.
    func run() {
        while withLock({ () -> Bool in
            while !active && !shutdown { wait() }
            return active
        }) {
            runRound()
        }
    }

    /// One round: start buckets as they arrive, test them every poll interval, wait for the rest at `finish`.
    private func runRound() {
        let comm = communicator
        let requests = RequestSet(comm: comm)
        var round = BackgroundAllreducer.Round()
        var firstStart = 0.0, published = 0
        var held: [Bucket] = []
        while true {
            // Take new buckets and the caller's finish request together.
            let (arrived, finishing) = withLock { () -> ([Bucket], Bool) in
                defer { queue.removeAll(keepingCapacity: true) }
                return (queue, self.finishing)
            }
            func begin(_ bucket: Bucket) {
                if round.buckets == 0 { firstStart = MPI_Wtime() }
                requests.start(bucket)
                round.buckets += 1
                round.floats += bucket.gathers ? 0 : bucket.slices?.total ?? bucket.count
            }
            // All-gathers run one at a time, in order, so that each has the link to itself and the
            // part forward needs first arrives first; the others start at once.
            func beginHeld() {
                while let next = held.first, finishing || requests.gathersRunning == 0 { held.removeFirst(); begin(next) }
            }
            for bucket in arrived {
                if bucket.gathers { held.append(bucket) } else { begin(bucket) }
            }
            beginHeld()
            if finishing {
                // The caller is waiting: nothing left to overlap with, so block until done.
                round.completedBeforeFinish = requests.completedBuckets
                requests.waitAll()
                break
            }
            if requests.running > 0 {
                requests.testSome()
                round.polls += 1
            }
            beginHeld()
            withLock {
                if completed.count != requests.completed.count || requests.completedBuckets != published {
                    completed = requests.completed
                    published = requests.completedBuckets
                    signal()
                }
                if queue.isEmpty && !self.finishing && !callerWaits {
                    if requests.running > 0 { wait(seconds: pollInterval) } else { wait() }
                }
            }
        }
        round.busySeconds = round.buckets > 0 ? max(0, requests.lastCompletion - firstStart) : 0
        // MPI goes back to the caller before it is told the round is over.
        comm.handOverMPI(to: caller, "BackgroundAllreducer round end")
        withLock {
            lastRound = round
            active = false
            finishing = false
            signal()
        }
    }
}

// MARK: - The requests of a round

/// The running requests of a round (MPI_Iallreduce pieces, the sends and receives of ring steps),
/// tested together; a bucket's result is divided by the number of ranks (the mean) as soon as all
/// its pieces (and ring steps) are complete.
private final class RequestSet {
    let comm: Communicator
    /// One handle per piece (buckets beyond 2^30 floats have several); MPI_REQUEST_NULL once complete.
    private var handles: [MPI_Request?] = []
    /// Bucket of each handle.
    private var owner: [Int] = []
    private var buckets: [(bucket: Bucket, pieces: Int, ring: Ring?)] = []
    private var indices: [Int32] = []
    /// Pieces still running.
    private(set) var running = 0
    /// Buckets whose result is in place, and whether each is.
    private(set) var completedBuckets = 0
    private(set) var completed: [Bool] = []
    /// All-gather buckets started and not yet complete.
    private(set) var gathersRunning = 0
    /// MPI_Wtime when the last bucket completed.
    private(set) var lastCompletion = 0.0

    init(comm: Communicator) { self.comm = comm }

    /// Starts the in-place sum of a bucket, in pieces MPI's 32-bit counts can hold, or its reduce-scatter.
    func start(_ b: Bucket) {
        comm.enter("MPI_Iallreduce on the communication thread")
        let bucket = buckets.count
        completed.append(false)
        if b.gathers, let slices = b.slices {
            var handle: MPI_Request? = swiftgpt_mpi_request_null()
            comm.check(MPI_Iallgatherv(swiftgpt_mpi_in_place(), 0, swiftgpt_mpi_float(), b.buffer, slices.counts,
                                       slices.displacements, swiftgpt_mpi_float(), comm.comm, &handle),
                       "MPI_Iallgatherv(\(slices.total) floats) on the communication thread")
            handles.append(handle)
            owner.append(bucket)
            buckets.append((b, 1, nil))
            running += 1
            gathersRunning += 1
            return
        }
        if let slices = b.slices {
            if bucket > Ring.maxTag { comm.fail("more than \(Ring.maxTag + 1) gradient buckets in one step; raise bucket_mb") }
            let ring = Ring(buffer: b.buffer, slices: slices, rank: comm.rank, size: comm.size, tag: Int32(bucket))
            buckets.append((b, 0, ring))
            post(ring, bucket: bucket)
            return
        }
        let buffer = b.buffer, count = b.count
        var pieces = 0, done = 0
        while done < count {
            let n = min(count - done, Communicator.maxChunk)
            var handle: MPI_Request? = swiftgpt_mpi_request_null()
            comm.check(MPI_Iallreduce(swiftgpt_mpi_in_place(), buffer + done, Int32(n), swiftgpt_mpi_float(),
                                      swiftgpt_mpi_sum(), comm.comm, &handle),
                       "MPI_Iallreduce(\(n) floats, sum) on the communication thread")
            handles.append(handle)
            owner.append(bucket)
            pieces += 1
            done += n
        }
        buckets.append((b, pieces, nil))
        running += pieces
        if pieces == 0 { complete(bucket) }
    }

    /// One MPI_Testsome over every running piece: lets MPI move them all forward, completes the finished.
    func testSome() {
        guard running > 0 else { return }
        completeSome("MPI_Testsome") { MPI_Testsome($0, $1, $2, $3, swiftgpt_mpi_statuses_ignore()) }
    }

    /// Blocks until every piece is complete. It waits for *some* pieces at a time, never for all:
    /// a ring step is posted only when the bucket's previous step completed, and a rank blocked on
    /// all of its pieces at once could not post the step its neighbour's send is waiting for
    /// (rendezvous sends complete only once the receive is posted), a cycle across ranks.
    func waitAll() {
        while running > 0 {
            completeSome("MPI_Waitsome") { MPI_Waitsome($0, $1, $2, $3, swiftgpt_mpi_statuses_ignore()) }
        }
    }

    /// Calls MPI_Testsome or MPI_Waitsome over the handles and completes the pieces it reports.
    private func completeSome(_ name: String,
                              _ call: (Int32, UnsafeMutablePointer<MPI_Request?>, UnsafeMutablePointer<Int32>,
                                       UnsafeMutablePointer<Int32>) -> Int32) {
        if indices.count < handles.count { indices = [Int32](repeating: 0, count: handles.count) }
        var outcount: Int32 = 0
        comm.check(call(Int32(handles.count), &handles, &outcount, &indices),
                   "\(name)(\(running) allreduce pieces) on the communication thread")
        guard outcount > 0 else { return }  // MPI_UNDEFINED (negative) cannot happen while pieces run
        for k in 0..<Int(outcount) { finished(piece: Int(indices[k])) }
    }

    private func finished(piece: Int) {
        running -= 1
        let bucket = owner[piece]
        buckets[bucket].pieces -= 1
        guard buckets[bucket].pieces == 0 else { return }
        if let ring = buckets[bucket].ring, ring.advance() { post(ring, bucket: bucket) } else { complete(bucket) }
    }

    /// Posts the send and the receive of the ring's current step.
    private func post(_ ring: Ring, bucket: Int) {
        for handle in ring.post(comm) {
            handles.append(handle)
            owner.append(bucket)
        }
        buckets[bucket].pieces += 2
        running += 2
    }

    /// The mean: the same division the blocking `allreduce(.mean)` does, element by element
    /// (nothing to divide for an all-gather).
    private func complete(_ bucket: Int) {
        let b = buckets[bucket].bucket
        if b.gathers {
            gathersRunning -= 1
        } else {
            let result = b.slices.map { b.buffer + Int($0.displacements[comm.rank]) } ?? b.buffer
            Float.divide(result, count: b.count, by: comm.size)
        }
        completed[bucket] = true
        completedBuckets += 1
        lastCompletion = MPI_Wtime()
    }
}

// MARK: - Ring reduce-scatter

/// ZeRO-1's reduce-scatter of one bucket, in place, as a ring of point-to-point messages.
///
/// Open MPI 4.1's MPI_Ireduce_scatter (libnbc) reduces the whole bucket to one rank and scatters
/// it from there: on 2 ranks 1.5 times the bytes of the ring, more on more ranks. Here, in each of
/// N - 1 steps, every rank sends its partial sums of one slice to the next rank and adds the
/// previous rank's partial sums of another slice into its own, so that rank r ends with the sum
/// of slice r, and every rank sends (N - 1) / N of the bucket: half of a ring allreduce's bytes,
/// the all-gather being the other half.
private final class Ring {
    /// Tags are bucket indices; MPI guarantees at least 32767.
    static let maxTag = 32767
    let buffer: UnsafeMutablePointer<Float>
    let slices: SliceCounts
    let rank: Int, size: Int, tag: Int32
    private let scratch: UnsafeMutablePointer<Float>
    private var step = 0

    init(buffer: UnsafeMutablePointer<Float>, slices: SliceCounts, rank: Int, size: Int, tag: Int32) {
        self.buffer = buffer; self.slices = slices; self.rank = rank; self.size = size; self.tag = tag
        let largest = (0..<size).map { Int(slices.counts[$0]) }.max() ?? 0
        scratch = .allocate(capacity: max(1, largest))
    }

    deinit { scratch.deallocate() }

    /// The slice sent in this step, and the one received and added.
    private var sent: Int { ((rank - step - 1) % size + size) % size }
    private var received: Int { ((rank - step - 2) % size + size) % size }

    /// Starts this step's send to the next rank and receive from the previous one.
    func post(_ comm: Communicator) -> [MPI_Request?] {
        var send: MPI_Request? = swiftgpt_mpi_request_null(), recv: MPI_Request? = swiftgpt_mpi_request_null()
        let next = Int32((rank + 1) % size), previous = Int32((rank + size - 1) % size)
        let s = sent, r = received
        comm.check(MPI_Isend(buffer + Int(slices.displacements[s]), slices.counts[s], swiftgpt_mpi_float(), next, tag,
                             comm.comm, &send), "MPI_Isend(\(slices.counts[s]) floats, ring step \(step)) on the communication thread")
        comm.check(MPI_Irecv(scratch, slices.counts[r], swiftgpt_mpi_float(), previous, tag, comm.comm, &recv),
                   "MPI_Irecv(\(slices.counts[r]) floats, ring step \(step)) on the communication thread")
        return [send, recv]
    }

    /// After both requests of this step completed: adds what arrived; returns whether a step remains.
    func advance() -> Bool {
        let target = buffer + Int(slices.displacements[received])
        for i in 0..<Int(slices.counts[received]) { target[i] += scratch[i] }
        step += 1
        return step < size - 1
    }
}
