// Non-blocking allreduce, for overlapping gradient communication with backward.
//
// Open MPI runs non-blocking collectives (libnbc) from its progress engine,
// which turns only inside MPI calls made by the main thread. A request that
// is started and then left alone therefore mostly waits until `wait()`; a
// caller calls `Communicator.progress()` between pieces of computation to move
// outstanding requests forward. docs/DISTRIBUTED.md has the measurements.
//
// Package access: `gpt selftest comm` checks and measures it; the trainer
// overlaps through `BackgroundAllreducer` instead.
import CMPI
import Foundation

// MARK: - Starting requests

extension Communicator {
    /// Starts an in-place allreduce of `count` floats and returns at once.
    ///
    /// The buffer must stay allocated and untouched until the request completes
    /// (`wait()`, or `test()` returning true). Every rank must start the same
    /// requests in the same order. With `.mean` the buffer is divided by the
    /// number of ranks when the request completes.
    package func iallreduce(_ buf: UnsafeMutablePointer<Float>, count: Int,
                           op: FloatReduction = .sum) -> AllreduceRequest {
        enter("iallreduce")
        validate(count: count, "iallreduce(\(count) floats)")
        let t0 = MPI_Wtime()
        var handles: [MPI_Request?] = []
        var done = 0
        while done < count {
            let n = Swift.min(count - done, Communicator.maxChunk)
            var handle: MPI_Request? = swiftgpt_mpi_request_null()
            check(MPI_Iallreduce(swiftgpt_mpi_in_place(), buf + done, Int32(n), swiftgpt_mpi_float(),
                                 op.mpiOp, comm, &handle),
                  "MPI_Iallreduce(\(n) floats, \(op))")
            handles.append(handle)
            done += n
        }
        let request = AllreduceRequest(communicator: self, buffer: buf, count: count, op: op, handles: handles)
        noteStarted(request, since: t0, bytes: count * MemoryLayout<Float>.stride)
        return request
    }

    /// Lets MPI move outstanding non-blocking collectives forward; returns how many are still running.
    ///
    /// Cheap when nothing is outstanding. Call it between pieces of computation
    /// (e.g. after each layer's backward) so that communication overlaps them.
    @discardableResult
    package func progress() -> Int {
        guard !outstanding.isEmpty else { return 0 }
        enter("progress")
        let t0 = MPI_Wtime()
        for request in outstanding where !request.isComplete { request.poll() }
        outstanding.removeAll { $0.isComplete }
        timing.progressSeconds += MPI_Wtime() - t0
        return outstanding.count
    }

    /// Number of non-blocking collectives started and not yet known to be complete.
    package var outstandingRequests: Int { outstanding.count }
}

// MARK: - AllreduceRequest

/// A running non-blocking collective (allreduce, reduce-scatter or all-gather of floats);
/// complete it with `wait()` or poll it with `test()`.
package final class AllreduceRequest {
    /// Whether the result is in the buffer.
    package private(set) var isComplete = false
    /// Number of floats of the result on this rank.
    package let count: Int

    private unowned let communicator: Communicator
    private let buffer: UnsafeMutablePointer<Float>
    private let op: FloatReduction
    private var handles: [MPI_Request?]
    /// The collective's name in messages ("iallreduce").
    private let what: String
    /// What MPI reads until completion (the per-rank counts of a reduce-scatter or all-gather).
    private var kept: AnyObject?

    init(communicator: Communicator, buffer: UnsafeMutablePointer<Float>, count: Int,
         op: FloatReduction, handles: [MPI_Request?], what: String = "iallreduce", keeping kept: AnyObject? = nil) {
        self.communicator = communicator
        self.buffer = buffer
        self.count = count
        self.op = op
        self.handles = handles
        self.what = what
        self.kept = kept
        if handles.isEmpty { finish() }
    }

    /// Blocks until the collective is complete; the time spent counts as exposed communication.
    package func wait() {
        guard !isComplete else { return }
        let comm = communicator
        comm.enter("AllreduceRequest.wait")
        let t0 = MPI_Wtime()
        for i in handles.indices where handles[i] != swiftgpt_mpi_request_null() {
            comm.check(comm.blocking("wait for \(what) of \(count) floats") {
                MPI_Wait(&handles[i], swiftgpt_mpi_status_ignore())
            }, "MPI_Wait(\(what) of \(count) floats)")
        }
        finish()
        comm.timing.waitSeconds += MPI_Wtime() - t0
        comm.outstanding.removeAll { $0 === self }
    }

    /// Moves the collective forward without blocking; returns whether it is complete.
    package func test() -> Bool {
        guard !isComplete else { return true }
        let comm = communicator
        comm.enter("AllreduceRequest.test")
        let t0 = MPI_Wtime()
        poll()
        comm.timing.progressSeconds += MPI_Wtime() - t0
        if isComplete { comm.outstanding.removeAll { $0 === self } }
        return isComplete
    }

    /// One MPI_Test per unfinished piece; completes the request when all are done.
    func poll() {
        var allDone = true
        for i in handles.indices where handles[i] != swiftgpt_mpi_request_null() {
            var flag: Int32 = 0
            communicator.check(MPI_Test(&handles[i], &flag, swiftgpt_mpi_status_ignore()),
                               "MPI_Test(\(what) of \(count) floats)")
            if flag == 0 { allDone = false }
        }
        if allDone { finish() }
    }

    private func finish() {
        isComplete = true
        kept = nil
        if op == .mean { Float.divide(buffer, count: count, by: communicator.size) }
    }
}
