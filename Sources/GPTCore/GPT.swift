#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// A GPT-2 style decoder: one flat parameter buffer, one flat gradient buffer
/// of the same layout, an activation arena sized for (B, T), and a forward /
/// backward written out layer by layer as in llm.c.
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

    let views: ModelViews
    private var acts: Activations?
    private var lastB = 0, lastT = 0
    private var lastInputs: UnsafeMutablePointer<Int32>?
    private var lastTargets: UnsafeMutablePointer<Int32>?
    private var lastTargetCount = 0
    private var hasTargets = false

    // MARK: - Construction

    /// Builds the model with GPT-2 initialisation from `seed`: normal(0, 0.02) for
    /// matrices and embeddings, 0.02/sqrt(2 n_layer) for residual projections
    /// (c_proj), zero biases, unit LayerNorm weights.
    public init(config: GPTConfig, seed: UInt64 = 1337) {
        precondition(config.problems().isEmpty, config.problems().joined(separator: "; "))
        self.config = config
        self.layout = ParameterLayout(config: config)
        params = .allocate(capacity: layout.count)
        grads = .allocate(capacity: layout.count)
        params.initialize(repeating: 0, count: layout.count)
        grads.initialize(repeating: 0, count: layout.count)
        views = ModelViews(config: config, layout: layout, params: params, grads: grads)
        initialize(seed: seed)
    }

    deinit {
        params.deallocate()
        grads.deallocate()
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
            } else if t.name.contains("ln_") {
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
        let fanIn = ["attn.c_attn": C, "attn.c_proj": C, "mlp.c_fc": C, "mlp.c_proj": 4 * C]
        // The head's own weight: lm_head.weight, or (tied) the buffer wte shares with it.
        let head = tensor(c.tieWeights ? "wte.weight" : "lm_head.weight")

        // 1. Construction: each module's reset_parameters.
        let (wte, nwte) = tensor("wte.weight"), (wpe, nwpe) = tensor("wpe.weight")
        g.normal(wte, count: nwte, mean: 0, std: 1)
        g.normal(wpe, count: nwpe, mean: 0, std: 1)
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
        g.normal(wpe, count: nwpe, mean: 0, std: 0.02)
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

        // Biases zero, LayerNorm weights one.
        for t in layout.tensors {
            let p = params + t.offset
            if t.name.hasSuffix(".bias") {
                p.update(repeating: 0, count: t.count)
            } else if t.name.contains("ln_") {
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
        if let a = acts, a.B >= B, a.T >= T, a.hasDropout == (config.dropout > 0) { return }
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
        let V = config.vocabSize, C = config.nEmbd, NH = config.nHead, L = config.nLayer
        for i in 0..<(B * T) {
            precondition(inputs[i] >= 0 && Int(inputs[i]) < V, "token id \(inputs[i]) out of range 0..<\(V)")
        }
        reserve(B: B, T: T)
        let a = acts!
        lastB = B; lastT = T
        lastInputs!.update(from: inputs, count: B * T)
        hasTargets = targets != nil
        if let targets { lastTargets!.update(from: targets, count: B * T) }
        let p = views
        let N = B * T
        let drop = training ? config.dropout : 0
        let seed = dropoutSeed
        let prof = profiler

        prof?.begin(.embedding)
        encoderForward(a.encoded, inputs, p.wte, p.wpe, B: B, T: T, C: C)
        if drop > 0 { dropoutApply(a.encoded, a.encoded, N: N * C, p: drop, key: dropoutKey(seed: seed, site: 0)) }
        prof?.end(.embedding)

        var residual = UnsafePointer(a.encoded)
        for l in 0..<L {
            let w = p.blocks[l]
            let la = a.layers[l]
            prof?.begin(.layerNorm)
            layerNormForward(la.ln1, la.ln1Mean, la.ln1Rstd, residual, w.ln1w, w.ln1b, N: N, C: C)
            prof?.end(.layerNorm)
            prof?.begin(.matmul)
            matmulForward(la.qkv, la.ln1, w.qkvw, w.qkvb, N: N, C: C, OC: 3 * C)
            prof?.end(.matmul)
            prof?.begin(.attention)
            attentionForward(la.atty, la.att, la.attDrop, la.qkv, B: B, T: T, C: C, NH: NH,
                             dropoutP: drop, dropoutKey: dropoutKey(seed: seed, site: 1 + 3 * l))
            prof?.end(.attention)
            prof?.begin(.matmul)
            matmulForward(a.scratchBTC, la.atty, w.attprojw, w.attprojb, N: N, C: C, OC: C)
            prof?.end(.matmul)
            prof?.begin(.residual)
            if drop > 0 {
                dropoutApply(a.scratchBTC, a.scratchBTC, N: N * C, p: drop, key: dropoutKey(seed: seed, site: 2 + 3 * l))
            }
            residualForward(la.res2, residual, a.scratchBTC, N: N * C)
            prof?.end(.residual)
            prof?.begin(.layerNorm)
            layerNormForward(la.ln2, la.ln2Mean, la.ln2Rstd, la.res2, w.ln2w, w.ln2b, N: N, C: C)
            prof?.end(.layerNorm)
            prof?.begin(.matmul)
            matmulForward(la.fch, la.ln2, w.fcw, w.fcb, N: N, C: C, OC: 4 * C)
            prof?.end(.matmul)
            prof?.begin(.gelu)
            geluForward(la.fchGelu, la.fch, N: N * 4 * C)
            prof?.end(.gelu)
            prof?.begin(.matmul)
            matmulForward(a.scratchBTC, la.fchGelu, w.fcprojw, w.fcprojb, N: N, C: 4 * C, OC: C)
            prof?.end(.matmul)
            prof?.begin(.residual)
            if drop > 0 {
                dropoutApply(a.scratchBTC, a.scratchBTC, N: N * C, p: drop, key: dropoutKey(seed: seed, site: 3 + 3 * l))
            }
            residualForward(la.res3, la.res2, a.scratchBTC, N: N * C)
            prof?.end(.residual)
            residual = UnsafePointer(la.res3)
        }
        prof?.begin(.layerNorm)
        layerNormForward(a.lnf, a.lnfMean, a.lnfRstd, residual, p.lnfw, p.lnfb, N: N, C: C)
        prof?.end(.layerNorm)
        prof?.begin(.lmHead)
        matmulForward(a.logits, a.lnf, p.lmHead, nil, N: N, C: C, OC: V)
        prof?.end(.lmHead)

        guard let targets else { lastTargetCount = 0; return 0 }
        prof?.begin(.loss)
        let (sum, count) = crossEntropyForward(a.losses, a.logits, targets, N: N, V: V)
        prof?.end(.loss)
        lastTargetCount = count
        return count > 0 ? Float(sum / Double(count)) : 0
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
        let V = config.vocabSize, C = config.nEmbd, NH = config.nHead, L = config.nLayer
        let p = views
        let drop = training ? config.dropout : 0
        let seed = dropoutSeed
        let prof = profiler
        let inputs = UnsafePointer(lastInputs!), targets = UnsafePointer(lastTargets!)

        // Loss and LM head.
        prof?.begin(.loss)
        let dloss = lastTargetCount > 0 ? lossScale / Float(lastTargetCount) : 0
        crossEntropyBackward(a.logits, a.logits, targets, N: N, V: V, dloss: dloss)
        prof?.end(.loss)
        prof?.begin(.lmHead)
        matmulBackward(a.dln, p.dlmHead, nil, a.logits, a.lnf, p.lmHead, N: N, C: C, OC: V)
        prof?.end(.lmHead)
        prof?.begin(.layerNorm)
        a.dres.update(repeating: 0, count: N * C)
        let lastRes = L > 0 ? UnsafePointer(a.layers[L - 1].res3) : UnsafePointer(a.encoded)
        layerNormBackward(a.dres, p.dlnfw, p.dlnfb, a.dln, lastRes, p.lnfw, a.lnfMean, a.lnfRstd, N: N, C: C)
        prof?.end(.layerNorm)
        onGradientsReady?(views.tailRange)

        for l in stride(from: L - 1, through: 0, by: -1) {
            let w = p.blocks[l]
            let la = a.layers[l]
            let residual = l > 0 ? UnsafePointer(a.layers[l - 1].res3) : UnsafePointer(a.encoded)

            // x = res2 + drop(mlp(ln2(res2)))
            prof?.begin(.residual)
            var dbranch = UnsafePointer(a.dres)
            if drop > 0 {
                dropoutApply(a.dtmp, a.dres, N: N * C, p: drop, key: dropoutKey(seed: seed, site: 3 + 3 * l))
                dbranch = UnsafePointer(a.dtmp)
            }
            prof?.end(.residual)
            prof?.begin(.matmul)
            matmulBackward(a.dbig, w.dfcprojw, w.dfcprojb, dbranch, la.fchGelu, w.fcprojw, N: N, C: 4 * C, OC: C)
            prof?.end(.matmul)
            prof?.begin(.gelu)
            geluBackward(a.dbig, la.fch, a.dbig, N: N * 4 * C)
            prof?.end(.gelu)
            prof?.begin(.matmul)
            matmulBackward(a.dln, w.dfcw, w.dfcb, a.dbig, la.ln2, w.fcw, N: N, C: C, OC: 4 * C)
            prof?.end(.matmul)
            prof?.begin(.layerNorm)
            layerNormBackward(a.dres, w.dln2w, w.dln2b, a.dln, la.res2, w.ln2w, la.ln2Mean, la.ln2Rstd, N: N, C: C)
            prof?.end(.layerNorm)

            // res2 = x + drop(attn(ln1(x)))
            prof?.begin(.residual)
            dbranch = UnsafePointer(a.dres)
            if drop > 0 {
                dropoutApply(a.dtmp, a.dres, N: N * C, p: drop, key: dropoutKey(seed: seed, site: 2 + 3 * l))
                dbranch = UnsafePointer(a.dtmp)
            }
            prof?.end(.residual)
            prof?.begin(.matmul)
            matmulBackward(a.datty, w.dattprojw, w.dattprojb, dbranch, la.atty, w.attprojw, N: N, C: C, OC: C)
            prof?.end(.matmul)
            prof?.begin(.attention)
            attentionBackward(a.dqkv, a.datt, a.datty, la.qkv, la.att, la.attDrop, B: B, T: T, C: C, NH: NH,
                              dropoutP: drop, dropoutKey: dropoutKey(seed: seed, site: 1 + 3 * l))
            prof?.end(.attention)
            prof?.begin(.matmul)
            matmulBackward(a.dln, w.dqkvw, w.dqkvb, a.dqkv, la.ln1, w.qkvw, N: N, C: C, OC: 3 * C)
            prof?.end(.matmul)
            prof?.begin(.layerNorm)
            layerNormBackward(a.dres, w.dln1w, w.dln1b, a.dln, residual, w.ln1w, la.ln1Mean, la.ln1Rstd, N: N, C: C)
            prof?.end(.layerNorm)
            onGradientsReady?(layout.blockRanges[l])
        }

        prof?.begin(.embedding)
        if drop > 0 { dropoutApply(a.dres, a.dres, N: N * C, p: drop, key: dropoutKey(seed: seed, site: 0)) }
        encoderBackward(p.dwte, p.dwpe, a.dres, inputs, B: B, T: T, C: C)
        prof?.end(.embedding)
        onGradientsReady?(views.headRange)
    }
}

// MARK: - Named pointers into the flat buffers

/// Pointers to every named tensor, resolved once. Optional fields are the biases.
struct ModelViews {
    struct Block {
        let ln1w, qkvw, attprojw, ln2w, fcw, fcprojw: UnsafeMutablePointer<Float>
        let ln1b, qkvb, attprojb, ln2b, fcb, fcprojb: UnsafeMutablePointer<Float>?
        let dln1w, dqkvw, dattprojw, dln2w, dfcw, dfcprojw: UnsafeMutablePointer<Float>
        let dln1b, dqkvb, dattprojb, dln2b, dfcb, dfcprojb: UnsafeMutablePointer<Float>?
    }
    let wte, wpe, lnfw, lmHead: UnsafeMutablePointer<Float>
    let lnfb: UnsafeMutablePointer<Float>?
    let dwte, dwpe, dlnfw, dlmHead: UnsafeMutablePointer<Float>
    let dlnfb: UnsafeMutablePointer<Float>?
    let blocks: [Block]
    /// wte + wpe: final after the embedding backward.
    let headRange: Range<Int>
    /// ln_f (+ lm_head): final right after the LM head backward.
    let tailRange: Range<Int>

    init(config: GPTConfig, layout: ParameterLayout, params: UnsafeMutablePointer<Float>, grads: UnsafeMutablePointer<Float>) {
        func p(_ n: String) -> UnsafeMutablePointer<Float> { params + layout[n]!.offset }
        func g(_ n: String) -> UnsafeMutablePointer<Float> { grads + layout[n]!.offset }
        func po(_ n: String) -> UnsafeMutablePointer<Float>? { layout[n].map { params + $0.offset } }
        func go(_ n: String) -> UnsafeMutablePointer<Float>? { layout[n].map { grads + $0.offset } }
        wte = p("wte.weight"); wpe = p("wpe.weight"); lnfw = p("ln_f.weight"); lnfb = po("ln_f.bias")
        dwte = g("wte.weight"); dwpe = g("wpe.weight"); dlnfw = g("ln_f.weight"); dlnfb = go("ln_f.bias")
        lmHead = config.tieWeights ? wte : p("lm_head.weight")
        dlmHead = config.tieWeights ? dwte : g("lm_head.weight")
        blocks = (0..<config.nLayer).map { l in
            let h = "h.\(l)."
            return Block(ln1w: p(h + "ln_1.weight"), qkvw: p(h + "attn.c_attn.weight"), attprojw: p(h + "attn.c_proj.weight"),
                         ln2w: p(h + "ln_2.weight"), fcw: p(h + "mlp.c_fc.weight"), fcprojw: p(h + "mlp.c_proj.weight"),
                         ln1b: po(h + "ln_1.bias"), qkvb: po(h + "attn.c_attn.bias"), attprojb: po(h + "attn.c_proj.bias"),
                         ln2b: po(h + "ln_2.bias"), fcb: po(h + "mlp.c_fc.bias"), fcprojb: po(h + "mlp.c_proj.bias"),
                         dln1w: g(h + "ln_1.weight"), dqkvw: g(h + "attn.c_attn.weight"), dattprojw: g(h + "attn.c_proj.weight"),
                         dln2w: g(h + "ln_2.weight"), dfcw: g(h + "mlp.c_fc.weight"), dfcprojw: g(h + "mlp.c_proj.weight"),
                         dln1b: go(h + "ln_1.bias"), dqkvb: go(h + "attn.c_attn.bias"), dattprojb: go(h + "attn.c_proj.bias"),
                         dln2b: go(h + "ln_2.bias"), dfcb: go(h + "mlp.c_fc.bias"), dfcprojb: go(h + "mlp.c_proj.bias"))
        }
        let wpeT = layout["wpe.weight"]!
        headRange = 0..<(wpeT.offset + wpeT.count)
        tailRange = layout["ln_f.weight"]!.offset..<layout.count
    }
}

// MARK: - Activation arena

/// Every activation forward keeps for backward, plus backward scratch, in one allocation.
final class Activations {
    struct Layer {
        let ln1, ln1Mean, ln1Rstd, qkv, att, atty, res2, ln2, ln2Mean, ln2Rstd, fch, fchGelu, res3: UnsafeMutablePointer<Float>
        let attDrop: UnsafeMutablePointer<Float>?
    }
    let B: Int, T: Int, hasDropout: Bool
    let base: UnsafeMutablePointer<Float>
    let bytes: Int
    let encoded, lnf, lnfMean, lnfRstd, logits, losses: UnsafeMutablePointer<Float>
    let scratchBTC: UnsafeMutablePointer<Float>
    // Backward scratch, shared by all layers.
    let dres, dtmp, dln, datty, dqkv, dbig, datt: UnsafeMutablePointer<Float>
    let layers: [Layer]

    init(config c: GPTConfig, B: Int, T: Int) {
        self.B = B; self.T = T
        hasDropout = c.dropout > 0
        let C = c.nEmbd, NH = c.nHead, V = c.vocabSize, N = B * T
        let attSize = B * NH * T * T
        var sizes: [Int] = []
        // Layout pass: record sizes, then carve.
        let perLayer = [N * C, N, N, N * 3 * C, attSize, N * C, N * C, N * C, N, N, N * 4 * C, N * 4 * C, N * C,
                        hasDropout ? attSize : 0]
        sizes += [N * C, N * C, N, N, N * V, N, N * C]
        sizes += [N * C, N * C, N * C, N * C, N * 3 * C, N * 4 * C, attSize]
        for _ in 0..<c.nLayer { sizes += perLayer }
        let total = sizes.reduce(0, +)
        let mem = UnsafeMutablePointer<Float>.allocate(capacity: total)
        mem.initialize(repeating: 0, count: total)
        base = mem
        bytes = total * MemoryLayout<Float>.size
        var offset = 0
        func take(_ n: Int) -> UnsafeMutablePointer<Float> { defer { offset += n }; return mem + offset }
        encoded = take(N * C); lnf = take(N * C); lnfMean = take(N); lnfRstd = take(N)
        logits = take(N * V); losses = take(N); scratchBTC = take(N * C)
        dres = take(N * C); dtmp = take(N * C); dln = take(N * C); datty = take(N * C)
        dqkv = take(N * 3 * C); dbig = take(N * 4 * C); datt = take(attSize)
        var layers: [Layer] = []
        for _ in 0..<c.nLayer {
            let ln1 = take(N * C), m1 = take(N), r1 = take(N), qkv = take(N * 3 * C), att = take(attSize)
            let atty = take(N * C), res2 = take(N * C), ln2 = take(N * C), m2 = take(N), r2 = take(N)
            let fch = take(N * 4 * C), fchGelu = take(N * 4 * C), res3 = take(N * C)
            let attDrop: UnsafeMutablePointer<Float>? = hasDropout ? take(attSize) : nil
            layers.append(Layer(ln1: ln1, ln1Mean: m1, ln1Rstd: r1, qkv: qkv, att: att, atty: atty, res2: res2,
                                ln2: ln2, ln2Mean: m2, ln2Rstd: r2, fch: fch, fchGelu: fchGelu, res3: res3, attDrop: attDrop))
        }
        precondition(offset == total)
        self.layers = layers
    }

    deinit { base.deallocate() }
}
