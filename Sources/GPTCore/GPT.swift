#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A GPT-2 style decoder: one flat parameter buffer, one flat gradient buffer
/// of the same layout, an activation arena sized for (B, T), and a forward /
/// backward written out layer by layer as in llm.c, one transformer block at a
/// time (`blockForward` / `blockBackward`, shared with the KV-cache sampler).
public final class GPT {
    public let config: GPTConfig
    public let layout: ParameterLayout
    /// All parameters, `layout.count` floats.
    public let params: UnsafeMutablePointer<Float>
    /// All gradients, same layout; backward accumulates into it.
    public let grads: UnsafeMutablePointer<Float>
    public var parameterCount: Int { layout.count }

    /// When true, forward applies dropout (if config.dropout > 0).
    public var training = true
    /// Seed of the dropout masks for the next forward/backward pair: the trainer
    /// sets it from (run seed, rank, step, micro-step) so a resumed run repeats them.
    public var dropoutSeed: UInt64 = 0
    /// Optional per-layer timing (used by `gpt bench`).
    public var profiler: Profiler?
    /// Called by forward with the index in `parameterParts` of the parameters it is about to read
    /// (0, then each block, then the final norm and head): ZeRO-1 waits there for their all-gather.
    public var awaitParameters: ((Int) -> Void)?

    /// The flat parameter buffer in the order forward reads it: the embeddings, each block, the
    /// final norm and the untied head; consecutive, covering it exactly.
    public var parameterParts: [Range<Int>] { [views.headRange] + layout.blockRanges + [views.tailRange] }

    let views: ModelViews
    /// RoPE's cos and sin per (position, pair), (block_size, hs/2, 2); nil with learned positions.
    let ropeTable: UnsafeMutablePointer<Float>?
    private var acts: Activations?
    private var lastB = 0, lastT = 0
    private var lastInputs: UnsafeMutablePointer<Int32>?
    private var lastTargets: UnsafeMutablePointer<Int32>?
    private var lastTargetCount = 0
    private var hasTargets = false

    // MARK: - Construction

    /// Builds the model with GPT-2 initialisation from `seed`: normal(0, 0.02) for
    /// matrices and embeddings, 0.02/sqrt(2 n_layer) for residual projections
    /// (c_proj), zero biases, unit norm weights (LayerNorm, RMSNorm, QK-norm).
    public init(config: GPTConfig, seed: UInt64 = 1337) {
        precondition(config.problems().isEmpty, config.problems().joined(separator: "; "))
        self.config = config
        self.layout = ParameterLayout(config: config)
        params = .allocate(capacity: layout.count)
        grads = .allocate(capacity: layout.count)
        params.initialize(repeating: 0, count: layout.count)
        grads.initialize(repeating: 0, count: layout.count)
        views = ModelViews(config: config, layout: layout, params: params, grads: grads)
        if config.position == .rope {
            let table = GPTCore.ropeTable(maxT: config.blockSize, headSize: config.headSize, base: config.ropeBase)
            ropeTable = .allocate(capacity: table.count)
            ropeTable!.initialize(from: table, count: table.count)
        } else {
            ropeTable = nil
        }
        initialize(seed: seed)
    }

    deinit {
        params.deallocate()
        grads.deallocate()
        ropeTable?.deallocate()
        lastInputs?.deallocate()
        lastTargets?.deallocate()
    }

    /// Re-initialises every parameter as GPT-2 does, from `seed`.
    public func initialize(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let residStd = 0.02 / (2.0 * Double(config.nLayer)).squareRoot()
        for t in layout.tensors {
            let p = params + t.offset
            if t.name.hasSuffix(".bias") {
                for i in 0..<t.count { p[i] = 0 }
            } else if ParameterLayout.isNormWeight(t.name) {
                for i in 0..<t.count { p[i] = 1 }
            } else {
                let std = t.name.hasSuffix("c_proj.weight") ? residStd : 0.02
                for i in 0..<t.count { p[i] = Float(rng.nextNormal() * std) }
            }
        }
    }

