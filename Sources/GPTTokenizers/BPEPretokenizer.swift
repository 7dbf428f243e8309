// The pre-tokenisation split of the byte-level BPE tokenizer: text is cut
// into words before merging, so merges never cross word boundaries. It is
// GPT-2's pattern, written out by hand over Unicode scalar properties:
//
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// Bytes that are not valid UTF-8 count as one "other" character each, so
// any byte string splits, and the split of valid text is GPT-2's.

// MARK: - Character classes

/// The class of one character for the split; `\s` is Unicode White_Space, as in GPT-2's regex.
enum PretokenClass: UInt8 {
    case letter = 1, number, whitespace, other
}

/// Splits bytes into GPT-2 pre-tokens (words with their leading space, digit runs, punctuation runs, whitespace).
public struct Pretokenizer {
    /// Classes of the ASCII characters.
    private static let asciiClasses: [PretokenClass] = (0..<128).map { byte in
        classify(Unicode.Scalar(UInt8(byte)))
    }

    /// The class of `scalar`: letters are \p{L}, numbers \p{N}, whitespace White_Space, the rest other.
    static func classify(_ scalar: Unicode.Scalar) -> PretokenClass {
        let properties = scalar.properties
        if properties.isWhitespace { return .whitespace }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    private let base: UnsafePointer<UInt8>
    private let count: Int
    private var position = 0
    private let ascii: UnsafePointer<PretokenClass>

    /// A splitter over `bytes`, which must stay valid while it is used.
    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        base = bytes.baseAddress ?? UnsafePointer(bitPattern: 1)!
        count = bytes.count
        ascii = Pretokenizer.asciiClassesPointer
    }

    /// A pointer to `asciiClasses` that lives as long as the process.
    private static let asciiClassesPointer: UnsafePointer<PretokenClass> = {
        let p = UnsafeMutablePointer<PretokenClass>.allocate(capacity: 128)
        p.initialize(from: asciiClasses, count: 128)
        return UnsafePointer(p)
    }()

    /// The class and byte length of the character at `i` (< count).
    @inline(__always)
    private func character(at i: Int) -> (PretokenClass, Int) {
        let b0 = base[i]
        if b0 < 0x80 { return (ascii[Int(b0)], 1) }
        return Pretokenizer.decodeNonASCII(base, i, count)
    }

    /// Class and length of the non-ASCII character starting at `i`; an invalid byte is one "other" character.
    private static func decodeNonASCII(_ base: UnsafePointer<UInt8>, _ i: Int, _ count: Int) -> (PretokenClass, Int) {
        let b0 = UInt32(base[i])
        @inline(__always) func continuation(_ k: Int) -> UInt32? {
            guard i + k < count else { return nil }
            let b = UInt32(base[i + k])
            return b & 0xC0 == 0x80 ? b & 0x3F : nil
        }
        var value: UInt32
        var length: Int
        switch b0 {
        case 0xC2...0xDF:
            guard let c1 = continuation(1) else { return (.other, 1) }
            value = (b0 & 0x1F) << 6 | c1
            length = 2
        case 0xE0...0xEF:
            guard let c1 = continuation(1), let c2 = continuation(2) else { return (.other, 1) }
            value = (b0 & 0x0F) << 12 | c1 << 6 | c2
            length = 3
            // Overlong forms and UTF-16 surrogates are not characters.
            if value < 0x800 || (0xD800...0xDFFF).contains(value) { return (.other, 1) }
        case 0xF0...0xF4:
            guard let c1 = continuation(1), let c2 = continuation(2), let c3 = continuation(3) else { return (.other, 1) }
            value = (b0 & 0x07) << 18 | c1 << 12 | c2 << 6 | c3
            length = 4
            if value < 0x10000 || value > 0x10FFFF { return (.other, 1) }
        default:
            return (.other, 1)
        }
        return (classify(Unicode.Scalar(value)!), length)
    }

    /// The end of the run of characters of class `cls` that starts at `i`.
    @inline(__always)
    private func endOfRun(_ cls: PretokenClass, from i: Int) -> Int {
        var j = i
        while j < count {
            let (c, n) = character(at: j)
            if c != cls { break }
            j += n
        }
        return j
    }

    /// The byte range of the next pre-token, or nil at the end.
    mutating func next() -> Range<Int>? {
        let i = position
        guard i < count else { return nil }
        let end = endOfPretoken(at: i)
        position = end
        return i..<end
    }

