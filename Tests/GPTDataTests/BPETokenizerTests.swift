import XCTest
import TestSupport
import GPTData

final class BPETokenizerTests: XCTestCase {
    /// A tokenizer with an id table (GPT-2's numbering of the bytes) gives the table's ids, decodes
    /// them, keeps the table through its serialized form (version 2), and refuses a table that is not
    /// a numbering of its tokens.
    func testIDTableRenumbersEncodingAndDecoding() throws {
        let plain = try BPETrainer.train(text: Self.sampleText + Self.sampleText, vocabSize: 300)
        let n = plain.vocabSize
        let ids = (0..<Int32(n)).map { Int32(n) - 1 - $0 }  // every id reversed
        let renumbered = try BPETokenizer(merges: plain.merges, specialTokens: plain.specialTokens, ids: ids)
        let text = Self.sampleText + "<|endoftext|>é"
        let a = try plain.encodeChecked(text), b = try renumbered.encodeChecked(text)
        XCTAssertEqual(b, a.map { ids[Int($0)] })
        XCTAssertEqual(renumbered.encode(bytes: Array(text.utf8), threads: 3), plain.encode(bytes: Array(text.utf8)).map { ids[Int($0)] })
        XCTAssertEqual(renumbered.decode(b), text)
        XCTAssertEqual(renumbered.endOfTextID, ids[Int(plain.endOfTextID)])
        XCTAssertEqual(renumbered.bytes(of: ids[300 - 2]), plain.bytes(of: 300 - 2))
        let serialized = renumbered.serialized()
        XCTAssertTrue(serialized.hasPrefix("{\"ids\":[\(n - 1),") && serialized.hasSuffix("\"version\":2}"), serialized)
        XCTAssertEqual(try BPETokenizer(serialized: serialized), renumbered)
        XCTAssertNotEqual(renumbered, plain)
        XCTAssertEqual(try BPETokenizer(merges: plain.merges, specialTokens: plain.specialTokens,
                                        ids: (0..<Int32(n)).map { $0 }).serialized(), plain.serialized(),
                       "an identity table is no table")
        XCTAssertThrowsError(try BPETokenizer(merges: plain.merges, specialTokens: plain.specialTokens,
                                              ids: [Int32](repeating: 0, count: n))) {
            XCTAssertTrue("\($0)".contains("each id"), "\($0)")
        }
    }

    /// A small fixed text with letters, digits, punctuation, whitespace runs and non-ASCII.
    private static let sampleText = """
        First Citizen:
        Before we proceed any further, hear me speak.

        All:
        Speak, speak.  They'll say it's 1,234.50 dollars -- don't they?\tYes!
        Ünïcödé wörds, 日本語のテキスト, emoji 🙂🙂 and “quotes” …
        """

    /// A tokenizer trained on the sample text repeated with variations.
    private static let trained: BPETokenizer = {
        var words = WordCounts()
        for i in 0..<20 { words.add(sampleText + " \(i) " + String(repeating: "ab", count: i)) }
        return try! BPETrainer.train(words: words, vocabSize: 400)
    }()

    /// The GPT-2 reference algorithm, written independently: per pre-token, merge the lowest-ranked pair everywhere.
    private func referenceEncode(_ bytes: [UInt8], _ tok: BPETokenizer) -> [Int32] {
        var ranks: [BPEMerge: Int] = [:]
        for (i, m) in tok.merges.enumerated() { ranks[m] = i }
        var out: [Int32] = []
        for word in BPETokenizer.pretokens(of: bytes) {
            var parts = word.map { Int32($0) }
            while parts.count > 1 {
                let candidates = (0..<(parts.count - 1)).compactMap { ranks[BPEMerge(parts[$0], parts[$0 + 1])] }
                guard let best = candidates.min() else { break }
                let m = tok.merges[best]
                var merged: [Int32] = []
                var k = 0
                while k < parts.count {
                    if k + 1 < parts.count && parts[k] == m.left && parts[k + 1] == m.right {
                        merged.append(Int32(256 + best))
                        k += 2
                    } else {
                        merged.append(parts[k])
                        k += 1
                    }
                }
                parts = merged
            }
            out += parts
        }
        return out
    }

    // MARK: - Pre-tokenisation

