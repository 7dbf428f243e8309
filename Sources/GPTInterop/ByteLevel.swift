// GPT-2's byte-to-unicode spelling: byte-level BPE vocabularies (vocab.json,
// merges.txt, tokenizer.json) write each byte as one printable character, so
// a token's bytes become a string without spaces or control characters.

/// GPT-2's `bytes_to_unicode()` and its inverse.
public enum ByteLevel {
    /// The bytes in GPT-2's order: the printable ones ('!'...'~', '¡'...'¬', '®'...'ÿ'), then the rest.
    /// GPT-2's vocabulary numbers the byte tokens in this order: `gpt2Order[i]` is id `i`.
    public static let gpt2Order: [UInt8] = {
        let printable = Array(UInt8(ascii: "!")...UInt8(ascii: "~")) + Array(UInt8(0xA1)...UInt8(0xAC))
            + Array(UInt8(0xAE)...UInt8(0xFF))
        let kept = Set(printable)
        return printable + (0...255).map(UInt8.init).filter { !kept.contains($0) }
    }()

    /// The character each byte is written as: printable bytes as themselves, the others as U+0100 and up.
    public static let characters: [Unicode.Scalar] = {
        var out = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in gpt2Order {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                out[Int(b)] = Unicode.Scalar(b)
            } else {
                out[Int(b)] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return out
    }()

    private static let bytesOfCharacters: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (b, c) in characters.enumerated() { map[c] = UInt8(b) }
        return map
    }()

    /// `bytes` spelled in GPT-2's characters.
    public static func spell(_ bytes: some Sequence<UInt8>) -> String {
        var scalars = String.UnicodeScalarView()
        for b in bytes { scalars.append(characters[Int(b)]) }
        return String(scalars)
    }

    /// The bytes a GPT-2 spelling stands for, or nil when a character is not one of the 256.
    public static func bytes(of spelling: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(spelling.unicodeScalars.count)
        for s in spelling.unicodeScalars {
            guard let b = bytesOfCharacters[s] else { return nil }
            out.append(b)
        }
        return out
    }
}
