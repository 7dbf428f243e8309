// Wiring the step watchdog when a job starts: rank 0 listens only on the
// addresses the other ranks reach it by (loopback for ranks on its own host,
// the interface that routes to a rank on another host; never INADDR_ANY),
// and broadcasts over MPI an invitation holding the job's random key, the
// port, and for every rank the address to send to. Every other rank connects
// one UDP socket to its address, so the kernel hands it nothing from anyone
// else (and nothing reads that socket anyway).
import Foundation
import GPTComm
#if canImport(Glibc)
import Glibc
#endif

// MARK: - Wiring

extension Watchdog {
    /// Connects the ranks' watchdogs; collective (every rank calls it once, before `start()`).
    ///
    /// Throws on every rank alike when rank 0 cannot bind its sockets or the invitation is unreadable.
    public func wire(over comm: Communicator) throws {
        guard size > 1 else { return }
        let hosts = comm.allgather(Self.hostIdentity())
        var invitation = ""
        if rank == 0 {
            do { invitation = try listen(peers: hosts) } catch { invitation = "error \(error)" }
        }
        invitation = comm.broadcast(invitation, root: 0)
        let parts = invitation.split(separator: " ", maxSplits: 2)
        if parts.first == "error" { throw TrainError(invitation.dropFirst(6).description, everyRank: true) }
        guard parts.count == 3, let key = ProgressSeal(hexKey: parts[0]), let port = UInt16(parts[1]) else {
            throw TrainError("the step watchdog's invitation from rank 0 is unreadable: \(invitation.prefix(80))",
                             everyRank: true)
        }
        seal = key
        guard rank != 0 else { return }
        let targets = parts[2].split(separator: ",")
        guard targets.count == size - 1 else {
            throw TrainError("the step watchdog's invitation names \(targets.count) ranks, not \(size - 1)", everyRank: true)
        }
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0, var address = Self.socketAddress(String(targets[rank - 1]), port: port),
              Self.call(fd, &address, { Glibc.connect($0, $1, $2) }) == 0 else {
            if fd >= 0 { close(fd) }
            throw TrainError("rank \(rank): cannot open the step watchdog's socket to \(targets[rank - 1]):\(port): "
                + String(cString: strerror(errno)), everyRank: true)
        }
        sockets = [fd]
    }

    /// Rank 0: binds one port on every address the other ranks will send to; returns the invitation.
    private func listen(peers: [String]) throws -> String {
        let targets = Self.listenAddresses(own: peers[0], peers: Array(peers.dropFirst()))
        let unique = Array(Set(targets)).sorted()
        let (fds, port) = try Self.bindAll(unique)
        sockets = fds
        seal = ProgressSeal(key: ProgressSeal.randomKey())
        for fd in fds { monitor.watch(socket: fd) { [weak self] in self?.receive(fd) } }
        return "\(seal!.hexKey) \(port) " + targets.joined(separator: ",")
    }

    // MARK: - Addresses

    /// "hostname addr,addr,..." of this process: its host name and its non-loopback IPv4 addresses.
    static func hostIdentity() -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        return String(cString: name) + " " + localIPv4Addresses().filter { !$0.hasPrefix("127.") }.joined(separator: ",")
    }

    /// Rank 0's address each other rank should send to, given every rank's `hostIdentity()`: loopback for a
    /// rank on rank 0's host (same name, same addresses), else the address of rank 0's that `route` says
    /// it would send from to reach one of the rank's addresses, else rank 0's first address.
    package static func listenAddresses(own: String, peers: [String],
                                route: (String) -> String? = sourceAddress(toward:)) -> [String] {
        func addresses(_ identity: String) -> [String] {
            let parts = identity.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
            return parts.count == 2 ? parts[1].split(separator: ",").map(String.init) : []
        }
        let mine = addresses(own)
        return peers.map { peer in
            if peer == own { return "127.0.0.1" }
            for address in addresses(peer) {
                if let source = route(address), mine.contains(source) { return source }
            }
            return mine.first ?? "127.0.0.1"
        }
    }

    /// The local address the kernel would send from to reach `ip` (nil when there is no route).
    package static func sourceAddress(toward ip: String) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard var remote = socketAddress(ip, port: 9), call(fd, &remote, { Glibc.connect($0, $1, $2) }) == 0 else { return nil }
        var local = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        guard rc == 0 else { return nil }
        var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        return inet_ntop(AF_INET, &local.sin_addr, &text, socklen_t(text.count)) == nil ? nil : String(cString: text)
    }

    /// Non-loopback IPv4 addresses of this host, loopback last.
    public static func localIPv4Addresses() -> [String] {
        var result: [String] = [], loopback: [String] = []
        var ifap: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&ifap) == 0 else { return ["127.0.0.1"] }
        defer { freeifaddrs(ifap) }
        var p = ifap
        while let ifa = p {
            defer { p = ifa.pointee.ifa_next }
            guard let sa = ifa.pointee.ifa_addr, sa.pointee.sa_family == sa_family_t(AF_INET) else { continue }
            var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            guard getnameinfo(sa, socklen_t(MemoryLayout<sockaddr_in>.size), &host, socklen_t(host.count), nil, 0,
                              NI_NUMERICHOST) == 0 else { continue }
            let ip = String(cString: host)
            if ip.hasPrefix("127.") { loopback.append(ip) } else { result.append(ip) }
        }
        return result + loopback
    }

    // MARK: - Sockets

    /// One UDP socket bound on each address, all on one port (retried with a new port when one is taken).
    static func bindAll(_ addresses: [String]) throws -> ([Int32], UInt16) {
        var lastError = "no address to listen on"
        for _ in 0..<20 {
            var fds: [Int32] = [], port: UInt16 = 0
            for ip in addresses {
                let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
                guard fd >= 0, var a = socketAddress(ip, port: port), call(fd, &a, { Glibc.bind($0, $1, $2) }) == 0 else {
                    lastError = "\(ip): " + String(cString: strerror(errno))
                    if fd >= 0 { close(fd) }
                    break
                }
                fds.append(fd)
                if port == 0 { port = boundPort(fd) }
            }
            if fds.count == addresses.count && !fds.isEmpty { return (fds, port) }
            fds.forEach { close($0) }
        }
        throw TrainError("the step watchdog cannot listen for progress datagrams (\(lastError)); "
            + "set collective_timeout = 0 to run without it")
    }

    private static func boundPort(_ fd: Int32) -> UInt16 {
        var a = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return UInt16(bigEndian: a.sin_port)
    }

    static func socketAddress(_ ip: String, port: UInt16) -> sockaddr_in? {
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        return inet_pton(AF_INET, ip, &a.sin_addr) == 1 ? a : nil
    }

    /// `bind` or `connect` on an IPv4 address.
    static func call(_ fd: Int32, _ a: inout sockaddr_in, _ f: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { f(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    }
}
