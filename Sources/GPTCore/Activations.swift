// MARK: - Activation arena
//
// Every activation forward keeps for backward, plus backward scratch, in one
// allocation sized from (config, B, T). The table below is the one place a
// buffer's shape is written: the arena carves it, and `GPT.activationFloatCount`
// sums it (overflow-checked) before anything is allocated. Every buffer is
// linear in T: the tiled attention keeps one log-sum-exp per row, and its
// per-thread scratch (k and v of one head transposed, three tiles) is
// allocated by each call: 0.6 MiB per thread at head size 64, T = 1024.

/// The buffers shared by all layers, in arena order.
enum SharedBuffer: CaseIterable {
    case encoded, lnf, lnfMean, lnfRstd, logits, losses, scratchBTC
    // Backward scratch.
    case dres, dtmp, dln, datty, dqkv, dbig, dhidden

    /// The shape as factors: (B,T,C), (B,T), (B,T,V), (B,T,3C), (B,T,4C); with SwiGLU,
    /// dbig is (B,T,2H) and dhidden (B,T,H), else dhidden is empty. Nothing is (T,T):
    /// the attention's backward recomputes its probabilities tile by tile.
    func shape(_ c: GPTConfig, B: Int, T: Int) -> [Int] {
        switch self {
        case .encoded, .lnf, .scratchBTC, .dres, .dtmp, .dln, .datty: [B, T, c.nEmbd]
        case .lnfMean, .lnfRstd, .losses: [B, T]
        case .logits: [B, T, c.vocabSize]
        case .dqkv: [B, T, 3, c.nEmbd]
        case .dbig: [B, T, c.mlpInner]
        case .dhidden: c.mlp == .swiglu ? [B, T, c.mlpHidden] : [0]
        }
    }
}

/// The buffers of one transformer block, in arena order.
enum LayerBuffer: CaseIterable {
    case ln1, ln1Mean, ln1Rstd, qkv, attLse, atty, res2, ln2, ln2Mean, ln2Rstd, fch, fchGelu, res3, qkvr, qkRstd

    /// The shape as factors; `attLse` is the attention's log-sum-exp per row (linear in T),
    /// `qkvr` (q and k after QK-norm and RoPE) is empty (0) without either, `qkRstd` without QK-norm. `fch` is c_fc's output
    /// (4C, or 2H for SwiGLU), `fchGelu` the MLP's hidden activation (4C, or H).
    func shape(_ c: GPTConfig, B: Int, T: Int) -> [Int] {
        switch self {
        case .ln1, .atty, .res2, .ln2, .res3: [B, T, c.nEmbd]
        case .ln1Mean, .ln1Rstd, .ln2Mean, .ln2Rstd: [B, T]
        case .qkv: [B, T, 3, c.nEmbd]
        case .fch: [B, T, c.mlpInner]
        case .fchGelu: [B, T, c.mlpHidden]
        case .attLse: [B, c.nHead, T]
        case .qkvr: c.transformsQK ? [B, T, 3, c.nEmbd] : [0]
        case .qkRstd: c.qkNorm ? [B, T, 2, c.nHead] : [0]
        }
    }
}

extension GPT {
    /// Floats in the activation arena of `config` for a (B, T) batch, from the
    /// table the arena carves; nil when the count does not fit in an `Int`.
    public static func activationFloatCount(config c: GPTConfig, B: Int, T: Int) -> Int? {
        let shared = CheckedSize.sum(SharedBuffer.allCases.map { CheckedSize.product($0.shape(c, B: B, T: T)) })
        let layer = CheckedSize.sum(LayerBuffer.allCases.map { CheckedSize.product($0.shape(c, B: B, T: T)) })
        return CheckedSize.sum([shared, CheckedSize.times(c.nLayer, layer)])
    }
}

/// The arena: one allocation carved into the buffers of the table.
final class Activations {
    /// One block's activations: what its forward writes and its backward reads.
    struct Layer {
        let ln1, ln1Mean, ln1Rstd, qkv: UnsafeMutablePointer<Float>
        /// The attention's log-sum-exp of each row's scores (B,NH,T).
        let attLse: UnsafeMutablePointer<Float>
        let atty, res2, ln2, ln2Mean, ln2Rstd, fch, fchGelu, res3: UnsafeMutablePointer<Float>
        /// q, k (transformed) and v as the attention reads them, and QK-norm's rstd; empty
        /// (not to be used) unless the config transforms q and k.
        let qkvr, qkRstd: UnsafeMutablePointer<Float>
    }
    let B: Int, T: Int
    let base: UnsafeMutablePointer<Float>
    let bytes: Int
    let encoded, lnf, lnfMean, lnfRstd, logits, losses: UnsafeMutablePointer<Float>
    let scratchBTC: UnsafeMutablePointer<Float>
    // Backward scratch, shared by all layers.
    let dres, dtmp, dln, datty, dqkv, dbig, dhidden: UnsafeMutablePointer<Float>
    let layers: [Layer]

    init(config c: GPTConfig, B: Int, T: Int) {
        self.B = B; self.T = T
        guard let total = GPT.activationFloatCount(config: c, B: B, T: T) else {
            preconditionFailure("the activations of B = \(B), T = \(T) do not fit in memory")
        }
        let mem = UnsafeMutablePointer<Float>.allocate(capacity: total)
        mem.initialize(repeating: 0, count: total)
        base = mem
        bytes = total * MemoryLayout<Float>.size
        var offset = 0
        func take(_ shape: [Int]) -> UnsafeMutablePointer<Float> {
            defer { offset += shape.reduce(1, *) }
            return mem + offset
        }
        var s: [SharedBuffer: UnsafeMutablePointer<Float>] = [:]
        for b in SharedBuffer.allCases { s[b] = take(b.shape(c, B: B, T: T)) }
        encoded = s[.encoded]!; lnf = s[.lnf]!; lnfMean = s[.lnfMean]!; lnfRstd = s[.lnfRstd]!
        logits = s[.logits]!; losses = s[.losses]!; scratchBTC = s[.scratchBTC]!
        dres = s[.dres]!; dtmp = s[.dtmp]!; dln = s[.dln]!; datty = s[.datty]!
        dqkv = s[.dqkv]!; dbig = s[.dbig]!; dhidden = s[.dhidden]!
        layers = (0..<c.nLayer).map { _ in
            var p: [LayerBuffer: UnsafeMutablePointer<Float>] = [:]
            for b in LayerBuffer.allCases { p[b] = take(b.shape(c, B: B, T: T)) }
            return Layer(ln1: p[.ln1]!, ln1Mean: p[.ln1Mean]!, ln1Rstd: p[.ln1Rstd]!, qkv: p[.qkv]!, attLse: p[.attLse]!,
                         atty: p[.atty]!, res2: p[.res2]!, ln2: p[.ln2]!, ln2Mean: p[.ln2Mean]!, ln2Rstd: p[.ln2Rstd]!,
                         fch: p[.fch]!, fchGelu: p[.fchGelu]!, res3: p[.res3]!,
                         qkvr: p[.qkvr]!, qkRstd: p[.qkRstd]!)
        }
        precondition(offset == total)
    }

    deinit { base.deallocate() }
}
