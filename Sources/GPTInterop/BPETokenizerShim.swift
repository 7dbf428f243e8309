import GPTTokenizers

extension BPETokenizer {
    init(merges: [BPEMerge], specialTokens: [String], ids: [Int32]) throws {
        precondition(ids == (0..<Int32(ids.count)).map { $0 }, "id tables are not supported yet")
        try self.init(merges: merges, specialTokens: specialTokens)
    }
    func bytes(ofToken k: Int) -> [UInt8] { bytes(of: Int32(k))! }
    func id(ofToken k: Int) -> Int32 { Int32(k) }
}
