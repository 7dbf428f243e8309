/// The normalisation of the blocks and of the final layer: `layernorm` (GPT-2: mean
/// subtracted, learned scale and, with `bias`, shift) or `rmsnorm` (Zhang & Sennrich
/// 2019: x / rms(x) times a learned scale; no mean, no bias).
public enum NormKind: String, Codable, CaseIterable, Sendable {
    case layerNorm = "layernorm", rmsNorm = "rmsnorm"
}

/// How the model knows where a token is: `learned`, a position table `wpe` added to the
/// token embedding (GPT-2), or `rope`, rotary embeddings (Su et al. 2021) turning q and k
/// in every layer, with no table.
public enum PositionKind: String, Codable, CaseIterable, Sendable {
    case learned, rope
}

/// The position-wise feed-forward of each block: `gelu`, c_proj(gelu(c_fc x)) 4C wide
/// (GPT-2), or `swiglu`, c_proj(silu(W1 x) * W3 x) (Shazeer 2020) with `c_fc` = [W1; W3],
/// each `swigluHidden` wide.
public enum MLPKind: String, Codable, CaseIterable, Sendable {
    case gelu, swiglu
}

/// The shape of a GPT: what nanoGPT calls `GPTConfig`, plus the architecture options
/// (norm, position, mlp, qk_norm) whose defaults are GPT-2's.
public struct GPTConfig: Codable, Equatable, Sendable {
    public var vocabSize: Int
    public var blockSize: Int
    public var nLayer: Int
    public var nHead: Int
    public var nEmbd: Int
    public var dropout: Float
    public var bias: Bool
    public var tieWeights: Bool
    public var norm: NormKind = .layerNorm
    public var position: PositionKind = .learned
    /// The RoPE base: pair i of a head turns by position * ropeBase^(-2i/head_size).
    public var ropeBase: Double = 10_000
    public var mlp: MLPKind = .gelu
    /// SwiGLU's hidden width is 2/3 of 4C rounded up to a multiple of this.
    public var swigluMultiple: Int = 8
    /// An RMSNorm over each head of q and of k before the dot product.
    public var qkNorm: Bool = false

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
        case norm, position, ropeBase = "rope_base", mlp, swigluMultiple = "swiglu_multiple", qkNorm = "qk_norm"
    }

    /// Decodes a config; the architecture options are absent from checkpoints written
    /// before they existed and default to GPT-2's.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(vocabSize: try c.decode(Int.self, forKey: .vocabSize), blockSize: try c.decode(Int.self, forKey: .blockSize),
                  nLayer: try c.decode(Int.self, forKey: .nLayer), nHead: try c.decode(Int.self, forKey: .nHead),
                  nEmbd: try c.decode(Int.self, forKey: .nEmbd), dropout: try c.decode(Float.self, forKey: .dropout),
                  bias: try c.decode(Bool.self, forKey: .bias), tieWeights: try c.decode(Bool.self, forKey: .tieWeights))
        norm = try c.decodeIfPresent(NormKind.self, forKey: .norm) ?? norm
        position = try c.decodeIfPresent(PositionKind.self, forKey: .position) ?? position
        ropeBase = try c.decodeIfPresent(Double.self, forKey: .ropeBase) ?? ropeBase
        mlp = try c.decodeIfPresent(MLPKind.self, forKey: .mlp) ?? mlp
        swigluMultiple = try c.decodeIfPresent(Int.self, forKey: .swigluMultiple) ?? swigluMultiple
        qkNorm = try c.decodeIfPresent(Bool.self, forKey: .qkNorm) ?? qkNorm
    }

    public var headSize: Int { nEmbd / nHead }

    /// SwiGLU's hidden width H: ceil(8C/3) rounded up to a multiple of `swigluMultiple`,
    /// so its three C x H matrices hold about the parameters of GELU's two C x 4C.
    public var swigluHidden: Int {
        let m = max(1, swigluMultiple), h = (8 * nEmbd + 2) / 3
        return (h + m - 1) / m * m
    }

    /// Width of the MLP's hidden activation (the input of c_proj): 4C, or H for SwiGLU.
    public var mlpHidden: Int { mlp == .swiglu ? swigluHidden : 4 * nEmbd }

    /// Width of c_fc's output: 4C, or 2H for SwiGLU (gate and value).
    public var mlpInner: Int { mlp == .swiglu ? 2 * swigluHidden : 4 * nEmbd }

    /// Whether q and k are transformed (QK-norm, RoPE) between c_attn and the attention.
    public var transformsQK: Bool { qkNorm || position == .rope }

    /// The architecture options that differ from GPT-2's, as `key = value` (empty for GPT-2).
    public var options: [String] {
        var o: [String] = []
        if norm != .layerNorm { o.append("norm = \(norm.rawValue)") }
        if position != .learned { o.append("position = \(position.rawValue), rope_base = \(ropeBase)") }
        if mlp != .gelu { o.append("mlp = \(mlp.rawValue) (hidden \(swigluHidden))") }
        if qkNorm { o.append("qk_norm = true") }
        return o
    }

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
        } else if nHead >= 1 && position == .rope && headSize % 2 != 0 {
            p.append("position = \"rope\" needs an even head size (n_embd / n_head = \(headSize)); change n_embd or n_head")
        }
        if !(dropout >= 0 && dropout < 1) { p.append("dropout must be in [0, 1) (got \(dropout))") }
        if !(ropeBase > 1 && ropeBase.isFinite) { p.append("rope_base must be a finite number above 1 (got \(ropeBase))") }
        if swigluMultiple < 1 { p.append("swiglu_multiple must be at least 1 (got \(swigluMultiple))") }
        return p
    }
}
