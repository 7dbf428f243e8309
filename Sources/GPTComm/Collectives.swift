// The blocking collectives: allreduce (in place), broadcast, barrier, allgather.
//
// Each is one generic entry point over the element type (`CommElement`, see
// CommElement.swift), plus conveniences for one value, bytes and strings.
// Every call is checked, timed into `timing`, and guarded by the collective
// timeout; buffers beyond MPI's 32-bit counts go in several calls.
import CMPI
import Foundation

// MARK: - Allreduce (blocking, in place)

extension Communicator {
    /// Combines `count` elements of `buf` across ranks, in place; every rank gets the result.
    ///
    /// `buf` is (count,) on every rank. `.mean` sums, then divides each element by the number of ranks.
    public func allreduce<T: CommReducible>(_ buf: UnsafeMutablePointer<T>, count: Int, op: T.Reduction = .sum) {
        let type = T.commDatatype
        let what = { "allreduce(\(count) \(type.name), \(op))" }
        enter("allreduce")
        validate(count: count, what())
        let t0 = MPI_Wtime()
        var done = 0
        while done < count {
            let n = Swift.min(count - done, Communicator.maxChunk)
            check(blocking(what()) { MPI_Allreduce(swiftgpt_mpi_in_place(), buf + done, Int32(n), type.handle, op.mpiOp, comm) },
                  "MPI_Allreduce in " + what())
            done += n
        }
        noteBlocking(since: t0)
        timing.reducedBytes += count * MemoryLayout<T>.stride
        if op.isMean { T.divide(buf, count: count, by: size) }
    }

    /// Combines one value across ranks (e.g. the mean loss, or "did any rank fail": `.max` of 0/1).
    public func allreduce<T: CommReducible>(_ value: T, op: T.Reduction) -> T {
        var v = value
        allreduce(&v, count: 1, op: op)
        return v
    }

    // MARK: - Broadcast

    /// Copies `count` elements from `root`'s buffer into every other rank's buffer.
    public func broadcast<T: CommElement>(_ buf: UnsafeMutablePointer<T>, count: Int, root: Int = 0) {
        let type = T.commDatatype
        let what = { "broadcast(\(count) \(type.name), root \(root))" }
        enter("broadcast")
        validate(count: count, what())
        guard let root32 = Int32(exactly: root) else { fail("\(what()): root \(root) is not a rank") }
        let t0 = MPI_Wtime()
        var done = 0
        repeat {
            let n = Swift.min(count - done, Communicator.maxChunk)
            check(blocking(what()) { MPI_Bcast(buf + done, Int32(n), type.handle, root32, comm) }, "MPI_Bcast in " + what())
            done += n
        } while done < count
        noteBlocking(since: t0)
    }

    /// Returns `root`'s value on every rank (other ranks' arguments are ignored).
    public func broadcast<T: CommElement>(_ value: T, root: Int = 0) -> T {
        var v = value
        broadcast(&v, count: 1, root: root)
        return v
    }

    /// Returns `root`'s bytes on every rank; the length need not be known elsewhere.
    public func broadcast(_ data: Data, root: Int = 0) -> Data {
        let length = broadcast(rank == root ? data.count : 0, root: root)
        var bytes = rank == root ? [UInt8](data) : [UInt8](repeating: 0, count: length)
        bytes.withUnsafeMutableBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            broadcast(base, count: length, root: root)
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
    public func allgather<T: CommElement>(_ value: T) -> [T] {
        allgather([value]).map { $0[0] }
    }

    /// Returns every rank's array, indexed by rank: (size, count); all ranks must pass arrays of the same length.
    public func allgather<T: CommElement>(_ values: [T]) -> [[T]] {
        enter("allgather")
        let count = values.count
        if allreduce(count, op: .max) != allreduce(count, op: .min) {
            fail("allgather: ranks passed arrays of different lengths (this rank: \(count)); "
                 + "every rank must pass the same number of values")
        }
        guard count > 0 else { return Array(repeating: [], count: size) }
        let type = T.commDatatype
        let t0 = MPI_Wtime()
        let flat = [T](unsafeUninitializedCapacity: count * size) { received, initialized in
            values.withUnsafeBufferPointer { send in
                check(blocking("allgather(\(count) \(type.name))") {
                    MPI_Allgather(send.baseAddress, Int32(count), type.handle,
                                  received.baseAddress, Int32(count), type.handle, comm)
                }, "MPI_Allgather(\(count) \(type.name))")
            }
            initialized = count * size
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
    package func ranksDifferingFromRoot(_ value: UInt64) -> [Int] {
        let all = allgather(value)
        return all.indices.filter { all[$0] != all[0] }
    }

    // MARK: - Timing

    /// Counts one blocking collective that began at MPI time `t0`.
    func noteBlocking(since t0: Double) {
        timing.blockingSeconds += MPI_Wtime() - t0
        timing.blockingCalls += 1
    }
}
