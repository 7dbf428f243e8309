// The step watchdog's datagram authentication: SHA-256 and HMAC-SHA-256
// against the published test vectors, datagrams that open only under their
// own key and unaltered, and the addresses rank 0 listens on.
import Foundation
import XCTest
import GPTSupport
import GPTTrain

final class WatchdogAuthTests: XCTestCase {
    private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    /// FIPS 180-4 examples: the empty string, "abc", and a two-block message.
    func testSHA256MatchesTheStandardsVectors() {
        XCTAssertEqual(hex(sha256([])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(hex(sha256(Array("abc".utf8))), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(hex(sha256(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    /// RFC 4231 test cases 1, 2 and 6 (a key longer than a block is hashed first).
    func testHMACMatchesRFC4231() {
        XCTAssertEqual(hex(hmacSHA256(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8))),
                       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        XCTAssertEqual(hex(hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))),
                       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        XCTAssertEqual(hex(hmacSHA256(key: [UInt8](repeating: 0xaa, count: 131),
                                      message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))),
                       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    }

    /// A sealed datagram opens under its key, and not when altered, truncated, unsigned or under another key.
    func testDatagramsOpenOnlyUnderTheirKeyAndUnaltered() throws {
        let seal = ProgressSeal(key: ProgressSeal.randomKey())
        let datagram = seal.seal(rank: 3, counter: 17, step: 42, phase: "gradient allreduce")
        let opened = try XCTUnwrap(seal.open(datagram[...]))
        XCTAssertEqual([opened.rank, Int(opened.counter), opened.step], [3, 17, 42])
        XCTAssertEqual(opened.phase, "gradient allreduce")
        var altered = datagram
        altered[0] = UInt8(ascii: "1")
        XCTAssertNil(seal.open(altered[...]), "a datagram whose rank was changed")
        XCTAssertNil(seal.open(datagram.dropLast()), "a truncated datagram")
        XCTAssertNil(seal.open(Array("3 42 gradient allreduce".utf8)[...]), "the unauthenticated format")
        XCTAssertNil(seal.open([][...]), "an empty datagram")
        XCTAssertNil(seal.open([UInt8](repeating: 0x41, count: 4096)[...]), "an oversized datagram")
        XCTAssertNil(ProgressSeal(key: ProgressSeal.randomKey()).open(datagram[...]), "another job's key")
        let unsigned = seal.seal(rank: 3, counter: 1, step: 1, phase: "x")
        XCTAssertNil(ProgressSeal(key: seal.key.map { $0 ^ 1 }).open(unsigned[...]))
        // The key travels as hex in the invitation and comes back the same.
        XCTAssertEqual(try XCTUnwrap(ProgressSeal(hexKey: seal.hexKey[...])).key, seal.key)
        XCTAssertNil(ProgressSeal(hexKey: "zz"))
        XCTAssertNotEqual(ProgressSeal.randomKey(), ProgressSeal.randomKey())
    }

    /// Rank 0 listens on loopback for ranks on its host and on the routed address for the others, never 0.0.0.0.
    func testRankZeroListensOnTheAddressesThatFaceEachRank() {
        let own = "h0 10.231.0.10,192.168.1.5"
        let peers = ["h0 10.231.0.10,192.168.1.5", "h1 10.231.0.11", "h2 172.16.0.9", "h3 "]
        let route: (String) -> String? = { $0.hasPrefix("10.231.0.") ? "10.231.0.10" : nil }
        XCTAssertEqual(Watchdog.listenAddresses(own: own, peers: peers, route: route),
                       ["127.0.0.1", "10.231.0.10", "10.231.0.10", "10.231.0.10"])
        XCTAssertEqual(Watchdog.listenAddresses(own: "solo ", peers: ["solo ", "other "], route: { _ in nil }),
                       ["127.0.0.1", "127.0.0.1"])
        XCTAssertEqual(Watchdog.sourceAddress(toward: "127.0.0.1"), "127.0.0.1")
    }
}