    /// Re-initialises every parameter as nanoGPT's `GPT(config)` does under
    /// `torch.manual_seed`, drawing from `g` exactly as torch does, so `g` is
    /// left where nanoGPT's first `get_batch` finds it.
    ///
    /// torch draws three times: each module's own init while the model is
    /// built (Embedding: normal_, Linear: kaiming uniform_ on the weight and
    /// uniform_ on the bias; nanoGPT builds wte, wpe, the blocks, then
    /// lm_head), then `_init_weights` over the modules in `apply`'s order
    /// (normal_(0, 0.02) for Embedding and Linear weights; with tied weights
    /// lm_head's draw is the one that stays), then normal_(0, 0.02/sqrt(2
    /// n_layer)) for every c_proj weight in `named_parameters` order. Only the
    /// last draw of each tensor survives; the earlier ones still move the
    /// stream. Biases end at zero and LayerNorm weights at one.
    public func initializeAsNanoGPT(_ g: inout TorchGenerator) {
        let c = config, C = c.nEmbd, L = c.nLayer
        func tensor(_ name: String) -> (UnsafeMutablePointer<Float>, Int) {
            guard let t = layout[name] else { preconditionFailure("no parameter named \(name)") }
            return (params + t.offset, t.count)
        }
        let linears = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]
        let fanIn = ["attn.c_attn": C, "attn.c_proj": C, "mlp.c_fc": C, "mlp.c_proj": c.mlpHidden]
        // The head's own weight: lm_head.weight, or (tied) the buffer wte shares with it.
        let head = tensor(c.tieWeights ? "wte.weight" : "lm_head.weight")

        // 1. Construction: each module's reset_parameters.
        let (wte, nwte) = tensor("wte.weight")
        let wpe = layout["wpe.weight"].map { (params + $0.offset, $0.count) }
        g.normal(wte, count: nwte, mean: 0, std: 1)
        if let wpe { g.normal(wpe.0, count: wpe.1, mean: 0, std: 1) }
        for l in 0..<L {
            for m in linears {
                let bound = 1 / Float(fanIn[m]!).squareRoot()
                let (w, nw) = tensor("h.\(l).\(m).weight")
                g.uniform(w, count: nw, from: -bound, to: bound)
                if c.bias {
                    let (b, nb) = tensor("h.\(l).\(m).bias")
                    g.uniform(b, count: nb, from: -bound, to: bound)
                }
            }
        }
        let headBound = 1 / Float(C).squareRoot()
        g.uniform(head.0, count: head.1, from: -headBound, to: headBound)

        // 2. _init_weights through apply(): wte, wpe, the blocks' linears, lm_head.
        g.normal(wte, count: nwte, mean: 0, std: 0.02)
        if let wpe { g.normal(wpe.0, count: wpe.1, mean: 0, std: 0.02) }
        for l in 0..<L {
            for m in linears {
                let (w, nw) = tensor("h.\(l).\(m).weight")
                g.normal(w, count: nw, mean: 0, std: 0.02)
            }
        }
        g.normal(head.0, count: head.1, mean: 0, std: 0.02)

        // 3. The scaled residual projections.
        let residStd = Float(0.02 / (2.0 * Double(L)).squareRoot())
        for l in 0..<L {
            for m in ["attn.c_proj", "mlp.c_proj"] {
                let (w, nw) = tensor("h.\(l).\(m).weight")
                g.normal(w, count: nw, mean: 0, std: residStd)
            }
        }

