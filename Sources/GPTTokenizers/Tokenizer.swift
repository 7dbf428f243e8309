// Tokenizers: text <-> token ids, and their serialized form stored in corpus
// and checkpoint files so either can be decoded without side files.

// MARK: - Protocol

/// Turns text into token ids and back.
public protocol Tokenizer: Sendable {
    /// Short name stored in files next to `serialized()` ("char", ...).
    var kind: String { get }
    /// Number of distinct token ids: ids are `0..<vocabSize`.
    var vocabSize: Int { get }
    /// Token ids of `text`; traps on text the tokenizer cannot represent (see `encodeChecked`).
    func encode(_ text: String) -> [Int32]
    /// Token ids of `text`, or a `TokenizerError` naming what cannot be represented.
    func encodeChecked(_ text: String) throws -> [Int32]
    /// The text of `tokens`; ids outside the vocabulary become U+FFFD.
    func decode(_ tokens: [Int32]) -> String
    /// Everything needed to rebuild the tokenizer with `makeTokenizer(kind:serialized:)`.
    func serialized() -> String
}

extension Tokenizer {
    public func encode(_ text: String) -> [Int32] {
        do {
            return try encodeChecked(text)
        } catch {
            preconditionFailure("\(error)")
        }
    }
}

/// Why text or a serialized tokenizer was rejected.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    /// `character` at Unicode-scalar `position` of the text is not in the vocabulary.
    case unknownCharacter(Unicode.Scalar, position: Int)
    /// No tokenizer of this kind is known.
    case unknownKind(String)
    /// A serialized tokenizer could not be read back.
    case invalidSerialization(kind: String, reason: String)

    public var description: String {
        switch self {
        case let .unknownCharacter(scalar, position):
            return "character \(scalarDescription(scalar)) at position \(position) is not in the tokenizer's vocabulary"
        case let .unknownKind(kind):
            return "unknown tokenizer kind '\(kind)' (known: \(knownTokenizerKinds.joined(separator: ", ")))"
        case let .invalidSerialization(kind, reason):
            return "invalid serialized '\(kind)' tokenizer: \(reason)"
        }
    }
}

/// A character for messages: printable ones quoted, all with their code point.
public func scalarDescription(_ scalar: Unicode.Scalar) -> String {
    let hex = String(scalar.value, radix: 16, uppercase: true)
    let code = "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    let printable = scalar.properties.generalCategory != .control && !scalar.properties.isWhitespace
    return printable ? "'\(Character(scalar))' (\(code))" : code
}

// MARK: - Factory

/// How to rebuild each kind of tokenizer from its serialized form; new kinds register here.
private let tokenizerFactories: [String: @Sendable (String) throws -> any Tokenizer] = [
    CharTokenizer.kindName: { try CharTokenizer(serialized: $0) },
    BPETokenizer.kindName: { try BPETokenizer(serialized: $0) },
]

/// Kinds `makeTokenizer` knows, sorted.
public var knownTokenizerKinds: [String] { tokenizerFactories.keys.sorted() }

/// Rebuilds a tokenizer from the kind and serialized form stored in a file.
public func makeTokenizer(kind: String, serialized: String) throws -> any Tokenizer {
    guard let factory = tokenizerFactories[kind] else { throw TokenizerError.unknownKind(kind) }
    return try factory(serialized)
}

// MARK: - Character-level tokenizer

/// One token per Unicode scalar, as in the "Let's build GPT" lecture.
///
/// The vocabulary is the sorted distinct characters of the training text
/// (sorted by scalar value, like Python's `sorted(set(text))`); the id of a
/// character is its index. Text is handled as Unicode scalars, not Swift
/// `Character`s, so "\r\n" is two tokens and every text round-trips exactly.
/// Serialized form: the vocabulary characters in id order, as one string.
public struct CharTokenizer: Tokenizer, Equatable {
    public static let kindName = "char"

    /// The character of each id.
    public let vocabulary: [Unicode.Scalar]
    /// Ids of ASCII characters by value, -1 where absent (the common case, without hashing).
    private let asciiIDs: [Int32]
    /// Ids of the other characters.
    private let otherIDs: [Unicode.Scalar: Int32]

    public var kind: String { Self.kindName }
    public var vocabSize: Int { vocabulary.count }

    /// A tokenizer whose id `i` is `vocabulary[i]`; the characters must be distinct.
    public init(vocabulary: [Unicode.Scalar]) {
        precondition(!vocabulary.isEmpty, "a character vocabulary needs at least one character")
        var ascii = [Int32](repeating: -1, count: 128)
        var other: [Unicode.Scalar: Int32] = [:]
        for (i, scalar) in vocabulary.enumerated() {
            if scalar.isASCII {
                precondition(ascii[Int(scalar.value)] < 0, "duplicate character \(scalarDescription(scalar)) in vocabulary")
                ascii[Int(scalar.value)] = Int32(i)
            } else {
                precondition(other.updateValue(Int32(i), forKey: scalar) == nil,
                             "duplicate character \(scalarDescription(scalar)) in vocabulary")
            }
        }
        self.vocabulary = vocabulary
        self.asciiIDs = ascii
        self.otherIDs = other
    }

    /// The tokenizer of `text`'s sorted distinct characters; `text` must not be empty.
    public init(training text: String) {
        self.init(vocabulary: Set(text.unicodeScalars).sorted { $0.value < $1.value })
    }

    /// Rebuilds a tokenizer from `serialized()`.
    public init(serialized: String) throws {
        let scalars = Array(serialized.unicodeScalars)
        guard !scalars.isEmpty else {
            throw TokenizerError.invalidSerialization(kind: Self.kindName, reason: "the vocabulary is empty")
        }
        var seen = Set<Unicode.Scalar>()
        for scalar in scalars where !seen.insert(scalar).inserted {
            throw TokenizerError.invalidSerialization(
                kind: Self.kindName, reason: "character \(scalarDescription(scalar)) appears twice in the vocabulary")
        }
        self.init(vocabulary: scalars)
    }

    public static func == (a: CharTokenizer, b: CharTokenizer) -> Bool { a.vocabulary == b.vocabulary }

    /// The id of `scalar`, or nil when it is not in the vocabulary.
    @inline(__always)
    public func id(of scalar: Unicode.Scalar) -> Int32? {
        if scalar.isASCII {
            let id = asciiIDs[Int(scalar.value)]
            return id >= 0 ? id : nil
        }
        return otherIDs[scalar]
    }

    public func encodeChecked(_ text: String) throws -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(text.utf8.count)
        for (position, scalar) in text.unicodeScalars.enumerated() {
            guard let id = id(of: scalar) else { throw TokenizerError.unknownCharacter(scalar, position: position) }
            ids.append(id)
        }
        return ids
    }

    public func decode(_ tokens: [Int32]) -> String {
        var scalars = String.UnicodeScalarView()
        for token in tokens {
            scalars.append(token >= 0 && Int(token) < vocabulary.count ? vocabulary[Int(token)] : "\u{FFFD}")
        }
        return String(scalars)
    }

    public func serialized() -> String {
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: vocabulary)
        return String(scalars)
    }
}
