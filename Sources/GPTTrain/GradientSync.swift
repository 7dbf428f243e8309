import GPTComm

// MARK: - Gradient averaging

/// Averages gradients across ranks: either one blocking allreduce after
/// backward, or (overlap) buckets handed to a communication thread as backward
/// finishes them, last block first, as PyTorch DDP and Horovod do.
///
/// Both paths sum over ranks and then divide each element by the number of
/// ranks; only the order in which MPI adds the ranks' values may differ.
final class GradientSync {
    let comm: Communicator
    let grads: UnsafeMutablePointer<Float>
    let count: Int
    let bucketFloats: Int
    /// The communication thread (overlap in a world of more than one rank), else nil.
    let reducer: BackgroundAllreducer?
    private var pending: Range<Int>?
    private var launched = false
    private var covered = 0

    init(comm: Communicator, grads: UnsafeMutablePointer<Float>, count: Int, bucketFloats: Int, overlap: Bool) {
        self.comm = comm; self.grads = grads; self.count = count
        self.bucketFloats = bucketFloats
        reducer = overlap && comm.size > 1 ? BackgroundAllreducer(communicator: comm) : nil
    }

    /// Backward finished `r`; ranges arrive from the end of the buffer to its start, adjacent.
    ///
    /// Called between layers of backward: no MPI call here (the communication thread owns MPI
    /// from the first bucket until `finish()`).
    func ready(_ r: Range<Int>) {
        guard let reducer else { return }
        launched = true
        covered += r.count
        let merged = pending.map { r.lowerBound..<$0.upperBound } ?? r
        if merged.count >= bucketFloats {
            reducer.start(grads + merged.lowerBound, count: merged.count)
            pending = nil
        } else {
            pending = merged
        }
    }

    /// Completes the averaging: waits for the communication thread, or does the blocking allreduce.
    func finish() {
        if let reducer, launched {
            if let p = pending { reducer.start(grads + p.lowerBound, count: p.count) }
            reducer.finish()
            precondition(covered == count, "backward reported \(covered) of \(count) gradients as ready")
            pending = nil
            launched = false
            covered = 0
        } else {
            comm.allreduce(grads, count: count, op: .mean)
        }
    }
}
