// A hostile neighbour of a training job: finds the UDP ports that rank 0's
// step watchdog listens on (through /proc) and floods them with forged,
// malformed and foreign-key progress datagrams claiming every rank reached
// every phase of the first steps, so a test can show they change nothing.
import Foundation
import GPTTrain
#if canImport(Glibc)
import Glibc
#endif

// MARK: - DatagramForger

final class DatagramForger {
    /// A UDP address rank 0 listened on.
    struct Endpoint: Equatable, CustomStringConvertible {
        let ip: String
        let port: UInt16
        var description: String { "\(ip):\(port)" }
    }

    private let marker: String
    private let ranks: Int
    private let lock = NSLock()
    private var stopped = false
    private var found: [Endpoint] = []
    private var count = 0
    private let done = DispatchSemaphore(value: 0)

    /// Targets rank 0 of the job whose command line contains `marker` (e.g. its out_dir); forges for ranks 1..<ranks.
    init(marker: String, ranks: Int) {
        self.marker = marker
        self.ranks = ranks
    }

    /// The addresses found, and the datagrams sent, so far.
    var endpoints: [Endpoint] { lock.withLock { found } }
    var sent: Int { lock.withLock { count } }

    /// Starts forging on a background thread, until `stop()`.
    func start() {
        Thread.detachNewThread { [self] in
            defer { done.signal() }
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(fd) }
            while !lock.withLock({ stopped }) {
                if let pid = Self.rankZero(marker: marker) {
                    let targets = Self.udpEndpoints(of: pid)
                    lock.withLock { for t in targets where !found.contains(t) { found.append(t) } }
                    for t in targets { send(round(), to: t, fd: fd) }
                }
                usleep(50_000)
            }
        }
    }

    /// Stops forging and waits for the thread to end.
    func stop() {
        lock.withLock { stopped = true }
        done.wait()
    }

    /// One flood: for every other rank, step 0...8 and phase, the old unauthenticated text, the new format
    /// with a zero MAC, a datagram sealed under another key, plus garbage, an empty and an oversized datagram.
    private func round() -> [[UInt8]] {
        let stranger = ProgressSeal(key: ProgressSeal.randomKey())
        var datagrams: [[UInt8]] = [[], [UInt8](repeating: 0x41, count: 2000), (0..<64).map { _ in UInt8.random(in: 0...255) }]
        for rank in 1..<ranks {
            for step in 0...8 {
                for phase in ["forward/backward", "gradient allreduce", "evaluation", "checkpoint"] {
                    datagrams.append(Array("\(rank) \(step) \(phase)".utf8))
                    datagrams.append(Array("\(rank) \(UInt64.max - 1) \(step) \(phase)".utf8) + [UInt8](repeating: 0, count: 32))
                    datagrams.append(stranger.seal(rank: rank, counter: UInt64.max - 1, step: step, phase: phase))
                }
            }
        }
        return datagrams
    }

    private func send(_ datagrams: [[UInt8]], to target: Endpoint, fd: Int32) {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = target.port.bigEndian
        guard inet_pton(AF_INET, target.ip, &a.sin_addr) == 1 else { return }
        for d in datagrams {
            let n = withUnsafePointer(to: &a) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, d, d.count, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if n >= 0 { lock.withLock { count += 1 } }
        }
    }

    // MARK: - Finding rank 0

    /// The process of rank 0 (OMPI_COMM_WORLD_RANK=0) whose command line contains `marker`.
    static func rankZero(marker: String) -> pid_t? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = pid_t(entry),
                  let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"),
                  String(decoding: cmdline, as: UTF8.self).contains(marker),
                  let environ = FileManager.default.contents(atPath: "/proc/\(pid)/environ"),
                  String(decoding: environ, as: UTF8.self).split(separator: "\0").contains("OMPI_COMM_WORLD_RANK=0")
            else { continue }
            return pid
        }
        return nil
    }

    /// The local addresses of the UDP sockets process `pid` holds (from its network namespace's /proc/net/udp).
    static func udpEndpoints(of pid: pid_t) -> [Endpoint] {
        let fdDir = "/proc/\(pid)/fd"
        let inodes = Set(((try? FileManager.default.contentsOfDirectory(atPath: fdDir)) ?? []).compactMap { fd -> String? in
            guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: fdDir + "/" + fd),
                  link.hasPrefix("socket:[") else { return nil }
            return String(link.dropFirst(8).dropLast())
        })
        guard let table = try? String(contentsOfFile: "/proc/\(pid)/net/udp", encoding: .utf8) else { return [] }
        return table.split(separator: "\n").dropFirst().compactMap { line in
            let f = line.split(separator: " ")
            guard f.count > 9, inodes.contains(String(f[9])) else { return nil }
            let local = f[1].split(separator: ":")
            guard local.count == 2, let ip = UInt32(local[0], radix: 16), let port = UInt16(local[1], radix: 16) else { return nil }
            // /proc prints the address as the host-order value of the network-order word.
            let bytes = (0..<4).map { String((ip >> (8 * UInt32($0))) & 0xff) }
            return Endpoint(ip: bytes.joined(separator: "."), port: port)
        }
    }
}
