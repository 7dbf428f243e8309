// The step watchdog's progress datagram and its authentication: a rank tells
// rank 0 "I entered phase P of step S" in one UDP datagram that carries an
// HMAC-SHA-256 under a key rank 0 drew at random when the job started and
// broadcast over MPI. Rank 0 believes only datagrams whose MAC is right and
// whose counter is newer than the last one it accepted from that rank, so a
// process that can reach the port, but was not given the key, can neither
// forge progress nor replay a rank's old datagrams.
import Foundation
import GPTSupport

// MARK: - ProgressSeal

/// Seals and opens the watchdog's progress datagrams under one job's key.
///
/// A datagram is the text `rank counter step phase` (UTF-8) followed by the
/// 32-byte HMAC-SHA-256 of that text; at most `maxBytes` long.
package struct ProgressSeal: Sendable {
    /// What an opened datagram says.
    package struct Progress: Equatable, Sendable {
        package let rank: Int
        package let counter: UInt64
        package let step: Int
        package let phase: String
    }

    package static let keyBytes = 32
    package static let macBytes = 32
    /// The longest datagram either side handles (a longer phase name is cut to fit).
    package static let maxBytes = 512

    package let key: [UInt8]

    package init(key: [UInt8]) {
        self.key = key
    }

    /// A fresh key from the system's random source.
    package static func randomKey() -> [UInt8] {
        var rng = SystemRandomNumberGenerator()
        return (0..<keyBytes).map { _ in UInt8.random(in: .min ... .max, using: &rng) }
    }

    /// The datagram saying that `rank` entered `phase` of `step`; `counter` grows with every datagram a rank sends.
    package func seal(rank: Int, counter: UInt64, step: Int, phase: String) -> [UInt8] {
        var text = Array("\(rank) \(counter) \(step) \(phase)".utf8)
        if text.count > Self.maxBytes - Self.macBytes { text = Array(text.prefix(Self.maxBytes - Self.macBytes)) }
        return text + hmacSHA256(key: key, message: text)
    }

    /// What `datagram` says, or nil when it is too short or too long, its MAC is wrong, or its text is not
    /// `rank counter step phase` with numbers where numbers belong.
    package func open(_ datagram: ArraySlice<UInt8>) -> Progress? {
        guard datagram.count > Self.macBytes, datagram.count <= Self.maxBytes else { return nil }
        let text = Array(datagram.dropLast(Self.macBytes))
        guard constantTimeEqual(hmacSHA256(key: key, message: text), datagram.suffix(Self.macBytes)) else { return nil }
        let parts = String(decoding: text, as: UTF8.self).split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false)
        guard parts.count == 4, let rank = Int(parts[0]), let counter = UInt64(parts[1]), let step = Int(parts[2]) else {
            return nil
        }
        return Progress(rank: rank, counter: counter, step: step, phase: String(parts[3]))
    }

    /// The key as hex, for the invitation rank 0 broadcasts.
    package var hexKey: String { key.map { String(format: "%02x", $0) }.joined() }

    /// The seal whose key `hex` spells, nil unless it is `keyBytes` bytes of hex.
    package init?(hexKey hex: Substring) {
        let digits = Array(hex.utf8)
        guard digits.count == 2 * Self.keyBytes else { return nil }
        var key: [UInt8] = []
        for i in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[i...i + 1], as: UTF8.self), radix: 16) else { return nil }
            key.append(byte)
        }
        self.init(key: key)
    }
}