    /// Where the pre-token starting at `i` ends: the regex's alternatives in order.
    private func endOfPretoken(at i: Int) -> Int {
        let b0 = base[i]
        // 's|'t|'re|'ve|'m|'ll|'d
        if b0 == 0x27 && i + 1 < count {
            let b1 = base[i + 1]
            if b1 == 0x73 || b1 == 0x74 || b1 == 0x6D || b1 == 0x64 { return i + 2 } // s t m d
            if i + 2 < count {
                let b2 = base[i + 2]
                if (b1 == 0x72 || b1 == 0x76) && b2 == 0x65 { return i + 3 } // re ve
                if b1 == 0x6C && b2 == 0x6C { return i + 3 } // ll
            }
        }
        //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+
        if b0 == 0x20 && i + 1 < count {
            let (c1, n1) = character(at: i + 1)
            if c1 != .whitespace { return endOfRun(c1, from: i + 1 + n1) }
        }
        let (c0, n0) = character(at: i)
        if c0 != .whitespace { return endOfRun(c0, from: i + n0) }
        // \s+(?!\S) | \s+ : a whitespace run leaves its last character to the word after it.
        var lastStart = i
        var j = i + n0
        while j < count {
            let (c, n) = character(at: j)
            if c != .whitespace { break }
            lastStart = j
            j += n
        }
        if j < count && lastStart > i { return lastStart }
        return j
    }

    // MARK: - Safe cut points

    /// The largest `cut` in `lower...upper` (0 < lower <= upper < count) where the split restarts cleanly, or nil.
    ///
    /// At such a cut the bytes before it and after it split exactly as the
    /// whole does: an ASCII non-whitespace byte followed by a space or a line
    /// feed. No pre-token spans it (a pre-token holding a non-space character
    /// never extends into following whitespace), and the whitespace run after
    /// it starts there in either case. ASCII bytes never belong to a
    /// multi-byte UTF-8 sequence, so the character decoding agrees as well.
    public static func safeCut(in bytes: UnsafeBufferPointer<UInt8>, lower: Int, upper: Int) -> Int? {
        guard lower >= 1, upper < bytes.count, lower <= upper else { return nil }
        return stride(from: upper, through: lower, by: -1).first { isSafeCut(bytes, at: $0) }
    }

    /// The smallest safe cut at or after `from` (>= 1), or nil.
    public static func firstSafeCut(in bytes: UnsafeBufferPointer<UInt8>, from: Int) -> Int? {
        let lower = max(1, from)
        guard lower < bytes.count else { return nil }
        return (lower..<bytes.count).first { isSafeCut(bytes, at: $0) }
    }

    /// Whether the split restarts cleanly at `cut` (1 <= cut < count): see `safeCut`.
    @inline(__always)
    private static func isSafeCut(_ bytes: UnsafeBufferPointer<UInt8>, at cut: Int) -> Bool {
        let b = bytes[cut]
        guard b == 0x20 || b == 0x0A else { return false }
        let before = bytes[cut - 1]
        return before > 0x20 && before < 0x7F
    }

    /// `bytes` cut at safe points into consecutive ranges of about `pieceBytes` each, covering all of it.
    ///
    /// A range is cut only when more than 1.5 `pieceBytes` remain: at the last
    /// safe cut within `pieceBytes`, else at the first one after (a huge word),
    /// else not at all. Each range pre-tokenizes as it would within the whole.
    public static func pieces(of bytes: UnsafeBufferPointer<UInt8>, pieceBytes: Int) -> [Range<Int>] {
        var ranges: [Range<Int>] = []
        var start = 0
        while start < bytes.count {
            var end = bytes.count
            let rest = UnsafeBufferPointer(rebasing: bytes[start...])
            if rest.count > pieceBytes * 3 / 2,
               let cut = safeCut(in: rest, lower: 1, upper: pieceBytes) ?? firstSafeCut(in: rest, from: pieceBytes + 1) {
                end = start + cut
            }
            ranges.append(start..<end)
            start = end
        }
        return ranges
    }
}

// MARK: - Public view

extension BPETokenizer {
    /// The GPT-2 pre-tokens of `bytes`: the words merges stay within (their concatenation is `bytes`).
    public static func pretokens(of bytes: [UInt8]) -> [[UInt8]] {
        bytes.withUnsafeBufferPointer { buffer in
            var split = Pretokenizer(buffer)
            var words: [[UInt8]] = []
            while let r = split.next() { words.append(Array(buffer[r])) }
            return words
        }
    }

    /// The GPT-2 pre-tokens of `text`.
    public static func pretokens(of text: String) -> [String] {
        pretokens(of: Array(text.utf8)).map { String(decoding: $0, as: UTF8.self) }
    }
}
