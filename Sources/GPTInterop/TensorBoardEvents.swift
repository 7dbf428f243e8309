// TensorBoard event files (events.out.tfevents.*): TFRecord framing (length,
// masked CRC-32C of the length, the record, masked CRC-32C of the record)
// around tensorflow.Event protocol buffers, encoded by hand: we write only a
// handful of fields of Event, Summary, SessionLog and TensorProto
// (docs/FORMATS.md).
import Foundation
import GPTSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - CRC-32C

/// CRC-32C (Castagnoli), as TFRecord uses it.
enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0x82F6_3B78 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes { crc = table[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    /// TFRecord's masked form: rotated right by 15 bits plus a constant.
    static func masked(_ bytes: [UInt8]) -> UInt32 {
        let crc = checksum(bytes)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}

// MARK: - Protocol buffer encoding

/// The few protocol buffer encodings an Event needs (fields are appended in field order).
struct ProtoWriter {
    private(set) var bytes: [UInt8] = []

    private mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    private mutating func key(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }

    mutating func int(_ field: Int, _ value: Int64) {
        key(field, 0)
        varint(UInt64(bitPattern: value))
    }

    mutating func double(_ field: Int, _ value: Double) {
        key(field, 1)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
    }

    mutating func float(_ field: Int, _ value: Float) {
        key(field, 5)
        withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 }
    }

    mutating func data(_ field: Int, _ value: [UInt8]) {
        key(field, 2)
        varint(UInt64(value.count))
        bytes += value
    }

    mutating func string(_ field: Int, _ value: String) { data(field, Array(value.utf8)) }

    mutating func message(_ field: Int, _ build: (inout ProtoWriter) -> Void) {
        var inner = ProtoWriter()
        build(&inner)
        data(field, inner.bytes)
    }
}

// MARK: - Events

/// What one event record carries (tensorflow/core/util/event.proto, summary.proto).
public enum TensorBoardValue {
    /// `Summary.Value.simple_value`: a scalar chart point.
    case scalar(tag: String, value: Float)
    /// A text summary: a scalar DT_STRING tensor for the "text" plugin.
    case text(tag: String, value: String)
}

enum TensorBoardEvent {
    /// Event field numbers: wall_time 1, step 2, file_version 3, summary 5, session_log 7.
    static func encode(wallTime: Double, step: Int, _ body: (inout ProtoWriter) -> Void) -> [UInt8] {
        var w = ProtoWriter()
        w.double(1, wallTime)
        w.int(2, Int64(step))
        body(&w)
        return w.bytes
    }

    static func fileVersion(wallTime: Double) -> [UInt8] {
        encode(wallTime: wallTime, step: 0) { $0.string(3, "brain.Event:2") }
    }

    /// SessionLog{status: START}: TensorBoard drops the events of earlier files at this step and later.
    static func sessionStart(wallTime: Double, step: Int) -> [UInt8] {
        encode(wallTime: wallTime, step: step) { $0.message(7) { $0.int(1, 1) } }
    }

    static func summary(wallTime: Double, step: Int, values: [TensorBoardValue]) -> [UInt8] {
        encode(wallTime: wallTime, step: step) { event in
            event.message(5) { summary in
                for v in values { summary.message(1) { value(&$0, v) } }
            }
        }
    }

    /// Summary.Value: tag 1, simple_value 2, tensor 8, metadata 9.
    private static func value(_ w: inout ProtoWriter, _ v: TensorBoardValue) {
        switch v {
        case let .scalar(tag, x):
            w.string(1, tag)
            w.float(2, x)
        case let .text(tag, text):
            w.string(1, tag)
            // TensorProto: dtype 1 (DT_STRING = 7), tensor_shape 2 (a scalar: no dims), string_val 8.
            w.message(8) { tensor in
                tensor.int(1, 7)
                tensor.message(2) { _ in }
                tensor.string(8, text)
            }
            // SummaryMetadata.plugin_data (1) { plugin_name (1) }.
            w.message(9) { metadata in metadata.message(1) { $0.string(1, "text") } }
        }
    }
}

// MARK: - Writer

/// Appends events to one `events.out.tfevents.<time>.<host>.<pid>` file in a directory.
///
/// Every record goes to the kernel in one `write` as it is added, so a killed run leaves at most
/// its last record cut short (TensorBoard's reader stops there). A run that resumes at `step`
/// writes a new file that starts with a SessionLog START at that step, so TensorBoard drops the
/// abandoned steps of the files before it. The name's time is later than every event file
/// already in the directory, so TensorBoard reads the files in the order they were written.
public final class TensorBoardWriter {
    public let path: String
    private var fd: Int32
    private let clock: () -> Double

    public init(directory: String, resumeStep: Int?, clock: @escaping () -> Double = { Date().timeIntervalSince1970 }) throws {
        self.clock = clock
        let existing = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let latest = existing.compactMap { name -> Int? in
            guard name.hasPrefix("events.out.tfevents.") else { return nil }
            return Int(name.dropFirst("events.out.tfevents.".count).prefix { $0 != "." })
        }.max() ?? 0
        let seconds = max(Int(clock()), latest + 1)
        var host = ProcessInfo.processInfo.hostName
        host.removeAll { $0 == "/" }
        path = (directory as NSString).appendingPathComponent(
            "events.out.tfevents.\(String(format: "%010d", seconds)).\(host).\(getpid())")
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DataError("cannot create \(path): \(String(cString: strerror(errno)))") }
        try append(TensorBoardEvent.fileVersion(wallTime: clock()))
        if let resumeStep { try append(TensorBoardEvent.sessionStart(wallTime: clock(), step: resumeStep)) }
    }

    deinit { close() }

    /// One event at `step` holding `values`.
    public func write(step: Int, _ values: [TensorBoardValue]) throws {
        try append(TensorBoardEvent.summary(wallTime: clock(), step: step, values: values))
    }

    public func close() {
        if fd >= 0 { closeDescriptor(fd) }
        fd = -1
    }

    /// One TFRecord: u64 length, masked CRC of the length, the event, masked CRC of the event.
    private func append(_ event: [UInt8]) throws {
        guard fd >= 0 else { throw DataError("\(path) is closed") }
        var record: [UInt8] = []
        record.reserveCapacity(event.count + 16)
        withUnsafeBytes(of: UInt64(event.count).littleEndian) { record += $0 }
        let lengthCRC = CRC32C.masked(record)
        withUnsafeBytes(of: lengthCRC.littleEndian) { record += $0 }
        record += event
        withUnsafeBytes(of: CRC32C.masked(event).littleEndian) { record += $0 }
        let written = record.withUnsafeBytes { writeDescriptor(fd, $0) }
        guard written == record.count else {
            throw DataError("cannot write \(path): \(written < 0 ? String(cString: strerror(errno)) : "short write")")
        }
    }
}

// (Free functions: inside the writer its own `close` and `write` hide the C ones.)
private func closeDescriptor(_ fd: Int32) { _ = close(fd) }
private func writeDescriptor(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int { write(fd, bytes.baseAddress!, bytes.count) }
