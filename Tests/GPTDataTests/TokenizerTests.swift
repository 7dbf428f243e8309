import XCTest
import GPTData

final class TokenizerTests: XCTestCase {
    func testVocabularyIsTheSortedDistinctCharacters() {
        let tokenizer = CharTokenizer(training: "hello world\n")
        XCTAssertEqual(tokenizer.serialized(), "\n dehlorw")
        XCTAssertEqual(tokenizer.vocabSize, 9)
        XCTAssertEqual(tokenizer.kind, "char")
        XCTAssertEqual(tokenizer.encode("hello"), [4, 3, 5, 5, 6])
        XCTAssertEqual(tokenizer.decode([4, 3, 5, 5, 6]), "hello")
    }

    func testScalarsNotGraphemesRoundTrip() {
        // "\r\n" is one Character but two scalars; "e\u{301}" likewise; the flag is two scalars.
        let text = "a\r\nb e\u{301} é 🇫🇷 ünïcødé\t"
        let tokenizer = CharTokenizer(training: text)
        let ids = tokenizer.encode(text)
        XCTAssertEqual(ids.count, text.unicodeScalars.count)
        XCTAssertEqual(tokenizer.decode(ids), text)
        XCTAssertEqual(tokenizer.decode(ids).unicodeScalars.elementsEqual(text.unicodeScalars), true)
        let values = tokenizer.vocabulary.map(\.value)
        XCTAssertEqual(values, values.sorted(), "sorted by scalar value")
        XCTAssertEqual(Set(values).count, values.count)
        XCTAssertEqual(tokenizer.id(of: "\t"), 0)
        XCTAssertEqual(tokenizer.id(of: "\r"), 2)
        XCTAssertNil(tokenizer.id(of: "z"))
    }

    func testUnknownCharactersAreReportedWithTheirPosition() {
        let tokenizer = CharTokenizer(training: "abc")
        XCTAssertThrowsError(try tokenizer.encodeChecked("abxc")) { error in
            XCTAssertEqual(error as? TokenizerError, .unknownCharacter("x", position: 2))
            XCTAssertEqual("\(error)", "character 'x' (U+0078) at position 2 is not in the tokenizer's vocabulary")
        }
        XCTAssertThrowsError(try tokenizer.encodeChecked("a\n")) {
            XCTAssertEqual("\($0)", "character U+000A at position 1 is not in the tokenizer's vocabulary")
        }
        XCTAssertThrowsError(try tokenizer.encodeChecked("é")) {
            XCTAssertEqual("\($0)", "character 'é' (U+00E9) at position 0 is not in the tokenizer's vocabulary")
        }
        XCTAssertEqual(try tokenizer.encodeChecked(""), [])
    }

    func testDecodingIdsOutsideTheVocabularyGivesReplacementCharacters() {
        let tokenizer = CharTokenizer(training: "ab")
        XCTAssertEqual(tokenizer.decode([0, 2, -1, 1]), "a\u{FFFD}\u{FFFD}b")
    }

    func testSerializedTokenizersRoundTripThroughTheFactory() throws {
        let original = CharTokenizer(vocabulary: ["z", "\n", "é", "a"])
        let rebuilt = try makeTokenizer(kind: original.kind, serialized: original.serialized())
        XCTAssertEqual(rebuilt as? CharTokenizer, original)
        XCTAssertEqual(rebuilt.encode("za\né"), [0, 3, 1, 2])
        XCTAssertThrowsError(try makeTokenizer(kind: "bpe2", serialized: "")) {
            XCTAssertEqual("\($0)", "unknown tokenizer kind 'bpe2' (known: bpe, char)")
        }
        XCTAssertThrowsError(try makeTokenizer(kind: "char", serialized: "")) {
            XCTAssertEqual("\($0)", "invalid serialized 'char' tokenizer: the vocabulary is empty")
        }
        XCTAssertThrowsError(try makeTokenizer(kind: "char", serialized: "abca")) {
            XCTAssertEqual("\($0)", "invalid serialized 'char' tokenizer: character 'a' (U+0061) appears twice "
                           + "in the vocabulary")
        }
    }
}
