// Reading one document's bytes in blocks, through `gzip -dc` or `xz -dc` for
// compressed files, so memory does not grow with the document.
import Foundation
import GPTSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// read(2), named apart from the method that uses it.
#if canImport(Glibc)
private let systemRead = Glibc.read
#elseif canImport(Darwin)
private let systemRead = Darwin.read
#endif

// MARK: - Reading documents

/// A document's bytes, read block by block (through `gzip -dc` or `xz -dc` for compressed files).
final class DocumentStream {
    let document: CorpusDocument
    private var fd: Int32 = -1
    private var process: Process?

    init(_ document: CorpusDocument) throws {
        self.document = document
        switch document.compression {
        case .none:
            fd = open(document.path, O_RDONLY)
            guard fd >= 0 else { throw DataError("\(document.path): cannot open: \(errnoDescription())") }
        case .gzip, .xz:
            let tool = document.compression == .gzip ? "gzip" : "xz"
            guard let executable = DocumentStream.findExecutable(tool) else {
                throw DataError("\(document.path): needs `\(tool)` to decompress, which is not installed "
                                + "(apt-get install \(tool == "xz" ? "xz-utils" : "gzip")), or decompress it first")
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = ["-dc", "--", document.path]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            do { try process.run() } catch {
                throw DataError("\(document.path): cannot start \(tool): \(error.localizedDescription)")
            }
            self.process = process
            fd = dup(pipe.fileHandleForReading.fileDescriptor)
            try? pipe.fileHandleForReading.close()
        }
    }

    deinit {
        if fd >= 0 { close(fd) }
        if let process, process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// A reusable read buffer.
    private var scratch = [UInt8](repeating: 0, count: DocumentBatcher.readBytes)

    /// Appends up to `count` bytes to `buffer`; returns how many (0 at the end of the document).
    func read(_ count: Int, into buffer: inout [UInt8]) throws -> Int {
        if scratch.count < count { scratch = [UInt8](repeating: 0, count: count) }
        var got = 0
        while got < count {
            let n = scratch.withUnsafeMutableBytes { systemRead(fd, $0.baseAddress! + got, count - got) }
            if n < 0 {
                if errno == EINTR { continue }
                throw DataError("\(document.path): read failed: \(errnoDescription())")
            }
            if n == 0 { break }
            got += n
        }
        buffer.append(contentsOf: scratch[..<got])
        if got == 0, let process {
            process.waitUntilExit()
            guard process.terminationReason == .exit && process.terminationStatus == 0 else {
                throw DataError("\(document.path): `\(process.executableURL!.lastPathComponent) -dc` failed "
                                + "(status \(process.terminationStatus)); the file is damaged or not "
                                + "\(document.compression.rawValue)-compressed")
            }
        }
        return got
    }

    private static func findExecutable(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return (path.split(separator: ":").map(String.init) + ["/usr/bin", "/bin"])
            .map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}
