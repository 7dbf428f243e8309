import GPTComm
import GPTCore

/// Every rank holds the same parameters after every step: checked, not assumed.
///
/// Each rank hashes the exact bits of its parameters; the hashes are gathered and compared.
enum ReplicaCheck {
    /// Every rank's parameter checksum (a collective).
    static func checksums(_ model: GPT, comm: Communicator) -> [UInt64] {
        comm.allgather(parameterChecksum(model.params, count: model.parameterCount))
    }

    /// Stops the run when a rank's checksum differs from rank 0's.
    static func requireIdentical(_ sums: [UInt64], step: Int) throws {
        let bad = sums.indices.filter { sums[$0] != sums[0] }
        if !bad.isEmpty {
            throw TrainError("replicas diverged at step \(step): ranks \(bad.map(String.init).joined(separator: ", ")) hold "
                + "parameters different from rank 0's; this is a bug or a faulty node, restart from the last checkpoint")
        }
    }
}

/// A 64-bit checksum of a float buffer's exact bits (order-sensitive).
public func parameterChecksum(_ p: UnsafePointer<Float>, count: Int) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15
    var i = 0
    p.withMemoryRebound(to: UInt32.self, capacity: count) { bits in
        while i < count {
            h = mix64(h ^ (UInt64(bits[i]) &+ UInt64(i) << 32))
            i += 1
        }
    }
    return h
}
