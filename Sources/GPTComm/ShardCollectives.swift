// Collectives over a buffer split into consecutive per-rank slices, for ZeRO-1:
// reduce-scatter (each rank receives the sum or mean of its own slice), all-gather
// in place (every rank's slice to every rank), gather to one rank and scatter from
// it; blocking, and non-blocking for the two the trainer overlaps.
//
// `counts[r]` elements belong to rank r and the slices follow each other in rank
// order, so the whole buffer holds `counts.reduce(0, +)` elements; a count may be
// zero (a rank with an empty slice). Each is one MPI call, so the whole buffer must
// fit MPI's 32-bit counts and displacements (2^31 - 1 elements).
import CMPI

// MARK: - Slices

/// Per-rank counts and displacements as MPI takes them, pinned in memory: a
/// non-blocking collective reads them until it completes, so its request keeps them.
final class SliceCounts {
    let counts: UnsafeMutablePointer<Int32>
    let displacements: UnsafeMutablePointer<Int32>
    /// Elements of the whole buffer.
    let total: Int

    /// Nil when the counts add up to more than one MPI call can describe.
    init?(_ values: [Int]) {
        let total = values.reduce(0, +)
        guard total <= Int(Int32.max) else { return nil }
        self.total = total
        counts = .allocate(capacity: max(1, values.count))
        displacements = .allocate(capacity: max(1, values.count))
        var offset = 0
        for (r, n) in values.enumerated() {
            counts[r] = Int32(n)
            displacements[r] = Int32(offset)
            offset += n
        }
    }

    deinit { counts.deallocate(); displacements.deallocate() }

    /// After an in-place reduce-scatter, which leaves each rank's result at the start of the buffer:
    /// moves it into the rank's own slice (the regions may overlap) and returns where that is.
    func placeOwnSlice<T>(_ buf: UnsafeMutablePointer<T>, rank: Int) -> UnsafeMutablePointer<T> {
        let own = buf + Int(displacements[rank])
        if own != buf { own.update(from: buf, count: Int(counts[rank])) }
        return own
    }
}

extension Communicator {
    /// `counts` checked (one per rank, none negative, within one MPI call) and pinned.
    func slices(_ counts: [Int], _ what: @autoclosure () -> String) -> SliceCounts {
        if counts.count != size { fail("\(what()): \(counts.count) counts for a world of \(size) ranks") }
        if let bad = counts.first(where: { $0 < 0 }) { fail("\(what()): count \(bad) is negative") }
        guard let pinned = SliceCounts(counts) else {
            fail("\(what()): \(counts.reduce(0, +)) elements exceed one MPI call (2^31 - 1); split the buffer")
        }
        return pinned
    }

    // MARK: - Blocking

    /// Combines the whole buffer `send` across ranks; rank r receives its slice of the result
    /// (`counts[r]` elements) in `recv`, which must not overlap `send`.
    ///
    /// `send` is (sum of counts,) on every rank. `.mean` sums, then divides by the number of ranks.
    public func reduceScatter<T: CommReducible>(_ send: UnsafePointer<T>, into recv: UnsafeMutablePointer<T>,
                                                counts: [Int], op: T.Reduction = .sum) {
        let type = T.commDatatype
        let what = { "reduceScatter(\(counts.reduce(0, +)) \(type.name), \(op))" }
        enter("reduceScatter")
        let s = slices(counts, what())
        let t0 = MPI_Wtime()
        check(blocking(what()) { MPI_Reduce_scatter(send, recv, s.counts, type.handle, op.mpiOp, comm) },
              "MPI_Reduce_scatter in " + what())
        noteBlocking(since: t0)
        timing.reducedBytes += s.total * MemoryLayout<T>.stride
        if op.isMean { T.divide(recv, count: counts[rank], by: size) }
    }

    /// In place: combines the whole buffer `buf` across ranks; rank r's slice of the result ends in
    /// its own slice of `buf` (`counts[r]` elements at the sum of the counts before it); the rest of
    /// `buf` is left undefined. No second buffer: what ZeRO-1 uses.
    public func reduceScatter<T: CommReducible>(_ buf: UnsafeMutablePointer<T>, counts: [Int], op: T.Reduction = .sum) {
        let type = T.commDatatype
        let what = { "reduceScatter(\(counts.reduce(0, +)) \(type.name), \(op), in place)" }
        enter("reduceScatter")
        let s = slices(counts, what())
        let t0 = MPI_Wtime()
        check(blocking(what()) { MPI_Reduce_scatter(swiftgpt_mpi_in_place(), buf, s.counts, type.handle, op.mpiOp, comm) },
              "MPI_Reduce_scatter in " + what())
        noteBlocking(since: t0)
        timing.reducedBytes += s.total * MemoryLayout<T>.stride
        let own = s.placeOwnSlice(buf, rank: rank)
        if op.isMean { T.divide(own, count: counts[rank], by: size) }
    }