    func testPretokensFollowGPT2Pattern() {
        // Expected splits are those of GPT-2's regex (Python `regex` module), written out.
        let cases: [(String, [String])] = [
            ("Hello world", ["Hello", " world"]),
            ("I'm sure they'll say we've won, don't you?",
             ["I", "'m", " sure", " they", "'ll", " say", " we", "'ve", " won", ",", " don", "'t", " you", "?"]),
            ("  two leading", [" ", " two", " leading"]),
            ("a  b", ["a", " ", " b"]),
            ("\n\nHello", ["\n", "\n", "Hello"]),
            ("x\t\ty", ["x", "\t", "\t", "y"]),
            ("end   ", ["end", "   "]),
            ("abc123def 4.5 $3.50!!", ["abc", "123", "def", " 4", ".", "5", " $", "3", ".", "50", "!!"]),
            ("héllo wörld ½ Ⅻ", ["héllo", " wörld", " ½", " Ⅻ"]),
            ("日本語 テキスト。", ["日本語", " テキスト", "。"]),
            ("don''t 'S 'sup", ["don", "''", "t", " '", "S", " '", "sup"]),
            ("Hi.\nThere \n x", ["Hi", ".", "\n", "There", " \n", " x"]),
            ("\u{A0}nbsp\u{3000}ideo", ["\u{A0}", "nbsp", "\u{3000}", "ideo"]),
            ("a'b", ["a", "'", "b"]),
            ("", []),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(BPETokenizer.pretokens(of: text), expected, "split of \(text.debugDescription)")
        }
    }

    func testPretokensOfInvalidUTF8AreOtherCharacters() {
        // Each invalid byte is one "other" character: it joins punctuation runs, never letters.
        let bytes: [UInt8] = [0x61, 0x62, 0xFF, 0xC3, 0x20, 0x63, 0xE2, 0x82, 0x20, 0x21, 0xC3, 0xA9]
        XCTAssertEqual(BPETokenizer.pretokens(of: bytes),
                       [[0x61, 0x62], [0xFF, 0xC3], [0x20, 0x63], [0xE2, 0x82], [0x20, 0x21], [0xC3, 0xA9]])
    }

    // MARK: - Training

    func testMergesOfATinyTextMatchAHandWorkedExample() throws {
        // Words: "hug" x1, " hug" x2, " pug", " pun", " bun", " hugs" (GPT-2 keeps the leading space).
        //  1. (u,g) occurs 5 times                         -> 256 "ug"
        //  2. (h,ug) 4                                     -> 257 "hug"
        //  3. (' ',hug) 3                                  -> 258 " hug"
        //  4. (' ',p) and (u,n) both 2: the smaller ids win -> 259 " p"
        //  5. (u,n) 2                                      -> 260 "un"
        //  then every pair occurs once: training stops short of the asked-for 300 ids.
        let text = "hug hug hug pug pun bun hugs"
        let tok = try BPETrainer.train(text: text, vocabSize: 300)
        let u: Int32 = 117, g: Int32 = 103, h: Int32 = 104, p: Int32 = 112, n: Int32 = 110, space: Int32 = 32
        XCTAssertEqual(tok.merges, [BPEMerge(u, g), BPEMerge(h, 256), BPEMerge(space, 257), BPEMerge(space, p),
                                    BPEMerge(u, n)])
        XCTAssertEqual(tok.vocabSize, 256 + 5 + 1)
        XCTAssertEqual(tok.endOfTextID, 261)
        XCTAssertEqual(tok.bytes(of: 258), Array(" hug".utf8))
        XCTAssertEqual(tok.encode("hugs pun"), [257, 115, 259, 260])
        XCTAssertEqual(tok.encode(" hug hug"), [258, 258])

        // A vocabulary of 260 ids stops after three merges.
        let small = try BPETrainer.train(text: text, vocabSize: 260)
        XCTAssertEqual(small.merges, Array(tok.merges.prefix(3)))
        XCTAssertEqual(small.vocabSize, 260)
        XCTAssertEqual(small.encode("hugs pun"), [257, 115, space, p, u, n])
    }

    func testTrainingRejectsAVocabularyWithoutRoomForTheBytes() {
        XCTAssertThrowsError(try BPETrainer.train(text: "abc", vocabSize: 256)) { error in
            XCTAssertTrue("\(error)".contains("at least 257"), "\(error)")
        }
        XCTAssertEqual(try BPETrainer.train(text: "abab abab", vocabSize: 257).merges, [])
    }

    func testWordCountsAddUp() {
        var a = WordCounts()
        a.add("the cat and the hat")
        var b = WordCounts()
        b.add(" the end")
        a.add(b)
        XCTAssertEqual(a.count(of: Array(" the".utf8)), 2)
        XCTAssertEqual(a.count(of: Array("the".utf8)), 1)
        XCTAssertEqual(a.count(of: Array(" dog".utf8)), 0)
        XCTAssertEqual(a.totalWords, 7)
        XCTAssertEqual(a.distinctWords, 6)
        XCTAssertEqual(a.textBytes, 19 + 8)
    }

