import Foundation
import GPTData
import GPTSupport

// MARK: - MetricValue

/// One field of a metrics record: an integer, a number, a string or a boolean.
///
/// Literals work directly: `["loss": 1.82, "tokens": 16384, "best": true, "path": "ckpt_500.h5"]`.
public enum MetricValue: Equatable, Sendable, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByStringLiteral, ExpressibleByBooleanLiteral
{
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)

    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }

    /// The value as JSON. Non-finite numbers, which JSON cannot hold, become the strings
    /// "NaN", "Infinity" and "-Infinity" (Python's `float()` reads them back).
    var json: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v):
            if v.isNaN { return "\"NaN\"" }
            if v.isInfinite { return v > 0 ? "\"Infinity\"" : "\"-Infinity\"" }
            return v.description  // shortest form that reads back to the same Double
        case .string(let v): return quotedStringLiteral(v)
        case .bool(let v): return v ? "true" : "false"
        }
    }
}


// MARK: - MetricsLog

/// An append-only log of training events, one JSON object per line, in `<out_dir>/metrics.jsonl`.
///
/// Every record has `"event"` ("train", "eval", "checkpoint", "sample", "info", ...), `"step"`
/// and `"time"` (unix seconds), plus the caller's fields; keys are sorted. Each line goes to the
/// kernel in one `write` as soon as it is logged, so a crash loses at most the line being written.
/// Opening an existing log appends to it; `truncate(afterStep:)` drops records past the
/// checkpoint a run resumes from. Only rank 0 should hold one.
public final class MetricsLog {
    /// Path of the log file.
    public let path: String

    private var fd: Int32
    private let clock: () -> Double
    private let lock = NSLock()

    /// Opens (creating if needed) `metrics.jsonl` in `directory`, which is created too.
    public convenience init(directory: String, clock: @escaping () -> Double = { Date().timeIntervalSince1970 }) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw MetricsError("cannot create directory \"\(directory)\": \(error.localizedDescription)")
        }
        try self.init(path: (directory as NSString).appendingPathComponent("metrics.jsonl"), clock: clock)
    }

    /// Opens (creating if needed) the log file at `path` for appending.
    public init(path: String, clock: @escaping () -> Double = { Date().timeIntervalSince1970 }) throws {
        self.path = path
        self.clock = clock
        self.fd = try Self.openForAppend(path)
    }

    deinit { close() }

    /// Appends one record; `fields` may not override "event", "step" or "time".
    public func log(_ event: String, step: Int, _ fields: [String: MetricValue] = [:]) throws {
        var record = fields
        record["event"] = .string(event)
        record["step"] = .int(step)
        record["time"] = .double(clock())
        let line = "{" + record.keys.sorted().map { quotedStringLiteral($0) + ":" + record[$0]!.json }
            .joined(separator: ",") + "}\n"
        lock.lock()
        defer { lock.unlock() }
        guard fd >= 0 else { throw MetricsError("metrics log \"\(path)\" is closed") }
        try Self.writeAll(fd, Array(line.utf8), path: path)
    }

    /// Removes every record whose "step" is greater than `step` (and any line that is not a
    /// JSON object, such as one cut short by a crash), so a run resumed from the checkpoint at
    /// `step` does not leave records of the abandoned steps in between.
    ///
    /// The kept lines are written to a temporary file that is renamed over the log, so the log
    /// is never left half-written.
    public func truncate(afterStep step: Int) throws {
        lock.lock()
        defer { lock.unlock() }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MetricsError("cannot read metrics log \"\(path)\"")
        }
        var kept: [UInt8] = []
        kept.reserveCapacity(data.count)
        for line in data.split(separator: UInt8(ascii: "\n")) {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { continue }
            if let s = object["step"] as? NSNumber, s.doubleValue > Double(step) { continue }
            kept += line
            kept.append(UInt8(ascii: "\n"))
        }
        let temporary = path + ".tmp.\(getpid())"
        let tfd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard tfd >= 0 else { throw MetricsError("cannot write \"\(temporary)\": \(String(cString: strerror(errno)))") }
        do {
            try Self.writeAll(tfd, kept, path: temporary)
            guard fsync(tfd) == 0 else { throw MetricsError("cannot sync \"\(temporary)\": \(String(cString: strerror(errno)))") }
        } catch {
            posixClose(tfd)
            unlink(temporary)
            throw error
        }
        posixClose(tfd)
        guard rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw MetricsError("cannot replace \"\(path)\": \(reason)")
        }
        if fd >= 0 { posixClose(fd) }
        fd = try Self.openForAppend(path)
    }

    /// Closes the file; later `log` calls throw. Safe to call more than once.
    public func close() {
        lock.lock()
        defer { lock.unlock() }
        if fd >= 0 { posixClose(fd) }
        fd = -1
    }

    // MARK: File helpers

    /// Opens `path` for appending; if an earlier run died mid-line, ends that line first.
    private static func openForAppend(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw MetricsError("cannot open metrics log \"\(path)\": \(String(cString: strerror(errno)))")
        }
        var info = stat()
        if fstat(fd, &info) == 0 && info.st_size > 0 {
            var last: UInt8 = 0
            if pread(fd, &last, 1, info.st_size - 1) == 1 && last != UInt8(ascii: "\n") {
                do { try writeAll(fd, [UInt8(ascii: "\n")], path: path) } catch { posixClose(fd); throw error }
            }
        }
        return fd
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw MetricsError("cannot write \"\(path)\": \(String(cString: strerror(errno)))")
                }
                offset += n
            }
        }
    }
}

/// A metrics log that cannot be opened, written or rewritten; `description` says which file and why.
public struct MetricsError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// `close(2)`, callable inside `MetricsLog`, whose own `close()` hides the C function.
private func posixClose(_ fd: Int32) {
    _ = close(fd)
}
