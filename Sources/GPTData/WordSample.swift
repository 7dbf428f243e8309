// Sampling a corpus for tokenizer training: whole documents in a seeded
// order up to a byte budget, their words counted on every core.
import Foundation
import GPTSupport
import GPTTokenizers

// MARK: - Training a tokenizer on a sample

extension BPETrainer {
    /// Counts the words of up to `sampleBytes` of the documents, taken whole in a seeded random order.
    ///
    /// The documents are read in the order of a hash of their names and
    /// `seed`, so the sample is spread over the corpus and the same for the
    /// same files; the last one is cut short at the budget.
    public static func countWords(documents: [CorpusDocument], sampleBytes: Int, seed: UInt64 = 0, threads: Int,
                                  progress: ProgressLine? = nil) throws -> WordCounts {
        let order = documents.indices.sorted {
            (documentHash(documents[$0].name, seed: seed ^ 0x5A4D_504C), $0)
                < (documentHash(documents[$1].name, seed: seed ^ 0x5A4D_504C), $1)
        }
        let threads = max(1, threads)
        let batcher = DocumentBatcher(documents: documents, order: order, batchBytes: threads * (4 << 20),
                                      byteLimit: sampleBytes)
        var perThread = [WordCounts](repeating: WordCounts(), count: threads)
        while let batch = try batcher.next() {
            // Cut segments further so every thread gets work, then count concurrently.
            var pieces: [(segment: Int, range: Range<Int>)] = []
            for (s, segment) in batch.enumerated() {
                let ranges = segment.bytes.withUnsafeBufferPointer {
                    Pretokenizer.pieces(of: $0, pieceBytes: BPEEncoder.pieceBytes)
                }
                pieces += ranges.map { (s, $0) }
            }
            let work = pieces
            perThread.withUnsafeMutableBufferPointer { counts in
                let out = counts.baseAddress!
                concurrentStrided(count: work.count, threads: threads) { t, i in
                    batch[work[i].segment].bytes.withUnsafeBufferPointer { b in
                        (out + t).pointee.add(UnsafeBufferPointer(rebasing: b[work[i].range]))
                    }
                }
            }
            progress?.update(step: batcher.bytesRead)
        }
        var total = perThread[0]
        for t in 1..<threads { total.add(perThread[t]) }
        return total
    }
}