        // Biases zero, norm weights one.
        for t in layout.tensors {
            let p = params + t.offset
            if t.name.hasSuffix(".bias") {
                p.update(repeating: 0, count: t.count)
            } else if ParameterLayout.isNormWeight(t.name) {
                p.update(repeating: 1, count: t.count)
            }
        }
    }

    /// Pointer to the parameter tensor `name` (see ParameterLayout for names).
    public func parameter(_ name: String) -> UnsafeMutablePointer<Float> {
        guard let t = layout[name] else { preconditionFailure("no parameter named \(name)") }
        return params + t.offset
    }

    /// Pointer to the gradient of parameter `name`.
    public func gradient(_ name: String) -> UnsafeMutablePointer<Float> {
        guard let t = layout[name] else { preconditionFailure("no parameter named \(name)") }
        return grads + t.offset
    }

    public func zeroGrad() {
        grads.update(repeating: 0, count: layout.count)
    }

    /// Logits (B,T,V) of the last forward. Backward overwrites them with their gradient.
    public var logits: UnsafeMutablePointer<Float> {
        guard let acts else { preconditionFailure("forward has not run") }
        return acts.logits
    }

    /// Per-position losses (B,T) of the last forward with targets (0 where ignored).
    public var losses: UnsafeMutablePointer<Float> {
        guard let acts else { preconditionFailure("forward has not run") }
        return acts.losses
    }

    /// Number of targets that were not ignored in the last forward.
    public var targetCount: Int { lastTargetCount }

    /// Bytes held by the activation arena for the largest (B, T) seen so far.
    public var activationBytes: Int { acts?.bytes ?? 0 }

    /// Makes sure the arena can hold a (B, T) batch.
    public func reserve(B: Int, T: Int) {
        if let a = acts, a.B >= B, a.T >= T { return }
        let nb = max(B, acts?.B ?? 0), nt = max(T, acts?.T ?? 0)
        acts = Activations(config: config, B: nb, T: nt)
        lastInputs?.deallocate()
        lastTargets?.deallocate()
        lastInputs = .allocate(capacity: nb * nt)
        lastTargets = .allocate(capacity: nb * nt)
    }

    // MARK: - Forward

    /// Runs the model on inputs (B,T) and returns the mean cross-entropy over
    /// targets that are not -1 (0 when no targets are given or all are ignored).
    @discardableResult
    public func forward(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?, B: Int, T: Int) -> Float {
        precondition(B >= 1 && T >= 1 && T <= config.blockSize,
                     "sequence length \(T) must be in 1...block_size (\(config.blockSize))")
        let V = config.vocabSize, C = config.nEmbd, N = B * T
        for i in 0..<N {
            precondition(inputs[i] >= 0 && Int(inputs[i]) < V, "token id \(inputs[i]) out of range 0..<\(V)")
        }
        reserve(B: B, T: T)
        let a = acts!
        lastB = B; lastT = T
        lastInputs!.update(from: inputs, count: N)
        hasTargets = targets != nil
        if let targets { lastTargets!.update(from: targets, count: N) }
        let dropout = dropoutMasks

        awaitParameters?(0)
        timed(.embedding) {
            encoderForward(a.encoded, inputs, views.wte, views.wpe, B: B, T: T, C: C)
            _ = dropout.apply(a.encoded, a.encoded, N: N * C, site: .embedding)
        }
        var x = UnsafePointer(a.encoded)
        for l in 0..<config.nLayer {
            awaitParameters?(1 + l)
            blockForward(layer: l, a.layers[l], input: x, scratch: a.scratchBTC, N: N,
                         attention: .causal(B: B, T: T), dropout: dropout)
            x = UnsafePointer(a.layers[l].res3)
        }
        awaitParameters?(config.nLayer + 1)
        headForward(a.logits, a.lnf, a.lnfMean, a.lnfRstd, x, N: N)

        guard let targets else { lastTargetCount = 0; return 0 }
        var result: (sum: Double, count: Int) = (0, 0)
        timed(.loss) { result = crossEntropyForward(a.losses, a.logits, targets, N: N, V: V) }
        lastTargetCount = result.count
        return result.count > 0 ? Float(result.sum / Double(result.count)) : 0
    }

    /// The dropout of the next forward/backward pair: off unless training with dropout > 0.
    var dropoutMasks: DropoutMasks {
        DropoutMasks(p: training ? config.dropout : 0, seed: dropoutSeed)
    }

    // MARK: - Backward

    /// Accumulates into `grads` the gradient of `lossScale` times the last
    /// forward's mean loss (lossScale = 1/accumulation_steps for gradient
    /// accumulation). `onGradientsReady` is called with each flat range of the
    /// gradient buffer as soon as it is final, last block first (for
    /// overlapping the allreduce with the rest of backward).
    public func backward(lossScale: Float = 1, onGradientsReady: ((Range<Int>) -> Void)? = nil) {
        guard let a = acts, hasTargets else { preconditionFailure("backward needs a forward with targets") }
        let B = lastB, T = lastT, N = B * T
        let V = config.vocabSize, C = config.nEmbd, L = config.nLayer
        let p = views
        let dropout = dropoutMasks
        let inputs = UnsafePointer(lastInputs!), targets = UnsafePointer(lastTargets!)
        func blockOutput(_ l: Int) -> UnsafePointer<Float> {
            l >= 0 ? UnsafePointer(a.layers[l].res3) : UnsafePointer(a.encoded)
        }

        // Loss, LM head and the final LayerNorm.
        timed(.loss) {
            let dloss = lastTargetCount > 0 ? lossScale / Float(lastTargetCount) : 0
            crossEntropyBackward(a.logits, a.logits, targets, N: N, V: V, dloss: dloss)
        }
        timed(.lmHead) { matmulBackward(a.dln, p.dlmHead, nil, a.logits, a.lnf, p.lmHead, N: N, C: C, OC: V) }
        timed(.layerNorm) {
            a.dres.update(repeating: 0, count: N * C)
            normBackward(a.dres, p.dlnfw, p.dlnfb, a.dln, blockOutput(L - 1), p.lnfw, a.lnfMean, a.lnfRstd, N: N)
        }
        onGradientsReady?(views.tailRange)

        for l in stride(from: L - 1, through: 0, by: -1) {
            blockBackward(layer: l, a.layers[l], input: blockOutput(l - 1), scratch: a, B: B, T: T, dropout: dropout)
            onGradientsReady?(layout.blockRanges[l])
        }

        timed(.embedding) {
            _ = dropout.apply(a.dres, a.dres, N: N * C, site: .embedding)
            encoderBackward(p.dwte, p.dwpe, a.dres, inputs, B: B, T: T, C: C)
        }
        onGradientsReady?(views.headRange)
    }
}
