// MARK: - One transformer block, forward and backward
//
// x = x + drop(attn(ln_1(x)));  x = x + drop(mlp(ln_2(x)))
//
// ln_* is a LayerNorm or an RMSNorm (`norm`); attn sees q and k after QK-norm and
// RoPE when those are on; mlp is GELU's or SwiGLU's.
//
// The training forward, sampling without a cache and the KV-cache sampler all
// run `blockForward`; only the attention step differs (`AttentionStep`).

/// Where a dropout mask is applied. Each site draws its own mask stream.
enum DropoutSite {
    /// The token + position embedding.
    case embedding
    /// The attention probabilities of a layer.
    case attention(layer: Int)
    /// A layer's attention branch, before the residual add.
    case attentionOutput(layer: Int)
    /// A layer's MLP branch, before the residual add.
    case mlpOutput(layer: Int)

    /// The stream id of the site's mask: 0, then three per layer.
    var stream: Int {
        switch self {
        case .embedding: 0
        case .attention(let l): 1 + 3 * l
        case .attentionOutput(let l): 2 + 3 * l
        case .mlpOutput(let l): 3 + 3 * l
        }
    }
}

/// The dropout of one forward/backward pair: its rate (0 is off) and the seed of its masks.
struct DropoutMasks {
    let p: Float
    let seed: UInt64

    static let off = DropoutMasks(p: 0, seed: 0)

    /// The key of the site's mask.
    func key(_ site: DropoutSite) -> UInt32 { dropoutKey(seed: seed, site: site.stream) }

    /// out (N) = mask(site) * inp / (1 - p), returned; `inp` itself when dropout is off.
    /// The same call maps an output gradient to an input gradient. `out` may alias `inp`.
    func apply(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, N: Int,
               site: DropoutSite) -> UnsafePointer<Float> {
        guard p > 0 else { return inp }
        dropoutApply(out, inp, N: N, p: p, key: key(site))
        return UnsafePointer(out)
    }
}

/// How a block's attention sees its keys and values.
enum AttentionStep {
    /// All T positions of B sequences at once, causally masked (training; sampling without a cache).
    case causal(B: Int, T: Int)
    /// One new position `pos` of one sequence: `k` and `v` (maxT, C) hold this layer's
    /// keys and values of positions 0..<pos and receive those of `pos`.
    case cached(k: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, pos: Int)
}

extension GPT {
    /// Times `body` as `kind` when a profiler is set.
    @inline(__always)
    func timed(_ kind: Profiler.Kind, _ body: () -> Void) {
        profiler?.begin(kind)
        body()
        profiler?.end(kind)
    }

    /// Block `l` on N = B*T rows: `a.res3` (N,C) = the block applied to `input` (N,C).
    /// `scratch` (N,C) holds each branch's output before its residual add.
    func blockForward(layer l: Int, _ a: Activations.Layer, input: UnsafePointer<Float>,
                      scratch: UnsafeMutablePointer<Float>, N: Int, attention: AttentionStep, dropout: DropoutMasks) {
        let w = views.blocks[l], C = config.nEmbd, NH = config.nHead
        // res2 = x + drop(attn(norm1(x)))
        timed(.layerNorm) { normForward(a.ln1, a.ln1Mean, a.ln1Rstd, input, w.ln1w, w.ln1b, N: N) }
        timed(.matmul) { matmulForward(a.qkv, a.ln1, w.qkvw, w.qkvb, N: N, C: C, OC: 3 * C) }
        let qkv = qkTransformForward(a, w, N: N, attention: attention)
        timed(.attention) {
            switch attention {
            case .causal(let B, let T):
                attentionForward(a.atty, a.attLse, qkv, B: B, T: T, C: C, NH: NH,
                                 dropoutP: dropout.p, dropoutKey: dropout.key(.attention(layer: l)))
            case .cached(let k, let v, let pos):
                attentionCachedForward(a.atty, qkv, kcache: k, vcache: v, pos: pos, C: C, NH: NH)
            }
        }
        timed(.matmul) { matmulForward(scratch, a.atty, w.attprojw, w.attprojb, N: N, C: C, OC: C) }
        timed(.residual) {
            let branch = dropout.apply(scratch, scratch, N: N * C, site: .attentionOutput(layer: l))
            residualForward(a.res2, input, branch, N: N * C)
        }
        // res3 = res2 + drop(mlp(norm2(res2)))
        timed(.layerNorm) { normForward(a.ln2, a.ln2Mean, a.ln2Rstd, a.res2, w.ln2w, w.ln2b, N: N) }
        timed(.matmul) { matmulForward(a.fch, a.ln2, w.fcw, w.fcb, N: N, C: C, OC: config.mlpInner) }
        timed(.gelu) {
            if config.mlp == .swiglu { swigluForward(a.fchGelu, a.fch, N: N, H: config.mlpHidden) }
            else { geluForward(a.fchGelu, a.fch, N: N * 4 * C) }
        }
        timed(.matmul) { matmulForward(scratch, a.fchGelu, w.fcprojw, w.fcprojb, N: N, C: config.mlpHidden, OC: C) }
        timed(.residual) {
            let branch = dropout.apply(scratch, scratch, N: N * C, site: .mlpOutput(layer: l))
            residualForward(a.res3, a.res2, branch, N: N * C)
        }
    }