    /// In place: rank r's slice of `buf` (`counts[r]` elements at the sum of the counts before it)
    /// goes to every rank, so that every rank ends with every slice.
    public func allgather<T: CommElement>(_ buf: UnsafeMutablePointer<T>, counts: [Int]) {
        let type = T.commDatatype
        let what = { "allgather(\(counts.reduce(0, +)) \(type.name) in slices)" }
        enter("allgather")
        let s = slices(counts, what())
        let t0 = MPI_Wtime()
        check(blocking(what()) {
            MPI_Allgatherv(swiftgpt_mpi_in_place(), 0, type.handle, buf, s.counts, s.displacements, type.handle, comm)
        }, "MPI_Allgatherv in " + what())
        noteBlocking(since: t0)
    }

    /// Every rank's slice (`counts[rank]` elements at `local`) into `full` on `root`, in rank order;
    /// `full` (sum of counts,) is used on `root` only (nil elsewhere).
    public func gather<T: CommElement>(_ local: UnsafePointer<T>, counts: [Int], into full: UnsafeMutablePointer<T>?,
                                       root: Int = 0) {
        let type = T.commDatatype
        rooted("Gatherv", "gather(\(counts.reduce(0, +)) \(type.name) to rank \(root))", counts: counts, root: root,
               rootHasBuffer: full != nil) { s, root32 in
            MPI_Gatherv(local, Int32(counts[rank]), type.handle, full, s.counts, s.displacements, type.handle, root32, comm)
        }
    }

    /// The mirror image of `gather`: `root`'s whole buffer `full` (nil elsewhere) cut into the
    /// ranks' slices, rank r's `counts[r]` elements into its `local`.
    public func scatter<T: CommElement>(_ full: UnsafePointer<T>?, counts: [Int], into local: UnsafeMutablePointer<T>,
                                        root: Int = 0) {
        let type = T.commDatatype
        rooted("Scatterv", "scatter(\(counts.reduce(0, +)) \(type.name) from rank \(root))", counts: counts, root: root,
               rootHasBuffer: full != nil) { s, root32 in
            MPI_Scatterv(full, s.counts, s.displacements, type.handle, local, Int32(counts[rank]), type.handle, root32, comm)
        }
    }

    /// What `gather` and `scatter` share: the checks, the one MPI call `call(slices, root)`, its timing.
    private func rooted(_ name: String, _ what: String, counts: [Int], root: Int, rootHasBuffer: Bool,
                        _ call: (SliceCounts, Int32) -> Int32) {
        enter(what)
        let s = slices(counts, what)
        guard let root32 = Int32(exactly: root), root >= 0, root < size else { fail("\(what): root \(root) is not a rank") }
        if rank == root && !rootHasBuffer { fail("\(what): the root passed no buffer for the whole") }
        let t0 = MPI_Wtime()
        check(blocking(what) { call(s, root32) }, "MPI_\(name) in " + what)
        noteBlocking(since: t0)
    }

    // MARK: - Non-blocking

    /// Starts `reduceScatter` of floats and returns at once; `send` and `recv` stay untouched until
    /// the request completes (with `.mean`, `recv` is divided by the number of ranks then).
    package func ireduceScatter(_ send: UnsafePointer<Float>, into recv: UnsafeMutablePointer<Float>,
                                counts: [Int], op: FloatReduction = .sum) -> AllreduceRequest {
        enter("ireduceScatter")
        let s = slices(counts, "ireduceScatter(\(counts.reduce(0, +)) floats)")
        let t0 = MPI_Wtime()
        var handle: MPI_Request? = swiftgpt_mpi_request_null()
        check(MPI_Ireduce_scatter(send, recv, s.counts, swiftgpt_mpi_float(), op.mpiOp, comm, &handle),
              "MPI_Ireduce_scatter(\(s.total) floats, \(op))")
        let request = AllreduceRequest(communicator: self, buffer: recv, count: counts[rank], op: op, handles: [handle],
                                       what: "ireduceScatter", keeping: s)
        noteStarted(request, since: t0, bytes: s.total * MemoryLayout<Float>.stride)
        return request
    }

    /// Starts the in-place `allgather` of float slices and returns at once; `buf` stays untouched until it completes.
    package func iallgather(_ buf: UnsafeMutablePointer<Float>, counts: [Int]) -> AllreduceRequest {
        enter("iallgather")
        let s = slices(counts, "iallgather(\(counts.reduce(0, +)) floats in slices)")
        let t0 = MPI_Wtime()
        var handle: MPI_Request? = swiftgpt_mpi_request_null()
        check(MPI_Iallgatherv(swiftgpt_mpi_in_place(), 0, swiftgpt_mpi_float(), buf, s.counts, s.displacements,
                              swiftgpt_mpi_float(), comm, &handle), "MPI_Iallgatherv(\(s.total) floats)")
        let request = AllreduceRequest(communicator: self, buffer: buf, count: s.total, op: .sum, handles: [handle],
                                       what: "iallgather", keeping: s)
        noteStarted(request, since: t0, bytes: 0)
        return request
    }

    /// Counts a started non-blocking collective and keeps it for `progress()` until it completes.
    func noteStarted(_ request: AllreduceRequest, since t0: Double, bytes: Int) {
        timing.progressSeconds += MPI_Wtime() - t0
        timing.nonBlockingCalls += 1
        timing.reducedBytes += bytes
        if !request.isComplete { outstanding.append(request) }
    }
}
