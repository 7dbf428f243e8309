// The checks of `gpt selftest comm`: every Communicator operation on
// rank-dependent data, with exact expected results, one line per check; and
// the failure drills (--die-rank, --fail-rank, --provoke-error).
import Foundation
import GPTComm
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Output

/// Prints one line to standard output and flushes it, so lines survive a killed rank.
private func say(_ line: String) {
    print(line)
    fflush(stdout)
}

/// Prints one line to standard error.
private func complain(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

// MARK: - The checks

/// Runs the communicator checks; each rank checks its own results, rank 0 reports.
struct CommSelfTest {
    let comm: Communicator
    private(set) var failedChecks = 0
    private var checks = 0
    private var n: Int { comm.size }
    private var r: Int { comm.rank }

    init(comm: Communicator) { self.comm = comm }

    /// Runs `body` on every rank; `body` returns nil on success or what went wrong.
    /// Rank 0 prints one line for the check, naming the ranks that failed.
    private mutating func check(_ name: String, _ body: () -> String?) {
        checks += 1
        let problem = body()
        let flags = comm.allgather(UInt64(problem == nil ? 0 : 1))
        let failing = flags.indices.filter { flags[$0] != 0 }
        if let problem, !comm.isRoot { complain("FAIL (rank \(r)) \(name): \(problem)") }
        if failing.isEmpty {
            if comm.isRoot { say("ok   \(name)") }
        } else {
            failedChecks += 1
            if comm.isRoot {
                let detail = problem.map { ": rank 0: \($0)" } ?? " (details on stderr)"
                say("FAIL \(name): ranks \(failing)\(detail)")
            }
        }
    }

    mutating func run(dieRank: Int?, failRank: Int?, provokeError: Bool) throws {
        comm.resetTiming()
        let hosts = comm.allgather(comm.hostname)
        if comm.isRoot {
            var layout: [String: [Int]] = [:]
            for (rank, host) in hosts.enumerated() { layout[host, default: []].append(rank) }
            let nodes = layout.keys.sorted().map { "\($0): ranks \(layout[$0]!)" }.joined(separator: "; ")
            say("selftest comm: \(n) rank(s) on \(comm.nodeCount) node(s) (\(nodes))")
        }
        checkIdentity(hosts: hosts)
        if let dieRank { dieDuringAllreduce(dieRank) }
        if let failRank { try failDuringAllreduce(failRank) }
        if provokeError { broadcastFromMissingRoot() }
        checkFloatAllreduce()
        checkDoubleAllreduce()
        checkIntegerAllreduce()
        checkBroadcast()
        checkAllgather()
        checkNonBlocking()
        checkSlices()
        checkBarrierAndTiming()
        let anyFailed = comm.allreduce(failedChecks, op: .max)
        failedChecks = anyFailed
        if comm.isRoot {
            if anyFailed == 0 {
                say("selftest comm: all \(checks) checks passed on \(n) rank(s), \(comm.nodeCount) node(s)")
            } else {
                say("selftest comm: \(anyFailed) of \(checks) checks FAILED on \(n) rank(s)")
            }
        }
    }

    // MARK: Identity

    private mutating func checkIdentity(hosts: [String]) {
        let comm = self.comm
        check("identity: rank \(r) of \(n), ranks 0..<\(n) each once") {
            guard (0..<comm.size).contains(comm.rank) else { return "rank \(comm.rank) outside 0..<\(comm.size)" }
            let ranks = comm.allgather(UInt64(comm.rank))
            return ranks == (0..<comm.size).map(UInt64.init) ? nil : "allgather of ranks gave \(ranks)"
        }
        check("node layout: localRank/localSize agree with host names, \(comm.nodeCount) node(s)") {
            let locals = comm.allgather([UInt64(comm.localRank), UInt64(comm.localSize)])
            var byHost: [String: [Int]] = [:]
            for (rank, host) in hosts.enumerated() { byHost[host, default: []].append(rank) }
            if byHost.count != comm.nodeCount {
                return "\(byHost.count) distinct host name(s) but nodeCount is \(comm.nodeCount)"
            }
            for (host, ranks) in byHost {
                let localRanks = ranks.map { locals[$0][0] }
                let localSizes = Set(ranks.map { locals[$0][1] })
                if localRanks != (0..<ranks.count).map(UInt64.init) || localSizes != [UInt64(ranks.count)] {
                    return "on \(host) ranks \(ranks) have local ranks \(localRanks) and local sizes \(localSizes.sorted())"
                }
            }
            return nil
        }
    }

    // MARK: Failure drills

    /// Rank `victim` kills itself while every other rank waits in an allreduce.
    private func dieDuringAllreduce(_ victim: Int) -> Never {
        drill(victim, announcing: "sends itself SIGKILL", outcome: "was killed") { kill(getpid(), SIGKILL) }
    }

    /// Rank `culprit` throws (exit status 1, no finalize) while every other rank waits in an allreduce.
    private func failDuringAllreduce(_ culprit: Int) throws -> Never {
        try drill(culprit, announcing: "exits with an error", outcome: "exited") {
            throw SelfTestDrill.failedOnPurpose(rank: r)
        }
    }

    /// Rank `culprit` announces `what` and runs `act` 0.3 s after a barrier; every other rank waits in an allreduce.
    private func drill(_ culprit: Int, announcing what: String, outcome: String, _ act: () throws -> Void) rethrows -> Never {
        comm.barrier()
        if r == culprit {
            usleep(300_000)  // the others are inside the allreduce by now
            let now = String(format: "%.6f", Date().timeIntervalSince1970)
            say("selftest comm: rank \(r) \(what) at unix time \(now)")
            try act()
        }
        let count = 1 << 20
        let buf = UnsafeMutablePointer<Float>.allocate(capacity: count)
        buf.initialize(repeating: 1, count: count)
        comm.allreduce(buf, count: count)
        complain("FAIL (rank \(r)) allreduce returned although rank \(culprit) \(outcome)")
        exit(1)
    }

    /// Broadcasts from rank `size`, which MPI must reject with MPI_ERR_ROOT.
    private func broadcastFromMissingRoot() -> Never {
        var value = 7
        if comm.isRoot { say("selftest comm: broadcasting from root \(n), which does not exist") }
        comm.broadcast(&value, count: 1, root: n)
        complain("FAIL (rank \(r)) broadcast from root \(n) returned instead of failing")
        exit(1)
    }

    // MARK: Allreduce

    private mutating func checkFloatAllreduce() {
        let comm = self.comm, n = self.n, r = self.r
        let count = 1_000_003
        let triangle = n * (n + 1) / 2
        check("allreduce float sum, \(count) floats: sum over ranks of (rank+1)*k") {
            withBuffer(Float.self, count) { buf in
                for i in 0..<count { buf[i] = Float((r + 1) * (i % 7 + 1)) }
                comm.allreduce(buf, count: count, op: .sum)
                return firstMismatch(buf, count) { Float(triangle * ($0 % 7 + 1)) }
            }
        }
        check("allreduce float mean, \(count) floats: mean over ranks of rank*k") {
            withBuffer(Float.self, count) { buf in
                for i in 0..<count { buf[i] = Float(r * (i % 5 + 1)) }
                comm.allreduce(buf, count: count, op: .mean)
                return firstMismatch(buf, count) { Float(n * (n - 1) / 2 * ($0 % 5 + 1)) / Float(n) }
            }
        }
        check("allreduce float max and min, 1001 floats") {
            withBuffer(Float.self, 2 * 1001) { buf in
                for i in 0..<1001 {
                    buf[i] = Float(r) - Float(i % 3)
                    buf[1001 + i] = Float(r) - Float(i % 3)
                }
                comm.allreduce(buf, count: 1001, op: .max)
                comm.allreduce(buf + 1001, count: 1001, op: .min)
                return firstMismatch(buf, 1001) { Float(n - 1) - Float($0 % 3) }
                    ?? firstMismatch(buf + 1001, 1001) { -Float($0 % 3) }
            }
        }
        check("allreduce float scalar sum and empty buffer") {
            let total = comm.allreduce(Float(r + 1), op: .sum)
            if total != Float(triangle) { return "scalar sum \(total), expected \(triangle)" }
            var untouched: Float = 42
            comm.allreduce(&untouched, count: 0, op: .sum)
            return untouched == 42 ? nil : "count 0 changed the buffer to \(untouched)"
        }
    }

    private mutating func checkDoubleAllreduce() {
        let comm = self.comm, n = self.n, r = self.r
        let count = 100_001
        check("allreduce double sum and mean, \(count) doubles: rank+0.5") {
            withBuffer(Double.self, 2 * count) { buf in
                for i in 0..<(2 * count) { buf[i] = (Double(r) + 0.5) * Double(i % 3 + 1) }
                comm.allreduce(buf, count: count, op: .sum)
                comm.allreduce(buf + count, count: count, op: .mean)
                let sum = Double(n * (n - 1)) / 2 + Double(n) / 2
                return firstMismatch(buf, count) { sum * Double($0 % 3 + 1) }
                    ?? firstMismatch(buf + count, count) { sum * Double(($0 + count) % 3 + 1) / Double(n) }
            }
        }
        check("allreduce double scalar max and min") {
            let hi = comm.allreduce(Double(r) * 1.5, op: .max), lo = comm.allreduce(Double(r) * 1.5 - 7, op: .min)
            return hi == Double(n - 1) * 1.5 && lo == -7 ? nil : "max \(hi), min \(lo)"
        }
    }

    private mutating func checkIntegerAllreduce() {
        let comm = self.comm, n = self.n, r = self.r
        check("allreduce uint64 sum, max, min (exact above 2^53)") {
            var sum: [UInt64] = [(1 << 58) + UInt64(r), UInt64(r) * 3]
            var maxima: [UInt64] = [UInt64.max - UInt64(r), UInt64(r)]
            var minima = maxima
            comm.allreduce(&sum, count: 2, op: .sum)
            comm.allreduce(&maxima, count: 2, op: .max)
            comm.allreduce(&minima, count: 2, op: .min)
            let expectedSum: [UInt64] = [UInt64(n) << 58 + UInt64(n * (n - 1) / 2), UInt64(3 * n * (n - 1) / 2)]
            if sum != expectedSum { return "sum \(sum), expected \(expectedSum)" }
            if maxima != [UInt64.max, UInt64(n - 1)] { return "max \(maxima)" }
            if minima != [UInt64.max - UInt64(n - 1), 0] { return "min \(minima)" }
            let scalar = comm.allreduce(UInt64(r + 1), op: .sum)
            return scalar == UInt64(n * (n + 1) / 2) ? nil : "scalar sum \(scalar)"
        }
        check("allreduce int sum, max, min (negative values)") {
            var values = [-1000 * r - 1, r]
            comm.allreduce(&values, count: 2, op: .sum)
            if values != [-1000 * n * (n - 1) / 2 - n, n * (n - 1) / 2] { return "sum \(values)" }
            let lo = comm.allreduce(-r, op: .min), hi = comm.allreduce(-r, op: .max)
            return lo == -(n - 1) && hi == 0 ? nil : "min \(lo), max \(hi)"
        }
    }

    // MARK: Broadcast

    private mutating func checkBroadcast() {
        let comm = self.comm, n = self.n, r = self.r
        let last = n - 1, middle = n / 2
        let count = 250_007
        check("broadcast float buffer from rank \(last), \(count) floats") {
            withBuffer(Float.self, count) { buf in
                for i in 0..<count { buf[i] = r == last ? Float(i % 1000) * 0.25 + 3 : -1 }
                comm.broadcast(buf, count: count, root: last)
                return firstMismatch(buf, count) { Float($0 % 1000) * 0.25 + 3 }
            }
        }
        check("broadcast double, uint64 and int buffers from rank \(middle)") {
            var doubles: [Double] = r == middle ? [0.1, -2.5e300, 7] : [0, 0, 0]
            var words: [UInt64] = r == middle ? [UInt64.max, 1 << 63, 5] : [0, 0, 0]
            var ints: [Int] = r == middle ? [Int.min, -3, Int.max] : [0, 0, 0]
            comm.broadcast(&doubles, count: 3, root: middle)
            comm.broadcast(&words, count: 3, root: middle)
            comm.broadcast(&ints, count: 3, root: middle)
            if doubles != [0.1, -2.5e300, 7] { return "doubles \(doubles)" }
            if words != [UInt64.max, 1 << 63, 5] { return "uint64 \(words)" }
            if ints != [Int.min, -3, Int.max] { return "ints \(ints)" }
            let seed = comm.broadcast(r == 0 ? 1337 : r, root: 0)
            let word = comm.broadcast(UInt64(r) + 100, root: last)
            return seed == 1337 && word == UInt64(last) + 100 ? nil : "scalars \(seed), \(word)"
        }
        check("broadcast string from rank 0 and bytes from rank \(last)") {
            let text = "Ünïcödé ✓ from rank 0 of \(n)"
            let received = comm.broadcast(r == 0 ? text : "rank \(r) must not win", root: 0)
            if received != text { return "string \(received.debugDescription)" }
            let pattern = Data((0..<100_003).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
            let bytes = comm.broadcast(r == last ? pattern : Data([1, 2, 3]), root: last)
            if bytes != pattern { return "bytes: \(bytes.count) received, first differing at \(firstDifference(bytes, pattern))" }
            let empty = comm.broadcast(r == 0 ? Data() : Data([9]), root: 0)
            return empty.isEmpty ? nil : "empty data arrived as \(empty.count) bytes"
        }
    }

    // MARK: Allgather

    private mutating func checkAllgather() {
        let comm = self.comm, n = self.n, r = self.r
        check("allgather uint64, uint64 arrays, doubles, strings") {
            let squares = comm.allgather(UInt64(r * r + 7))
            if squares != (0..<n).map({ UInt64($0 * $0 + 7) }) { return "uint64 \(squares)" }
            let rows = comm.allgather([UInt64(r), UInt64(2 * r), 3])
            if rows != (0..<n).map({ [UInt64($0), UInt64(2 * $0), 3] }) { return "arrays \(rows)" }
            let halves = comm.allgather(Double(r) / 2)
            if halves != (0..<n).map({ Double($0) / 2 }) { return "doubles \(halves)" }
            let words = comm.allgather("rank-\(r)" + String(repeating: "x", count: r * 3))
            if words != (0..<n).map({ "rank-\($0)" + String(repeating: "x", count: $0 * 3) }) { return "strings \(words)" }
            return nil
        }
        check("ranksDifferingFromRoot finds the odd rank out") {
            let odd = n > 1 ? n - 1 : -1
            let differing = comm.ranksDifferingFromRoot(r == odd ? 99 : 42)
            let expected = n > 1 ? [odd] : []
            if differing != expected { return "found \(differing), expected \(expected)" }
            let agreeing = comm.ranksDifferingFromRoot(0xDEAD_BEEF)
            return agreeing.isEmpty ? nil : "identical values reported as differing on \(agreeing)"
        }
    }

    // MARK: Non-blocking allreduce

    private mutating func checkNonBlocking() {
        let comm = self.comm, n = self.n, r = self.r
        let count = 3_000_017
        let buckets = [1_000_003, 700_001, 600_000, 400_013, 300_000]  // sums to `count`
        let triangle = n * (n + 1) / 2
        check("iallreduce sum, \(count) floats in \(buckets.count) buckets with progress() between") {
            withBuffer(Float.self, count) { buf in
                for i in 0..<count { buf[i] = Float((r + 1) * (i % 11 + 1)) }
                var requests: [AllreduceRequest] = []
                var offset = 0
                var scratch: Float = 0
                for size in buckets {
                    requests.append(comm.iallreduce(buf + offset, count: size))
                    offset += size
                    // Stand-in for a layer of backward between buckets.
                    for k in 0..<200_000 { scratch += Float(k & 7) * 0.5 }
                    comm.progress()
                }
                if scratch < 0 { return "unreachable" }
                while !requests[0].test() { comm.progress() }
                for request in requests { request.wait() }
                if requests.contains(where: { !$0.isComplete }) { return "a request is not complete after wait()" }
                if comm.outstandingRequests != 0 { return "\(comm.outstandingRequests) request(s) still outstanding" }
                return firstMismatch(buf, count) { Float(triangle * ($0 % 11 + 1)) }
            }
        }
        check("iallreduce mean completed by progress() alone") {
            withBuffer(Float.self, 10_007) { buf in
                for i in 0..<10_007 { buf[i] = Float(r * 4 + i % 3) }
                let request = comm.iallreduce(buf, count: 10_007, op: .mean)
                let deadline = Date().addingTimeInterval(30)
                while comm.progress() > 0 {
                    if Date() > deadline { request.wait(); return "progress() did not finish the request within 30 s" }
                }
                if !request.isComplete { return "progress() returned 0 but the request is not complete" }
                return firstMismatch(buf, 10_007) { Float(4 * n * (n - 1) / 2 + n * ($0 % 3)) / Float(n) }
            }
        }
    }

    // MARK: Reduce-scatter and all-gather over per-rank slices

    /// The ZeRO-1 collectives over slices of unequal sizes (rank r: 1000 r + 7 floats; rank 1's empty).
    private mutating func checkSlices() {
        let comm = self.comm, n = self.n, r = self.r
        let counts = (0..<n).map { $0 == 1 ? 0 : 1000 * $0 + 7 }
        let total = counts.reduce(0, +), start = counts[..<r].reduce(0, +), mine = counts[r]
        let triangle = n * (n + 1) / 2
        check("reduceScatter mean, in place and not, and ireduceScatter sum, \(total) floats in slices of \(counts)") {
            withBuffer(Float.self, total) { send in
                for i in 0..<total { send[i] = Float((r + 1) * (i % 13 + 1)) }
                let mean = { (i: Int) in Float(triangle * ((start + i) % 13 + 1)) / Float(n) }
                let problem = withBuffer(Float.self, max(1, mine)) { recv in
                    comm.reduceScatter(send, into: recv, counts: counts, op: .mean)
                    if let bad = firstMismatch(recv, mine, mean) { return bad }
                    let request = comm.ireduceScatter(send, into: recv, counts: counts)
                    while !request.test() { comm.progress() }
                    return firstMismatch(recv, mine) { Float(triangle * ((start + $0) % 13 + 1)) }
                }
                if let problem { return problem }
                comm.reduceScatter(send, counts: counts, op: .mean)
                return firstMismatch(send + start, mine, mean).map { "in place: " + $0 }
            }
        }
        check("allgather and iallgather in place, gather to the last rank and scatter back, \(total) floats in slices") {
            withBuffer(Float.self, total) { buf in
                let owner = (0..<total).map { i in counts.indices.last { counts[..<$0].reduce(0, +) <= i }! }
                for round in 0..<2 {
                    for i in 0..<total { buf[i] = i >= start && i < start + mine ? Float(r * 100_000 + i) : -1 }
                    if round == 0 { comm.allgather(buf, counts: counts) } else { comm.iallgather(buf, counts: counts).wait() }
                    if let bad = firstMismatch(buf, total, { Float(owner[$0] * 100_000 + $0) }) { return "round \(round): " + bad }
                }
                let last = n - 1
                return withBuffer(Float.self, total) { full in
                    full.initialize(repeating: -1, count: total)
                    comm.gather(buf + start, counts: counts, into: r == last ? full : nil, root: last)
                    if r == last, let bad = firstMismatch(full, total, { Float(owner[$0] * 100_000 + $0) }) { return "gather: " + bad }
                    return withBuffer(Float.self, max(1, mine)) { local in
                        comm.scatter(r == last ? full : nil, counts: counts, into: local, root: last)
                        return firstMismatch(local, mine) { Float(r * 100_000 + start + $0) }.map { "scatter: " + $0 }
                    }
                }
            }
        }
    }

    // MARK: Barrier and timing

    private mutating func checkBarrierAndTiming() {
        let comm = self.comm, n = self.n, r = self.r
        check("barrier holds every rank until rank 0 arrives 0.3 s late; blocked time is counted") {
            comm.barrier()
            let before = comm.timing.blockingSeconds
            let t0 = Date()
            if r == 0 { usleep(300_000) }
            comm.barrier()
            let waited = Date().timeIntervalSince(t0)
            let counted = comm.timing.blockingSeconds - before
            if n > 1 && r != 0 {
                if waited < 0.25 { return "left the barrier after \(waited) s, before rank 0 arrived" }
                if counted < 0.25 { return "barrier blocked \(waited) s but timing counted \(counted) s" }
            }
            return nil
        }
        check("timing: 8 non-blocking collectives counted, exposed time = blocking + wait + progress") {
            let t = comm.timing
            if t.nonBlockingCalls != 8 { return "nonBlockingCalls \(t.nonBlockingCalls), expected 8" }
            if t.blockingCalls < 20 || t.reducedBytes <= 0 { return "blockingCalls \(t.blockingCalls), reducedBytes \(t.reducedBytes)" }
            if abs(t.exposedSeconds - (t.blockingSeconds + t.waitSeconds + t.progressSeconds)) > 1e-12 {
                return "exposedSeconds \(t.exposedSeconds) is not the sum of its parts"
            }
            return t.waitSeconds >= 0 && t.progressSeconds > 0 ? nil : "wait \(t.waitSeconds) s, progress \(t.progressSeconds) s"
        }
    }
}

// MARK: - Helpers

/// The error `--fail-rank` throws.
private enum SelfTestDrill: Error, CustomStringConvertible {
    case failedOnPurpose(rank: Int)

    var description: String {
        switch self {
        case .failedOnPurpose(let rank): return "rank \(rank) failed on purpose (--fail-rank)"
        }
    }
}

/// Runs `body` with a freshly allocated buffer of `count` elements.
private func withBuffer<T>(_ type: T.Type, _ count: Int, _ body: (UnsafeMutablePointer<T>) -> String?) -> String? {
    let buf = UnsafeMutablePointer<T>.allocate(capacity: count)
    defer { buf.deallocate() }
    return body(buf)
}

/// The first index where `buf` differs from `expected(index)`, described; nil when all match exactly.
private func firstMismatch<T: Equatable>(_ buf: UnsafeMutablePointer<T>, _ count: Int,
                                         _ expected: (Int) -> T) -> String? {
    for i in 0..<count where buf[i] != expected(i) {
        return "element \(i) is \(buf[i]), expected \(expected(i))"
    }
    return nil
}

/// The first byte offset where `a` and `b` differ (the shorter length when one is a prefix of the other).
private func firstDifference(_ a: Data, _ b: Data) -> Int {
    zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(a.count, b.count)
}
