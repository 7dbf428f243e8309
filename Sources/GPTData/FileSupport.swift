// Shared pieces of the corpus and checkpoint files: crash-safe file
// replacement and streaming text input.
import Foundation
import GPTSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Crash-safe replacement

/// Writes files through a temporary sibling that is renamed into place only once complete.
public enum AtomicFile {
    /// Calls `body` with a temporary path next to `path`, makes that file durable, then renames it to `path`.
    ///
    /// The temporary file is `<path>.tmp-<pid>` in the same directory, so the
    /// rename is atomic. On any error it is removed and an existing file at
    /// `path` is left untouched, so a crash never leaves a partial file under
    /// the final name.
    public static func write(to path: String, _ body: (_ temporaryPath: String) throws -> Void) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError("\(path): directory '\(directory)' does not exist; create it first")
        }
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw DataError("\(path): is a directory; give a file name")
        }
        let temporary = "\(path).tmp-\(getpid())"
        do {
            try body(temporary)
            try synchronize(temporary, what: "file")
            guard rename(temporary, path) == 0 else {
                throw DataError("\(path): cannot move the finished file '\(temporary)' into place: \(errnoDescription())")
            }
        } catch {
            unlink(temporary)
            throw error
        }
        // The new name is durable once the directory entry is; a failure here
        // leaves a complete file under one of the two names, so it is not an error.
        try? synchronize(directory, what: "directory")
    }

    /// fsync(2) of a file or directory.
    private static func synchronize(_ path: String, what: String) throws {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw DataError("\(path): cannot open \(what) to sync it: \(errnoDescription())") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw DataError("\(path): cannot sync \(what) to disk: \(errnoDescription())") }
    }
}

// MARK: - Streaming text input

/// Reads UTF-8 text files block by block, so memory does not grow with file size.
public enum TextFileReader {
    /// Bytes read per block.
    public static let blockBytes = 4 << 20

    /// Calls `body` with the Unicode scalars of consecutive blocks of the UTF-8 file at `path`.
    ///
    /// Throws a `DataError` for a missing or unreadable file, invalid UTF-8
    /// (naming the byte offset of the block) and NUL characters (binary files).
    public static func forEachBlock(of path: String, blockBytes: Int = blockBytes,
                             _ body: (String.UnicodeScalarView) throws -> Void) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw DataError("\(path): no such file")
        }
        if isDirectory.boolValue { throw DataError("\(path): is a directory, not a text file") }
        let handle: FileHandle
        do {
            handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        } catch {
            throw DataError("\(path): cannot open: \(error.localizedDescription)")
        }
        defer { try? handle.close() }
        var carry: [UInt8] = []
        var offset = 0
        while true {
            let data: Data
            do {
                data = try handle.read(upToCount: blockBytes) ?? Data()
            } catch {
                throw DataError("\(path): read failed: \(error.localizedDescription)")
            }
            let atEnd = data.isEmpty
            var bytes = carry
            bytes.append(contentsOf: data)
            if bytes.isEmpty { return }
            // Keep an incomplete UTF-8 sequence at the end for the next block.
            let cut = atEnd ? bytes.count : completePrefixLength(bytes)
            carry = Array(bytes[cut...])
            guard let text = decodeUTF8(bytes[..<cut]) else {
                throw DataError("\(path): not UTF-8 text (invalid bytes between offsets \(offset) and \(offset + cut))")
            }
            if text.utf8.contains(0) {
                throw DataError("\(path): contains NUL characters (a binary file?) between offsets \(offset) "
                                + "and \(offset + cut)")
            }
            try body(text.unicodeScalars)
            offset += cut
            if atEnd { return }
        }
    }

    /// The text of `bytes`, or nil when they are not valid UTF-8.
    private static func decodeUTF8(_ bytes: ArraySlice<UInt8>) -> String? {
        if #available(macOS 15, *) { return String(validating: bytes, as: UTF8.self) }
        return String(bytes: bytes, encoding: .utf8)
    }

    /// Length of the longest prefix of `bytes` that does not end inside a UTF-8 sequence.
    private static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        var start = bytes.count
        // Find the start of the last sequence: at most 3 continuation bytes back.
        while start > 0 && bytes.count - start < 4 {
            start -= 1
            let byte = bytes[start]
            if byte & 0xC0 != 0x80 {
                let length = byte < 0x80 ? 1 : byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
                return bytes.count - start >= length ? bytes.count : start
            }
        }
        return bytes.count // malformed: let validation report it
    }
}
