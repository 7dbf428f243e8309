// MARK: - Sizes that are checked before anything is allocated

/// Overflow-checked products and sums of buffer sizes.
///
/// A config can ask for more floats than an `Int` counts (n_embd = 65536 with a
/// large vocabulary and batch); these return nil then, where plain arithmetic
/// would trap, so the size can be refused with a message first.
public enum CheckedSize {
    /// The product of `factors`, or nil when it overflows `Int`.
    public static func product(_ factors: [Int]) -> Int? {
        var p = 1
        for f in factors {
            let (r, overflow) = p.multipliedReportingOverflow(by: f)
            if overflow { return nil }
            p = r
        }
        return p
    }

    /// The sum of `terms`, or nil when one of them is nil or the sum overflows `Int`.
    public static func sum(_ terms: [Int?]) -> Int? {
        var s = 0
        for t in terms {
            guard let t else { return nil }
            let (r, overflow) = s.addingReportingOverflow(t)
            if overflow { return nil }
            s = r
        }
        return s
    }

    /// `a * b`, or nil when either is nil or the product overflows `Int`.
    public static func times(_ a: Int?, _ b: Int?) -> Int? {
        guard let a, let b else { return nil }
        return product([a, b])
    }
}