    /// Backward of `blockForward` over a (B,T) batch: `g.dres` (N,C) holds the gradient of
    /// the block's output on entry and of its `input` on return; weight gradients accumulate.
    func blockBackward(layer l: Int, _ a: Activations.Layer, input: UnsafePointer<Float>, scratch g: Activations,
                       B: Int, T: Int, dropout: DropoutMasks) {
        let w = views.blocks[l], C = config.nEmbd, NH = config.nHead, N = B * T, H = config.mlpHidden
        // res3 = res2 + drop(mlp(norm2(res2)))
        var dbranch = UnsafePointer(g.dres)
        timed(.residual) { dbranch = dropout.apply(g.dtmp, g.dres, N: N * C, site: .mlpOutput(layer: l)) }
        let dhidden = config.mlp == .swiglu ? g.dhidden : g.dbig
        timed(.matmul) {
            matmulBackward(dhidden, w.dfcprojw, w.dfcprojb, dbranch, a.fchGelu, w.fcprojw, N: N, C: H, OC: C)
        }
        timed(.gelu) {
            if config.mlp == .swiglu { swigluBackward(g.dbig, a.fch, dhidden, N: N, H: H) }
            else { geluBackward(g.dbig, a.fch, a.fchGelu, g.dbig, N: N * 4 * C) }
        }
        timed(.matmul) { matmulBackward(g.dln, w.dfcw, w.dfcb, g.dbig, a.ln2, w.fcw, N: N, C: C, OC: config.mlpInner) }
        timed(.layerNorm) { normBackward(g.dres, w.dln2w, w.dln2b, g.dln, a.res2, w.ln2w, a.ln2Mean, a.ln2Rstd, N: N) }
        // res2 = x + drop(attn(norm1(x)))
        timed(.residual) { dbranch = dropout.apply(g.dtmp, g.dres, N: N * C, site: .attentionOutput(layer: l)) }
        timed(.matmul) {
            matmulBackward(g.datty, w.dattprojw, w.dattprojb, dbranch, a.atty, w.attprojw, N: N, C: C, OC: C)
        }
        let qkv = config.transformsQK ? UnsafePointer(a.qkvr) : UnsafePointer(a.qkv)
        timed(.attention) {
            attentionBackward(g.dqkv, g.datty, qkv, a.atty, a.attLse, B: B, T: T, C: C, NH: NH,
                              dropoutP: dropout.p, dropoutKey: dropout.key(.attention(layer: l)))
        }
        qkTransformBackward(g.dqkv, a, w, B: B, T: T)
        timed(.matmul) { matmulBackward(g.dln, w.dqkvw, w.dqkvb, g.dqkv, a.ln1, w.qkvw, N: N, C: C, OC: 3 * C) }
        timed(.layerNorm) { normBackward(g.dres, w.dln1w, w.dln1b, g.dln, input, w.ln1w, a.ln1Mean, a.ln1Rstd, N: N) }
    }

