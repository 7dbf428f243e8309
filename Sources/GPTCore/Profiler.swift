import GPTSupport

/// Wall-clock time per kind of layer, summed over forward and backward.
public final class Profiler {
    public enum Kind: Int, CaseIterable, Sendable {
        case embedding, layerNorm, matmul, attention, gelu, residual, lmHead, loss, optimizer

        public var name: String {
            switch self {
            case .embedding: "embedding"
            case .layerNorm: "layernorm"
            case .matmul: "matmul (linear)"
            case .attention: "attention"
            case .gelu: "gelu"
            case .residual: "residual+dropout"
            case .lmHead: "lm_head"
            case .loss: "cross-entropy"
            case .optimizer: "adamw+clip"
            }
        }
    }

    public private(set) var seconds = [Double](repeating: 0, count: Kind.allCases.count)
    private var started = 0.0

    public init() {}

    @inline(__always) public func begin(_ kind: Kind) { started = monotonicSeconds() }

    @inline(__always) public func end(_ kind: Kind) {
        seconds[kind.rawValue] += monotonicSeconds() - started
    }

    public func reset() { seconds = [Double](repeating: 0, count: Kind.allCases.count) }
}
