/// One named tensor inside the flat parameter (or gradient) buffer.
public struct TensorView: Equatable, Sendable {
    public let name: String
    public let offset: Int
    public let shape: [Int]
    public var count: Int { shape.reduce(1, *) }
    /// AdamW decays tensors of dimension >= 2 (matrices, embeddings), as nanoGPT.
    public var decays: Bool { shape.count >= 2 }
}

/// Where every parameter lives in the one flat buffer.
///
/// Order: `wte.weight` (V,C), `wpe.weight` (T,C), then each block `h.<l>.`
/// `ln_1.weight` (C), `ln_1.bias` (C), `attn.c_attn.weight` (3C,C),
/// `attn.c_attn.bias` (3C), `attn.c_proj.weight` (C,C), `attn.c_proj.bias` (C),
/// `ln_2.weight` (C), `ln_2.bias` (C), `mlp.c_fc.weight` (4C,C),
/// `mlp.c_fc.bias` (4C), `mlp.c_proj.weight` (C,4C), `mlp.c_proj.bias` (C),
/// then `ln_f.weight`, `ln_f.bias` and, when weights are not tied,
/// `lm_head.weight` (V,C). Biases are absent when `bias` is false.
/// Names are nanoGPT's state_dict keys without the `transformer.` prefix;
/// linear weights are (out, in) as in PyTorch. Each block is contiguous, so
/// gradient buckets can be cut at block boundaries.
public struct ParameterLayout: Sendable {
    public let tensors: [TensorView]
    public let count: Int
    /// Range of the flat buffer occupied by block `l`.
    public let blockRanges: [Range<Int>]
    private let index: [String: Int]

    public init(config c: GPTConfig) {
        var tensors: [TensorView] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) {
            let t = TensorView(name: name, offset: offset, shape: shape)
            tensors.append(t)
            offset += t.count
        }
        let C = c.nEmbd
        add("wte.weight", [c.vocabSize, C])
        add("wpe.weight", [c.blockSize, C])
        var ranges: [Range<Int>] = []
        for l in 0..<c.nLayer {
            let start = offset
            let p = "h.\(l)."
            add(p + "ln_1.weight", [C])
            if c.bias { add(p + "ln_1.bias", [C]) }
            add(p + "attn.c_attn.weight", [3 * C, C])
            if c.bias { add(p + "attn.c_attn.bias", [3 * C]) }
            add(p + "attn.c_proj.weight", [C, C])
            if c.bias { add(p + "attn.c_proj.bias", [C]) }
            add(p + "ln_2.weight", [C])
            if c.bias { add(p + "ln_2.bias", [C]) }
            add(p + "mlp.c_fc.weight", [4 * C, C])
            if c.bias { add(p + "mlp.c_fc.bias", [4 * C]) }
            add(p + "mlp.c_proj.weight", [C, 4 * C])
            if c.bias { add(p + "mlp.c_proj.bias", [C]) }
            ranges.append(start..<offset)
        }
        add("ln_f.weight", [C])
        if c.bias { add("ln_f.bias", [C]) }
        if !c.tieWeights { add("lm_head.weight", [c.vocabSize, C]) }
        self.tensors = tensors
        self.count = offset
        self.blockRanges = ranges
        var index: [String: Int] = [:]
        for (i, t) in tensors.enumerated() { index[t.name] = i }
        self.index = index
    }

    public subscript(name: String) -> TensorView? {
        index[name].map { tensors[$0] }
    }

    /// Parameters as nanoGPT reports them: all but the position embedding.
    public var nonEmbeddingCount: Int { count - (self["wpe.weight"]?.count ?? 0) }
}