    // MARK: - The options: the norm, QK-norm and RoPE

    /// LayerNorm or RMSNorm (`mean` and `bias` unused) of N rows of C.
    func normForward(_ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>,
                     _ rstd: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                     _ bias: UnsafePointer<Float>?, N: Int) {
        switch config.norm {
        case .layerNorm: layerNormForward(out, mean, rstd, inp, weight, bias, N: N, C: config.nEmbd)
        case .rmsNorm: rmsNormForward(out, rstd, inp, weight, N: N, C: config.nEmbd)
        }
    }

    /// Backward of `normForward`: dinp accumulates, as do dweight and dbias.
    func normBackward(_ dinp: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>,
                      _ dbias: UnsafeMutablePointer<Float>?, _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>,
                      _ weight: UnsafePointer<Float>, _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>, N: Int) {
        switch config.norm {
        case .layerNorm: layerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N: N, C: config.nEmbd)
        case .rmsNorm: rmsNormBackward(dinp, dweight, dout, inp, weight, rstd, N: N, C: config.nEmbd)
        }
    }

    /// What the attention reads: `a.qkv` itself, or `a.qkvr` = its q and k after QK-norm and
    /// RoPE (each head rotated by its position: t % T, or the cached step's `pos`).
    func qkTransformForward(_ a: Activations.Layer, _ w: ModelViews.Block, N: Int,
                            attention: AttentionStep) -> UnsafePointer<Float> {
        guard config.transformsQK else { return UnsafePointer(a.qkv) }
        let C = config.nEmbd, NH = config.nHead
        timed(.qkTransform) {
            if config.qkNorm {
                qkNormForward(a.qkvr, a.qkRstd, a.qkv, qWeight: w.qnormw!, kWeight: w.knormw!, N: N, C: C, NH: NH)
            } else {
                a.qkvr.update(from: a.qkv, count: N * 3 * C)
            }
            if let rope = ropeTable {
                switch attention {
                case .causal(let B, let T): ropeApply(a.qkvr, rope, B: B, T: T, C: C, NH: NH)
                case .cached(_, _, let pos): ropeApply(a.qkvr, rope, B: 1, T: 1, C: C, NH: NH, firstPosition: pos)
                }
            }
        }
        return UnsafePointer(a.qkvr)
    }

    /// Backward of `qkTransformForward`, in place on dqkv (B,T,3C): the gradient of the
    /// attention's input on entry, of c_attn's output on return.
    func qkTransformBackward(_ dqkv: UnsafeMutablePointer<Float>, _ a: Activations.Layer, _ w: ModelViews.Block,
                             B: Int, T: Int) {
        guard config.transformsQK else { return }
        let C = config.nEmbd, NH = config.nHead
        timed(.qkTransform) {
            if let rope = ropeTable { ropeApply(dqkv, rope, B: B, T: T, C: C, NH: NH, inverse: true) }
            if config.qkNorm {
                qkNormBackward(dqkv, dqWeight: w.dqnormw!, dkWeight: w.dknormw!, a.qkv, qWeight: w.qnormw!,
                               kWeight: w.knormw!, a.qkRstd, N: B * T, C: C, NH: NH)
            }
        }
    }

    /// The final norm and the LM head on N rows: logits (N,V) from x (N,C);
    /// lnf (N,C), mean and rstd (N) are kept for backward.
    func headForward(_ logits: UnsafeMutablePointer<Float>, _ lnf: UnsafeMutablePointer<Float>,
                     _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
                     _ x: UnsafePointer<Float>, N: Int) {
        let C = config.nEmbd
        timed(.layerNorm) { normForward(lnf, mean, rstd, x, views.lnfw, views.lnfb, N: N) }
        timed(.lmHead) { matmulForward(logits, lnf, views.lmHead, nil, N: N, C: C, OC: config.vocabSize) }
    }
}