    // MARK: - Round trips

    func testRandomBytesRoundTripIncludingInvalidUTF8() {
        let tok = Self.trained
        var seeded = SplitMix(seed: 42)
        for length in [0, 1, 2, 3, 7, 100, 1000, 20_000] {
            for _ in 0..<5 {
                // Mix random bytes (mostly invalid UTF-8) with runs of text and long repeats.
                var bytes: [UInt8] = []
                while bytes.count < length {
                    switch seeded.next() % 4 {
                    case 0: bytes += (0..<(1 + Int(seeded.next() % 16))).map { _ in UInt8(truncatingIfNeeded: seeded.next()) }
                    case 1: bytes += Array(Self.sampleText.utf8.prefix(Int(seeded.next() % 80)))
                    case 2: bytes += [UInt8](repeating: UInt8(truncatingIfNeeded: seeded.next() % 3 == 0 ? 0x20 : 0x61),
                                             count: Int(seeded.next() % 300))
                    default: bytes += [0xF0, 0x9F, 0x99, 0x82, 0xC3, 0xA9, 0xE2, 0x80][..<Int(1 + seeded.next() % 8)]
                    }
                }
                bytes = Array(bytes.prefix(length))
                let ids = tok.encode(bytes: bytes)
                XCTAssertTrue(ids.allSatisfy { $0 >= 0 && $0 < Int32(tok.vocabSize) && $0 != tok.endOfTextID })
                XCTAssertEqual(tok.decodeBytes(ids), bytes, "round trip of \(length) bytes")
                XCTAssertEqual(ids, referenceEncode(bytes, tok), "encoding agrees with the reference algorithm")
            }
        }
    }

    func testRealTextRoundTripsAndCompresses() throws {
        let tok = Self.trained
        let ids = try tok.encodeChecked(Self.sampleText)
        XCTAssertEqual(tok.decode(ids), Self.sampleText)
        XCTAssertLessThan(ids.count, Self.sampleText.utf8.count * 2 / 3, "merges shorten the text")
        XCTAssertEqual(ids, referenceEncode(Array(Self.sampleText.utf8), tok))

        let shakespeare = try String(contentsOfFile: try tinyShakespearePath(), encoding: .utf8)
        let bytes = Array(shakespeare.utf8)
        let words = try BPETrainer.train(text: String(shakespeare.prefix(200_000)), vocabSize: 1024)
        let encoded = words.encode(bytes: bytes, threads: 2)
        XCTAssertEqual(words.decodeBytes(encoded), bytes)
        XCTAssertEqual(words.decode(encoded), shakespeare)
        XCTAssertLessThan(Double(encoded.count), Double(bytes.count) / 2, "a 1024-token vocabulary compresses English")
        let head = Array(bytes.prefix(20_000))
        XCTAssertEqual(words.encode(bytes: head), referenceEncode(head, words))
    }

    func testThreadsAndPiecesGiveIdenticalOutput() throws {
        // About 3 MB: long enough to be cut into many pieces for the threads.
        var text: [UInt8] = []
        var rng = SplitMix(seed: 7)
        while text.count < 3_000_000 {
            text += Array(Self.sampleText.utf8)
            text += Array(" \(rng.next() % 100_000) ".utf8)
            if rng.next() % 50 == 0 { text += [UInt8](repeating: 0x2D, count: Int(rng.next() % 5000)) } // "-----"
            if rng.next() % 70 == 0 { text += [0xFF, 0xFE, 0x20, 0x0A] }
        }
        let tok = Self.trained
        let one = tok.encode(bytes: text, threads: 1)
        for threads in [2, 3, 8] {
            XCTAssertEqual(tok.encode(bytes: text, threads: threads), one, "\(threads) threads")
        }
        // One encoder reused over pieces (warm caches) gives the same again.
        let encoder = BPEEncoder(tokenizer: tok, threads: 2)
        let half = text.count / 2
        let cut = text[..<half].lastIndex(of: 0x0A).map { $0 } ?? half
        let parts = text.withUnsafeBufferPointer { all in
            encoder.encode(pieces: [UnsafeBufferPointer(rebasing: all[..<cut]), UnsafeBufferPointer(rebasing: all[cut...])])
        }
        XCTAssertEqual(tok.decodeBytes(parts[0] + parts[1]), text)
        XCTAssertEqual(tok.decodeBytes(one), text)
    }

