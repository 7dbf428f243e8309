/// The shape of a GPT: what nanoGPT calls `GPTConfig`.
public struct GPTConfig: Codable, Equatable, Sendable {
    public var vocabSize: Int
    public var blockSize: Int
    public var nLayer: Int
    public var nHead: Int
    public var nEmbd: Int
    public var dropout: Float
    public var bias: Bool
    public var tieWeights: Bool

    public init(vocabSize: Int = 65, blockSize: Int = 256, nLayer: Int = 6, nHead: Int = 6,
                nEmbd: Int = 384, dropout: Float = 0, bias: Bool = true, tieWeights: Bool = true) {
        self.vocabSize = vocabSize
        self.blockSize = blockSize
        self.nLayer = nLayer
        self.nHead = nHead
        self.nEmbd = nEmbd
        self.dropout = dropout
        self.bias = bias
        self.tieWeights = tieWeights
    }

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", blockSize = "block_size", nLayer = "n_layer", nHead = "n_head"
        case nEmbd = "n_embd", dropout, bias, tieWeights = "tie_weights"
    }

    public var headSize: Int { nEmbd / nHead }

    /// Problems with the shape, phrased as what to change; empty when valid.
    public func problems() -> [String] {
        var p: [String] = []
        if vocabSize < 1 { p.append("vocab_size must be at least 1 (got \(vocabSize))") }
        if blockSize < 1 { p.append("block_size must be at least 1 (got \(blockSize))") }
        if nLayer < 1 { p.append("n_layer must be at least 1 (got \(nLayer))") }
        if nHead < 1 { p.append("n_head must be at least 1 (got \(nHead))") }
        if nEmbd < 1 { p.append("n_embd must be at least 1 (got \(nEmbd))") }
        if nHead >= 1 && nEmbd % nHead != 0 {
            p.append("n_embd (\(nEmbd)) must be divisible by n_head (\(nHead))")
        }
        if !(dropout >= 0 && dropout < 1) { p.append("dropout must be in [0, 1) (got \(dropout))") }
        return p
    }
}
