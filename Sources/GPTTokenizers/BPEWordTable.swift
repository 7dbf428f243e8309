// A hash table keyed by short byte strings (words), with the keys packed in
// one arena: the word -> ids cache of the BPE encoder and the word counts
// of BPE training, without an allocation per word.

// MARK: - Hashing

/// A 64-bit hash of `count` bytes at `bytes`, eight bytes at a time.
@inline(__always)
func hashBytes(_ bytes: UnsafePointer<UInt8>, _ count: Int) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ (UInt64(truncatingIfNeeded: count) &* 0xFF51_AFD7_ED55_8CCD)
    var i = 0
    let raw = UnsafeRawPointer(bytes)
    while i + 8 <= count {
        h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 31
        i += 8
    }
    if i < count {
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < count {
            tail |= UInt64(bytes[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
    }
    h ^= h >> 29
    h = h &* 0xBF58_476D_1CE4_E5B9
    return h ^ (h >> 32)
}

// MARK: - Table

/// A set of distinct byte strings, each given an entry index `0..<count` in insertion order.
///
/// Callers keep per-entry values in arrays of their own, indexed by entry.
/// Open addressing with linear probing; the table doubles at 50% load.
struct WordTable {
    /// Entry index per slot, -1 when empty; the slot count is a power of two.
    private var slots: [Int32]
    private var mask: Int
    private var hashes: [UInt64] = []
    private var keyOffsets: [Int] = [0]
    /// The keys, back to back.
    private var keyBytes: [UInt8] = []

    init(capacity: Int = 1024) {
        var n = 16
        while n < capacity * 2 { n <<= 1 }
        slots = [Int32](repeating: -1, count: n)
        mask = n - 1
    }

    /// Number of entries.
    var count: Int { hashes.count }

    /// Bytes held by the keys.
    var keyByteCount: Int { keyBytes.count }

    /// The entry of the key `count` bytes at `bytes` with hash `hash`, or nil.
    @inline(__always)
    func find(_ bytes: UnsafePointer<UInt8>, _ count: Int, hash: UInt64) -> Int? {
        var slot = Int(truncatingIfNeeded: hash) & mask
        return slots.withUnsafeBufferPointer { slots in
            hashes.withUnsafeBufferPointer { hashes in
                keyBytes.withUnsafeBufferPointer { keys in
                    keyOffsets.withUnsafeBufferPointer { offsets in
                        while true {
                            let e = Int(slots[slot])
                            if e < 0 { return nil }
                            if hashes[e] == hash {
                                let start = offsets[e]
                                if offsets[e + 1] - start == count
                                    && (count == 0 || memcmp(keys.baseAddress! + start, bytes, count) == 0) {
                                    return e
                                }
                            }
                            slot = (slot + 1) & mask
                        }
                    }
                }
            }
        }
    }

    /// Adds the key (which must not be present) and returns its entry index.
    @discardableResult
    mutating func insert(_ bytes: UnsafePointer<UInt8>, _ count: Int, hash: UInt64) -> Int {
        if (hashes.count + 1) * 2 > slots.count { grow() }
        let e = hashes.count
        hashes.append(hash)
        keyBytes.append(contentsOf: UnsafeBufferPointer(start: bytes, count: count))
        keyOffsets.append(keyBytes.count)
        place(e, hash: hash)
        return e
    }

    /// The key of entry `e`.
    func withKey<R>(_ e: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try keyBytes.withUnsafeBufferPointer { keys in
            try body(UnsafeBufferPointer(rebasing: keys[keyOffsets[e]..<keyOffsets[e + 1]]))
        }
    }

    /// The hash of entry `e`'s key.
    func hash(of e: Int) -> UInt64 { hashes[e] }

    /// Removes every entry, keeping the allocated space.
    mutating func removeAll() {
        for i in slots.indices { slots[i] = -1 }
        hashes.removeAll(keepingCapacity: true)
        keyOffsets.removeAll(keepingCapacity: true)
        keyOffsets.append(0)
        keyBytes.removeAll(keepingCapacity: true)
    }

    private mutating func place(_ e: Int, hash: UInt64) {
        var slot = Int(truncatingIfNeeded: hash) & mask
        while slots[slot] >= 0 { slot = (slot + 1) & mask }
        slots[slot] = Int32(e)
    }

    private mutating func grow() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        mask = slots.count - 1
        for e in hashes.indices { place(e, hash: hashes[e]) }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
