/// How ZeRO-1 splits the flat parameter buffer (and so the gradients and AdamW moments) over ranks.
///
/// Rank r owns the consecutive elements `range(of: r)`; the shards follow each other in rank
/// order and cover `0..<count` exactly. Every shard but the last non-empty one holds
/// `shardSize` elements, the size rounded up to `alignment` (64 bytes of floats: no two ranks
/// share a cache line, and every shard starts on a vector boundary); the last non-empty one holds
/// the rest, and the shards after it, if any, are empty (a tiny model on many ranks).
public struct ShardLayout: Equatable, Sendable {
    /// Elements of the whole buffer.
    public let count: Int
    /// Ranks sharing it.
    public let ranks: Int
    /// Elements of a full shard: ceil(count / ranks) rounded up to `alignment`.
    public let shardSize: Int
    public static let alignment = 16

    public init(count: Int, ranks: Int) {
        precondition(count >= 0 && ranks >= 1, "ShardLayout(count: \(count), ranks: \(ranks))")
        self.count = count
        self.ranks = ranks
        let perRank = (count + ranks - 1) / ranks
        shardSize = (perRank + Self.alignment - 1) / Self.alignment * Self.alignment
    }

    /// The elements rank `rank` owns (possibly empty).
    public func range(of rank: Int) -> Range<Int> {
        let start = min(count, rank * shardSize)
        return start..<min(count, start + shardSize)
    }

    /// How many elements of `slice` each rank owns, in rank order (they add up to `slice.count`).
    public func counts(in slice: Range<Int>) -> [Int] {
        (0..<ranks).map { range(of: $0).clamped(to: slice).count }
    }

    /// The largest shard (rank 0's): what a rank holds at most.
    public var largest: Int { range(of: 0).count }
}
