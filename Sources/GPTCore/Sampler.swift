#if canImport(Glibc)
import Glibc
#else
import Darwin
#endif

/// Autoregressive sampling with a key/value cache, temperature, top-k and a seed.
///
/// The context is the last `block_size` tokens, as nanoGPT crops it. While the
/// context grows, each new token costs one cached step; once it slides, the
/// positions of every cached token change, so the cache is refilled from the
/// cropped context (exactly what sampling without a cache computes). With rotary
/// positions each cached key is rotated by its absolute position in the context,
/// which is what the full forward gives it.
public final class Sampler {
    public let model: GPT
    private let C: Int, V: Int, L: Int, maxT: Int
    private let kcache: UnsafeMutablePointer<Float>   // (L, maxT, C)
    private let vcache: UnsafeMutablePointer<Float>   // (L, maxT, C)
    private let work: UnsafeMutablePointer<Float>
    private let x, xn, proj, logitsBuf, stats: UnsafeMutablePointer<Float>
    /// One position's block activations, reused by every layer: x (C) is updated in place.
    private let block: Activations.Layer
    private var cached: [Int32] = []

    public init(model: GPT) {
        self.model = model
        let c = model.config
        C = c.nEmbd; V = c.vocabSize; L = c.nLayer; maxT = c.blockSize
        kcache = .allocate(capacity: L * maxT * C)
        vcache = .allocate(capacity: L * maxT * C)
        let C = self.C, NH = c.nHead
        let sizes = [C, C, C, V, 2, 3 * C, C, c.mlpInner, c.mlpHidden, 3 * C, 2 * NH]
        let mem = UnsafeMutablePointer<Float>.allocate(capacity: sizes.reduce(0, +))
        work = mem
        var o = 0
        func take(_ n: Int) -> UnsafeMutablePointer<Float> { defer { o += n }; return mem + o }
        x = take(C); xn = take(C); proj = take(C); logitsBuf = take(V); stats = take(2)
        let (qkv, atty, fch, fchGelu) = (take(3 * C), take(C), take(c.mlpInner), take(c.mlpHidden))
        let (qkvr, qkRstd) = (take(3 * C), take(2 * NH))
        block = Activations.Layer(ln1: xn, ln1Mean: stats, ln1Rstd: stats + 1, qkv: qkv, attLse: stats /* unused by the cached step */, atty: atty,
                                  res2: x, ln2: xn, ln2Mean: stats, ln2Rstd: stats + 1, fch: fch, fchGelu: fchGelu,
                                  res3: x, qkvr: qkvr, qkRstd: qkRstd)
    }

    deinit { kcache.deallocate(); vcache.deallocate(); work.deallocate() }

    /// Generates `maxNewTokens` tokens after `prompt` (at least one token).
    /// `temperature <= 0` picks the most likely token; `topK` keeps the k most likely.
    /// `onToken` sees each new token as it is drawn (for streaming); generation ends after `stopAt`.
    public func generate(prompt: [Int32], maxNewTokens: Int, temperature: Float = 1, topK: Int? = nil,
                         seed: UInt64 = 1337, useCache: Bool = true, stopAt: Int32? = nil,
                         onToken: ((Int32) -> Void)? = nil) -> [Int32] {
        precondition(!prompt.isEmpty, "sampling needs a prompt of at least one token")
        var rng = SplitMix64(seed: seed)
        var tokens = prompt
        cached = []
        for _ in 0..<maxNewTokens {
            let window = Array(tokens.suffix(maxT))
            let logits = useCache ? cachedLogits(window) : fullLogits(window)
            let next = Sampler.draw(logits, count: V, temperature: temperature, topK: topK, rng: &rng)
            tokens.append(next)
            onToken?(next)
            if next == stopAt { break }
        }
        return Array(tokens[prompt.count...])
    }

    /// Picks a token from logits: greedy when temperature <= 0, else softmax(logits / T) over the top k.
    public static func draw(_ logits: UnsafePointer<Float>, count V: Int, temperature: Float, topK: Int?,
                            rng: inout SplitMix64) -> Int32 {
        var best = 0
        for j in 1..<max(V, 1) where logits[j] > logits[best] { best = j }
        if temperature <= 0 { return Int32(best) }
        var cutoff = -Float.infinity
        if let k = topK, k > 0, k < V {
            var sorted = Array(UnsafeBufferPointer(start: logits, count: V))
            sorted.sort(by: >)
            cutoff = sorted[k - 1]
        }
        let mx = Double(logits[best])
        var probs = [Double](repeating: 0, count: V)
        var total = 0.0
        for j in 0..<V where logits[j] >= cutoff {
            let e = exp((Double(logits[j]) - mx) / Double(temperature))
            probs[j] = e
            total += e
        }
        let u = rng.nextDouble() * total
        var acc = 0.0
        for j in 0..<V where probs[j] > 0 {
            acc += probs[j]
            if u < acc { return Int32(j) }
        }
        return Int32(best)
    }

    // MARK: - Without cache: the model's own forward on the whole context

    private func fullLogits(_ window: [Int32]) -> UnsafePointer<Float> {
        let wasTraining = model.training
        model.training = false
        defer { model.training = wasTraining }
        window.withUnsafeBufferPointer { model.forward(inputs: $0.baseAddress!, targets: nil, B: 1, T: window.count) }
        return UnsafePointer(model.logits + (window.count - 1) * V)
    }

    // MARK: - With cache: one position at a time

    private func cachedLogits(_ window: [Int32]) -> UnsafePointer<Float> {
        if !(cached.count == window.count - 1 && cached.elementsEqual(window.prefix(cached.count))) {
            cached = []
            for tok in window.dropLast() { step(tok, computeLogits: false) }
        }
        step(window.last!, computeLogits: true)
        return UnsafePointer(logitsBuf)
    }

    /// Runs token `tok` at position `cached.count`, appending its keys and values to the cache.
    private func step(_ tok: Int32, computeLogits: Bool) {
        let pos = cached.count
        let w = model.views
        withUnsafePointer(to: tok) { encoderForward(x, $0, w.wte, w.wpe, B: 1, T: 1, C: C, firstPosition: pos) }
        for l in 0..<L {
            model.blockForward(layer: l, block, input: x, scratch: proj, N: 1,
                               attention: .cached(k: kcache + l * maxT * C, v: vcache + l * maxT * C, pos: pos),
                               dropout: .off)
        }
        cached.append(tok)
        guard computeLogits else { return }
        model.headForward(logitsBuf, xn, stats, stats + 1, x, N: 1)
    }
}
