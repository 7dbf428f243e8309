// MARK: - Named pointers into the flat buffers

/// Pointers to every named tensor, resolved once. Optional fields are the tensors
/// a config may lack: biases, the position table, QK-norm's weights.
struct ModelViews {
    struct Block {
        let ln1w, qkvw, attprojw, ln2w, fcw, fcprojw: UnsafeMutablePointer<Float>
        let ln1b, qkvb, attprojb, ln2b, fcb, fcprojb: UnsafeMutablePointer<Float>?
        let dln1w, dqkvw, dattprojw, dln2w, dfcw, dfcprojw: UnsafeMutablePointer<Float>
        let dln1b, dqkvb, dattprojb, dln2b, dfcb, dfcprojb: UnsafeMutablePointer<Float>?
        let qnormw, knormw, dqnormw, dknormw: UnsafeMutablePointer<Float>?
    }
    let wte, lnfw, lmHead: UnsafeMutablePointer<Float>
    let wpe, lnfb: UnsafeMutablePointer<Float>?
    let dwte, dlnfw, dlmHead: UnsafeMutablePointer<Float>
    let dwpe, dlnfb: UnsafeMutablePointer<Float>?
    let blocks: [Block]
    /// wte (+ wpe): final after the embedding backward.
    let headRange: Range<Int>
    /// ln_f (+ lm_head): final right after the LM head backward.
    let tailRange: Range<Int>

    init(config: GPTConfig, layout: ParameterLayout, params: UnsafeMutablePointer<Float>, grads: UnsafeMutablePointer<Float>) {
        func p(_ n: String) -> UnsafeMutablePointer<Float> { params + layout[n]!.offset }
        func g(_ n: String) -> UnsafeMutablePointer<Float> { grads + layout[n]!.offset }
        func po(_ n: String) -> UnsafeMutablePointer<Float>? { layout[n].map { params + $0.offset } }
        func go(_ n: String) -> UnsafeMutablePointer<Float>? { layout[n].map { grads + $0.offset } }
        wte = p("wte.weight"); wpe = po("wpe.weight"); lnfw = p("ln_f.weight"); lnfb = po("ln_f.bias")
        dwte = g("wte.weight"); dwpe = go("wpe.weight"); dlnfw = g("ln_f.weight"); dlnfb = go("ln_f.bias")
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
                         dln2b: go(h + "ln_2.bias"), dfcb: go(h + "mlp.c_fc.bias"), dfcprojb: go(h + "mlp.c_proj.bias"),
                         qnormw: po(h + "attn.q_norm.weight"), knormw: po(h + "attn.k_norm.weight"),
                         dqnormw: go(h + "attn.q_norm.weight"), dknormw: go(h + "attn.k_norm.weight"))
        }
        let embeddings = layout["wpe.weight"] ?? layout["wte.weight"]!
        headRange = 0..<(embeddings.offset + embeddings.count)
        tailRange = layout["ln_f.weight"]!.offset..<layout.count
    }
}
