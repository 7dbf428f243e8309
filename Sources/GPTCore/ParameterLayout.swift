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
/// The architecture options change the table: RoPE drops `wpe.weight`; RMSNorm
/// drops the norms' biases; QK-norm adds `attn.q_norm.weight` and
/// `attn.k_norm.weight` (hs) after `attn.c_attn`; SwiGLU makes `mlp.c_fc`
/// (2H,C) = [W1; W3] and `mlp.c_proj` (C,H), H = `swigluHidden`.
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
        func add(_ spec: TensorSpec, prefix: String = "") {
            let t = TensorView(name: prefix + spec.name, offset: offset, shape: spec.shape)
            tensors.append(t)
            offset += t.count
        }
        let table = Table(config: c)
        for s in table.embeddings { add(s) }
        var ranges: [Range<Int>] = []
        for l in 0..<c.nLayer {
            let start = offset
            for s in table.block { add(s, prefix: "h.\(l).") }
            ranges.append(start..<offset)
        }
        for s in table.final { add(s) }
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

    /// Whether `name` is the scale of a norm (LayerNorm, RMSNorm, QK-norm): initialised to one.
    public static func isNormWeight(_ name: String) -> Bool {
        name.hasSuffix(".weight") && (name.hasPrefix("ln_") || name.contains(".ln_") || name.hasSuffix("_norm.weight"))
    }

    /// Parameters as nanoGPT reports them: all but the position embedding.
    public var nonEmbeddingCount: Int { count - (self["wpe.weight"]?.count ?? 0) }

    /// The number of floats `ParameterLayout(config:)` would hold, from the same table,
    /// without building it; nil when it does not fit in an `Int`.
    public static func floatCount(config c: GPTConfig) -> Int? {
        let table = Table(config: c)
        func floats(_ specs: [TensorSpec]) -> Int? { CheckedSize.sum(specs.map { CheckedSize.product($0.factors) }) }
        return CheckedSize.sum([floats(table.embeddings), CheckedSize.times(c.nLayer, floats(table.block)),
                                floats(table.final)])
    }

    // MARK: - The table

    /// One tensor of the table: its name and its shape with each dimension kept as
    /// factors (`[[3, C], [C]]` is (3C, C)), so its size can be checked for overflow.
    struct TensorSpec {
        let name: String
        let dims: [[Int]]
        var factors: [Int] { dims.flatMap { $0 } }
        var shape: [Int] { dims.map { $0.reduce(1, *) } }
    }

    /// Every tensor of a config, in buffer order: the embeddings, one block (names
    /// below `h.<l>.`), and what follows the last block.
    struct Table {
        let embeddings: [TensorSpec], block: [TensorSpec], final: [TensorSpec]

        init(config c: GPTConfig) {
            let C = c.nEmbd, V = c.vocabSize, hs = c.headSize
            var specs: [TensorSpec] = []
            // A module's weight, then its bias (when the config has biases).
            func module(_ name: String, weight: [[Int]], bias: [Int]) {
                specs.append(TensorSpec(name: name + ".weight", dims: weight))
                if c.bias { specs.append(TensorSpec(name: name + ".bias", dims: [bias])) }
            }
            // LayerNorm has a bias with the others; RMSNorm never.
            func norm(_ name: String, width: Int) {
                if c.norm == .layerNorm { module(name, weight: [[width]], bias: [width]) }
                else { specs.append(TensorSpec(name: name + ".weight", dims: [[width]])) }
            }
            embeddings = [TensorSpec(name: "wte.weight", dims: [[V], [C]])]
                + (c.position == .learned ? [TensorSpec(name: "wpe.weight", dims: [[c.blockSize], [C]])] : [])
            norm("ln_1", width: C)
            module("attn.c_attn", weight: [[3, C], [C]], bias: [3, C])
            if c.qkNorm {
                specs.append(TensorSpec(name: "attn.q_norm.weight", dims: [[hs]]))
                specs.append(TensorSpec(name: "attn.k_norm.weight", dims: [[hs]]))
            }
            module("attn.c_proj", weight: [[C], [C]], bias: [C])
            norm("ln_2", width: C)
            let inner = c.mlp == .swiglu ? [2, c.swigluHidden] : [4, C]
            let hidden = c.mlp == .swiglu ? [c.swigluHidden] : [4, C]
            module("mlp.c_fc", weight: [inner, [C]], bias: inner)
            module("mlp.c_proj", weight: [[C], hidden], bias: [C])
            block = specs
            specs = []
            norm("ln_f", width: C)
            if !c.tieWeights { specs.append(TensorSpec(name: "lm_head.weight", dims: [[V], [C]])) }
            final = specs
        }
    }
}
