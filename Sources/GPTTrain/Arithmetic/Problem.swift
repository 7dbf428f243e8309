import GPTCore
import GPTData

// MARK: - Operators

/// An operator of the arithmetic task; `/` is integer division giving the quotient and the remainder.
public enum ArithmeticOperator: Character, CaseIterable, Sendable {
    case add = "+", subtract = "-", multiply = "*", divide = "/"

    /// The operator's name in metrics keys (`accuracy_add`, ...).
    public var name: String {
        switch self {
        case .add: return "add"
        case .subtract: return "sub"
        case .multiply: return "mul"
        case .divide: return "div"
        }
    }
}

// MARK: - Format

/// How problems are written: the switches of the `task_*` config keys that shape the text.
public struct ArithmeticFormat: Equatable, Sendable {
    /// Answers (and the numbers of the worked steps) least significant digit first; a quotient is
    /// always written most significant digit first, the order long division produces it in.
    public var reverse = true
    /// Operands zero-padded to `padDigits` digits, answers to their longest length (fixed-length problems).
    public var pad = false
    /// The digits operands are padded to (the largest operand length of the run).
    public var padDigits = 3
    /// Worked steps before the answer (multiplication and division; + and - have none).
    public var traces = false

    public init(reverse: Bool = true, pad: Bool = false, padDigits: Int = 3, traces: Bool = false) {
        self.reverse = reverse; self.pad = pad; self.padDigits = padDigits; self.traces = traces
    }
}

/// The characters of every problem: digits, the four operators, '=', the trace separators ':' ';',
/// 'r' (remainder) and the end marker '$'; in code-point order, as a char tokenizer sorts them.
public enum ArithmeticVocabulary {
    public static let characters = "$*+-/0123456789:;=r"
    /// The end marker, after the answer.
    public static let end: Character = "$"
    public static let tokenizer = CharTokenizer(vocabulary: Array(characters.unicodeScalars))
    /// Token id of the end marker.
    public static let endToken: Int32 = 0

    /// Whether `tokenizer` is the task's (a checkpoint trained on the arithmetic task).
    public static func isArithmetic(_ tokenizer: any Tokenizer) -> Bool {
        tokenizer.kind == CharTokenizer.kindName && tokenizer.serialized() == characters
    }
}

// MARK: - Problem

/// One problem `a <op> b`, with a >= b for subtraction and b >= 1 for division.
public struct Problem: Hashable, Sendable, CustomStringConvertible {
    public let op: ArithmeticOperator
    public let a: Int, b: Int

    public init(_ a: Int, _ op: ArithmeticOperator, _ b: Int) {
        precondition(a >= 0 && b >= 0 && (op != .subtract || a >= b) && (op != .divide || b >= 1), "not a task problem")
        self.a = a; self.op = op; self.b = b
    }

    /// The operand length the problem is counted under: the longer operand's digits.
    public var digits: Int { max(decimalDigits(a), decimalDigits(b)) }

    public var description: String { "\(a)\(op.rawValue)\(b)" }

    /// Whether the problem belongs to the held-out test set: one problem in ten, by a hash of the
    /// problem alone (not of the seed), so no run with any seed ever trains on a test problem.
    public var isHeldOut: Bool {
        deriveSeed(0x7E57_5E7, parts: [Int(op.rawValue.asciiValue!), a, b]) % 10 == 0
    }

    // MARK: Text

    /// `a<op>b=`, operands zero-padded when the format pads.
    public func prompt(_ f: ArithmeticFormat) -> String {
        operand(a, f) + String(op.rawValue) + operand(b, f) + "="
    }

    /// What follows the prompt: the trace and '=' (when there are worked steps), the answer, the end marker.
    public func completion(_ f: ArithmeticFormat) -> String {
        let t = f.traces ? trace(f) : ""
        return (t.isEmpty ? "" : t + "=") + answer(f) + String(ArithmeticVocabulary.end)
    }

