import GPTComm
import GPTCore

// MARK: - Gradient averaging

/// Averages gradients across ranks: either one blocking allreduce after
/// backward, or (overlap) buckets handed to a communication thread as backward
/// finishes them, last block first, as PyTorch DDP and Horovod do.
///
/// Both paths sum over ranks and then divide each element by the number of
/// ranks; only the order in which MPI adds the ranks' values may differ.
///
/// With ZeRO-1 (`shards`) the same buckets are reduce-scattered in place instead: each rank ends
/// with the mean of its own slice only (`shardGrads`; the rest of `grads` is left undefined). The
/// norm for clipping comes from the slices (one scalar allreduce), and after each rank's update
/// `gatherParameters` all-gathers them: blocking, or (`gatherParts`, with the communication thread)
/// one bucket per part of the model started at once, which the next forward waits for part by part
/// (`awaitParameters`) as it reaches them.
final class GradientSync {
    let comm: Communicator
    let grads: UnsafeMutablePointer<Float>
    let count: Int
    let bucketFloats: Int
    /// The communication thread (overlap in a world of more than one rank), else nil.
    let reducer: BackgroundAllreducer?
    /// ZeRO-1's split of the buffer over the ranks; nil: every rank averages all of it.
    let shards: ShardLayout?
    /// This rank's slice of the buffer (all of it without `shards`).
    let shard: Range<Int>
    /// The averaged gradients of `shard`, which the optimizer applies: `grads + shard.lowerBound`.
    let shardGrads: UnsafeMutablePointer<Float>
    private let shardCounts: [Int]
    /// The model's parts in forward order, all-gathered one bucket each on the communication thread;
    /// nil: one blocking all-gather (stage 0, no communication thread, or overlap_gather off).
    let gatherParts: [Range<Int>]?
    /// Whether the buckets of `gatherParts` are running (from `gatherParameters` to `completeGather`).
    private(set) var gathering = false
    private var pending: Range<Int>?
    private var launched = false
    private var covered = 0

    init(comm: Communicator, grads: UnsafeMutablePointer<Float>, count: Int, bucketFloats: Int, overlap: Bool,
         zeroStage: Int = 0, gatherParts: [Range<Int>]? = nil) {
        self.comm = comm; self.grads = grads; self.count = count
        self.bucketFloats = bucketFloats
        reducer = overlap && comm.size > 1 ? BackgroundAllreducer(communicator: comm) : nil
        shards = Self.shards(zeroStage: zeroStage, count: count, comm: comm)
        shard = shards?.range(of: comm.rank) ?? 0..<count
        shardGrads = grads + shard.lowerBound
        shardCounts = shards?.counts(in: 0..<count) ?? []
        self.gatherParts = reducer != nil && shards != nil ? gatherParts : nil
    }

    /// ZeRO-1's split of `count` parameters over the world (stage 1 with more than one rank), else nil.
    static func shards(zeroStage: Int, count: Int, comm: Communicator) -> ShardLayout? {
        zeroStage >= 1 && comm.size > 1 ? ShardLayout(count: count, ranks: comm.size) : nil
    }

    /// Backward finished `r`; ranges arrive from the end of the buffer to its start, adjacent.
    ///
    /// Called between layers of backward: no MPI call here (the communication thread owns MPI
    /// from the first bucket until `finish()`).
    func ready(_ r: Range<Int>) {
        guard let reducer else { return }
        precondition(!gathering, "backward began before forward waited for the parameters' all-gather")
        launched = true
        covered += r.count
        let merged = pending.map { r.lowerBound..<$0.upperBound } ?? r
        if merged.count >= bucketFloats {
            launch(merged, on: reducer)
            pending = nil
        } else {
            pending = merged
        }
    }

    /// Completes the averaging: waits for the communication thread, or does the blocking allreduce.
    func finish() {
        if let reducer, launched {
            if let p = pending { launch(p, on: reducer) }
            reducer.finish()
            precondition(covered == count, "backward reported \(covered) of \(count) gradients as ready")
            pending = nil
            launched = false
            covered = 0
        } else if shards != nil {
            comm.reduceScatter(grads, counts: shardCounts, op: .mean)
        } else {
            comm.allreduce(grads, count: count, op: .mean)
        }
    }

    /// Starts the bucket `r` on the communication thread: its allreduce, or its reduce-scatter
    /// (which leaves the part of `shardGrads` that `r` covers averaged).
    private func launch(_ r: Range<Int>, on reducer: BackgroundAllreducer) {
        guard let shards else { return reducer.start(grads + r.lowerBound, count: r.count) }
        reducer.startReduceScatter(grads + r.lowerBound, counts: shards.counts(in: r))
    }

    // MARK: - Clipping, parameters and moments

    /// The global norm of the averaged gradients (before clipping); with `shards` one scalar
    /// allreduce of the slices' sums of squares, so every rank returns the same norm. Clipping
    /// itself happens inside AdamW's pass (`clipCoefficient`, `AdamW.step(gradScale:)`).
    func globalNorm() -> Float {
        guard shards != nil else { return gradientNorm(grads, count: count) }
        return Float(comm.allreduce(gradientSquareSum(shardGrads, count: shard.count), op: .sum).squareRoot())
    }

    /// After each rank updated its slice of `params`: every slice to every rank (nothing without
    /// `shards`); with `gatherParts` it only starts the buckets, which `awaitParameters` and
    /// `completeGather` wait for.
    func gatherParameters(_ params: UnsafeMutablePointer<Float>) {
        guard let shards else { return }
        guard let reducer, let parts = gatherParts else { return comm.allgather(params, counts: shardCounts) }
        for r in parts { reducer.startAllgather(params + r.lowerBound, counts: shards.counts(in: r)) }
        gathering = true
    }

    /// Forward is about to read part `part` of `gatherParts`: waits for its bucket; after the last
    /// part MPI returns to the caller. Nothing to do while no all-gather runs.
    func awaitParameters(_ part: Int) {
        guard gathering, let reducer, let parts = gatherParts else { return }
        reducer.wait(forBucket: part)
        if part == parts.count - 1 { completeGather() }
    }

    /// Waits for every bucket of the parameters' all-gather (before evaluation, checkpoints,
    /// sampling, replica checks); nothing to do while none runs.
    func completeGather() {
        guard gathering, let reducer else { return }
        reducer.finish()
        gathering = false
    }

    /// The whole AdamW moments on rank 0, as a checkpoint holds them; nil on the other ranks.
    /// With `shards` a collective: every rank must call it.
    func gatherMoments(_ optimizer: AdamW) -> (m: [Float], v: [Float])? {
        guard shards != nil else {
            return comm.isRoot ? (Array(UnsafeBufferPointer(start: optimizer.m, count: count)),
                                  Array(UnsafeBufferPointer(start: optimizer.v, count: count))) : nil
        }
        func gathered(_ local: UnsafeMutablePointer<Float>) -> [Float]? {
            guard comm.isRoot else { comm.gather(local, counts: shardCounts, into: nil); return nil }
            return [Float](unsafeUninitializedCapacity: count) { full, initialized in
                comm.gather(local, counts: shardCounts, into: full.baseAddress)
                initialized = count
            }
        }
        let m = gathered(optimizer.m), v = gathered(optimizer.v)
        return comm.isRoot ? (m!, v!) : nil
    }
}