    // MARK: - Special tokens

    func testEndOfTextIsTheLastIdAndOnlyPromptsRecogniseIt() throws {
        let tok = Self.trained
        let eot = tok.endOfTextID
        XCTAssertEqual(Int(eot), tok.vocabSize - 1)
        XCTAssertEqual(tok.specialTokens, ["<|endoftext|>"])
        XCTAssertEqual(tok.decode([eot]), "<|endoftext|>")
        XCTAssertEqual(try tok.encodeChecked("<|endoftext|>"), [eot])
        let prompt = try tok.encodeChecked("All:<|endoftext|>First<|endoftext|><|endoftext|>")
        XCTAssertEqual(prompt, tok.encode("All:") + [eot] + tok.encode("First") + [eot, eot])
        // Corpus text never turns into the special id: a document cannot forge a boundary.
        let ordinary = tok.encode(bytes: Array("All:<|endoftext|>First".utf8))
        XCTAssertFalse(ordinary.contains(eot))
        XCTAssertEqual(tok.decode(ordinary), "All:<|endoftext|>First")
        // Unknown ids decode to U+FFFD.
        XCTAssertEqual(tok.decode([65, -1, Int32(tok.vocabSize), 66]), "A\u{FFFD}\u{FFFD}B")
        XCTAssertNil(tok.bytes(of: Int32(tok.vocabSize)))
    }

    // MARK: - Serialized form

    func testSerializedFormRoundTrips() throws {
        let tok = Self.trained
        let json = tok.serialized()
        XCTAssertTrue(json.hasPrefix("{\"merges\":[["), json)
        XCTAssertTrue(json.hasSuffix("\"pattern\":\"gpt2\",\"special_tokens\":[\"<|endoftext|>\"],\"version\":1}"), json)
        let back = try makeTokenizer(kind: "bpe", serialized: json)
        XCTAssertEqual(back.kind, "bpe")
        XCTAssertEqual(back.vocabSize, tok.vocabSize)
        XCTAssertEqual(back as? BPETokenizer, tok)
        XCTAssertEqual(back.serialized(), json, "the serialized form is canonical")
        XCTAssertEqual(back.encode(Self.sampleText), tok.encode(Self.sampleText))
        XCTAssertTrue(knownTokenizerKinds.contains("bpe"))

        // Whitespace and key order do not matter on reading.
        let spaced = try BPETokenizer(serialized: """
            { "version": 1, "special_tokens": ["<|endoftext|>"], "pattern": "gpt2",
              "merges": [[117, 103], [104, 256]] }
            """)
        XCTAssertEqual(spaced.merges, [BPEMerge(117, 103), BPEMerge(104, 256)])
        XCTAssertEqual(spaced.encode("hug"), [257])
    }

    func testBadSerializedFormsAreRejectedWithTheReason() {
        let cases: [(String, String)] = [
            ("not json", "not a JSON object"),
            (#"{"version":2,"pattern":"gpt2","special_tokens":["<|endoftext|>"],"merges":[]}"#, "version 2"),
            (#"{"version":1,"pattern":"cl100k","special_tokens":["<|endoftext|>"],"merges":[]}"#, "pattern"),
            (#"{"version":1,"pattern":"gpt2","special_tokens":[],"merges":[]}"#, "<|endoftext|>"),
            (#"{"version":1,"pattern":"gpt2","special_tokens":["<|endoftext|>"],"merges":[[1,256]]}"#, "earlier merge"),
            (#"{"version":1,"pattern":"gpt2","special_tokens":["<|endoftext|>"],"merges":[[1,2],[1,2]]}"#, "repeats"),
            (#"{"version":1,"pattern":"gpt2","special_tokens":["<|endoftext|>"],"merges":[[1]]}"#, "merge 0"),
            (#"{"version":1,"pattern":"gpt2","special_tokens":["<|endoftext|>","<|endoftext|>"],"merges":[]}"#, "twice"),
        ]
        for (json, reason) in cases {
            XCTAssertThrowsError(try makeTokenizer(kind: "bpe", serialized: json), json) { error in
                let message = "\(error)"
                XCTAssertTrue(message.hasPrefix("invalid serialized 'bpe' tokenizer: "), message)
                XCTAssertTrue(message.contains(reason), "\(message) should mention \(reason)")
            }
        }
    }
}

/// A small seeded generator, so the random tests are reproducible.
struct SplitMix: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