    /// The answer as written: `a+b`, `a-b`, `a*b` (reversed when the format reverses), or `q` "r" `r`
    /// (the quotient most significant digit first, the remainder reversed when the format reverses).
    public func answer(_ f: ArithmeticFormat) -> String {
        let n = f.padDigits
        switch op {
        case .add: return number(a + b, f, width: f.pad ? n + 1 : 0)
        case .subtract: return number(a - b, f, width: f.pad ? n : 0)
        case .multiply: return number(a * b, f, width: f.pad ? 2 * n : 0)
        case .divide:
            return padded(a / b, f.pad ? n : 0) + "r" + number(a % b, f, width: f.pad ? n : 0)
        }
    }

    /// The worked steps (empty for + and -, and for a one-digit multiplier).
    ///
    /// Multiplication: the partial products a * b_j * 10^j for the multiplier's digits b_j from the
    /// least significant, each added to the running total: `p0+p1=s1+p2=s2...+p_last` (the final sum
    /// is the answer). Division: from the first prefix of the dividend that is at least the divisor
    /// (the whole dividend when it is smaller), one step per digit, `c:q_i-p_i=r_i` (the current value
    /// c = 10 r_(i-1) + next digit, its one-digit quotient, the product p_i = q_i * b and the remainder
    /// r_i = c - p_i), joined by ';'; the quotient is the q_i in order, the remainder the last r_i.
    /// The numbers of the steps (c, p_i, r_i) are in the format's digit order.
    public func trace(_ f: ArithmeticFormat) -> String {
        switch op {
        case .add, .subtract: return ""
        case .multiply: return multiplicationTrace(f)
        case .divide:
            return divisionSteps.map { c, q, r in
                number(c, f, width: 0) + ":\(q)-" + number(q * b, f, width: 0) + "=" + number(r, f, width: 0)
            }.joined(separator: ";")
        }
    }

    private func multiplicationTrace(_ f: ArithmeticFormat) -> String {
        let multiplier = Array(operand(b, f).reversed()).map { Int($0.asciiValue! - 48) }
        guard multiplier.count > 1 else { return "" }
        var text = "", total = 0
        for (j, digit) in multiplier.enumerated() {
            let partial = String(a * digit) + String(repeating: "0", count: j)
            total += a * digit * power10(j)
            text += (j == 0 ? "" : "+") + (f.reverse ? String(partial.reversed()) : partial)
            if j > 0 && j < multiplier.count - 1 { text += "=" + number(total, f, width: 0) }
        }
        return text
    }

    /// The steps of the long division a / b: (current value, quotient digit, remainder); one step
    /// (a, 0, a) when a < b.
    private var divisionSteps: [(c: Int, q: Int, r: Int)] {
        var steps: [(c: Int, q: Int, r: Int)] = []
        var r = 0
        for ch in String(a) {
            let c = 10 * r + Int(ch.asciiValue! - 48)
            r = c % b
            if steps.isEmpty && c < b { continue }
            steps.append((c, c / b, r))
        }
        return steps.isEmpty ? [(a, 0, a)] : steps
    }

    private func operand(_ x: Int, _ f: ArithmeticFormat) -> String { padded(x, f.pad ? f.padDigits : 0) }

    /// `x` in decimal, zero-padded to `width`, reversed when the format reverses.
    private func number(_ x: Int, _ f: ArithmeticFormat, width: Int) -> String {
        let s = padded(x, width)
        return f.reverse ? String(s.reversed()) : s
    }
}

/// `x` in decimal with leading zeros up to `width` digits.
func padded(_ x: Int, _ width: Int) -> String {
    let s = String(x)
    return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
}

/// Decimal digits of x >= 0 (1 for 0).
func decimalDigits(_ x: Int) -> Int { String(x).count }

func power10(_ n: Int) -> Int { (0..<n).reduce(1) { r, _ in r * 10 } }
