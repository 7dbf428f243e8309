import GPTCore
import XCTest

/// ZeRO-1's split of the flat buffer, and AdamW on its slices.
final class ShardLayoutTests: XCTestCase {
    func testShardsCoverTheBufferInRankOrderAlignedWithEmptyOnesLast() {
        for (count, ranks) in [(0, 1), (1, 1), (100, 3), (224, 6), (1000, 7), (4096, 4), (5, 8)] {
            let s = ShardLayout(count: count, ranks: ranks)
            var next = 0
            for r in 0..<ranks {
                let range = s.range(of: r)
                XCTAssertEqual(range.lowerBound, next, "\(count) over \(ranks): rank \(r) starts where rank \(r - 1) ends")
                XCTAssertTrue(range.lowerBound % ShardLayout.alignment == 0 || range.isEmpty)
                XCTAssertLessThanOrEqual(range.count, s.shardSize)
                next = range.upperBound
            }
            XCTAssertEqual(next, count, "\(count) over \(ranks): the shards cover the buffer")
            XCTAssertEqual(s.counts(in: 0..<count).reduce(0, +), count)
            XCTAssertEqual(s.counts(in: (count / 3)..<(count / 2)).reduce(0, +), count / 2 - count / 3)
        }
        XCTAssertTrue(ShardLayout(count: 224, ranks: 6).range(of: 5).isEmpty, "a tiny model on many ranks leaves a shard empty")
    }

    /// Three optimizers on three shards, each fed its slice of the gradients, make exactly the
    /// unsharded optimizer's update (weight decay per element's tensor), and hold its moments.
    func testShardedAdamWEqualsTheWholeUpdateBitForBit() {
        let layout = ParameterLayout(config: GPTConfig(vocabSize: 7, blockSize: 6, nLayer: 2, nHead: 2, nEmbd: 8))
        let n = layout.count
        let shards = ShardLayout(count: n, ranks: 3)
        let whole = AdamW(layout: layout, weightDecay: 0.1)
        let parts = (0..<3).map { AdamW(layout: layout, shard: shards.range(of: $0), weightDecay: 0.1) }
        var a = (0..<n).map { Float(sin(Double($0))) }, b = a
        for step in 0..<4 {
            let g = (0..<n).map { Float(cos(Double($0 * (step + 2)))) }
            whole.step(params: &a, grads: g, lr: 1e-2)
            for p in parts { Array(g[p.shard]).withUnsafeBufferPointer { p.step(params: &b, grads: $0.baseAddress!, lr: 1e-2) } }
        }
        XCTAssertEqual(a.map(\.bitPattern), b.map(\.bitPattern))
        let m = parts.flatMap { Array(UnsafeBufferPointer(start: $0.m, count: $0.count)) }
        XCTAssertEqual(m, Array(UnsafeBufferPointer(start: whole.m, count: n)))
        parts[1].loadMoments(m: whole.m, v: whole.v)
        XCTAssertEqual(parts[1].v[0], whole.v[shards.range(of: 1).lowerBound])
    }
}
