// safetensors files (Hugging Face's tensor format), read and written here
// without Python: an 8-byte little-endian header length N, N bytes of JSON
// naming each tensor's dtype, shape and byte range, then the raw
// little-endian tensor bytes back to back (docs/FORMATS.md).
import Foundation
import GPTSupport

#if _endian(big)
#error("safetensors tensors are little-endian; this file copies them as the host stores floats")
#endif

// MARK: - Element types

/// The element types we read and write: float32, and the 16-bit floats a model may be shipped in.
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16"

    /// Bytes per element.
    public var size: Int { self == .f32 ? 4 : 2 }

    /// The name `torch_dtype` gives it in a Hugging Face config.json.
    public var torchName: String {
        switch self {
        case .f32: "float32"
        case .f16: "float16"
        case .bf16: "bfloat16"
        }
    }

    /// `value` as bfloat16 bits, rounded to nearest even (NaN stays NaN), as torch's `.to(torch.bfloat16)`.
    static func bfloat16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: bits >> 16) | 0x0040 }
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }
}

// MARK: - Reading

/// One tensor of a safetensors file: its type, shape and where its bytes lie in the data section.
public struct SafetensorsEntry: Equatable, Sendable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    public let byteRange: Range<Int>
    public var count: Int { shape.reduce(1, *) }
}

/// A safetensors file, its header checked as the `safetensors` package checks it.
///
/// The header must lie inside the file, be a JSON object, and describe every
/// tensor with a known dtype, a shape and `data_offsets` whose length matches
/// the shape; the tensors must tile the data section exactly (no gaps, no
/// overlaps, nothing after the last). The file is memory-mapped; tensors are
/// read on demand.
public struct SafetensorsFile {
    public let path: String
    /// The tensors in file order.
    public let entries: [SafetensorsEntry]
    /// The header's `__metadata__` (string to string).
    public let metadata: [String: String]
    private let data: Data
    private let dataStart: Int
    private let index: [String: Int]

    public init(path: String) throws {
        self.path = path
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        } catch {
            throw DataError("\(path): cannot read the safetensors file: \(error.localizedDescription)")
        }
        let header = try Self.header(of: data, path: path)
        dataStart = 8 + header.length
        metadata = header.metadata
        entries = try Self.checkTiling(header.entries, dataBytes: data.count - dataStart, path: path)
        var index: [String: Int] = [:]
        for (i, e) in entries.enumerated() { index[e.name] = i }
        self.index = index
    }

    public subscript(name: String) -> SafetensorsEntry? { index[name].map { entries[$0] } }

    /// The tensor's elements as float32 (16-bit floats widened exactly).
    public func floats(_ entry: SafetensorsEntry) -> [Float] {
        let start = dataStart + entry.byteRange.lowerBound
        return data.withUnsafeBytes { raw in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[start ..< start + entry.byteRange.count])
            return [Float](unsafeUninitializedCapacity: entry.count) { out, initialized in
                for i in 0..<entry.count {
                    switch entry.dtype {
                    case .f32: out[i] = bytes.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
                    case .f16: out[i] = Float(Float16(bitPattern: bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                    case .bf16: out[i] = Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
                    }
                }
                initialized = entry.count
            }
        }
    }

    // MARK: Header checks

    private struct Header {
        var length: Int
        var entries: [SafetensorsEntry]
        var metadata: [String: String]
    }

    /// The header's length and entries, or an error naming what is wrong with it.
    private static func header(of data: Data, path: String) throws -> Header {
        let what = "\(path): not a valid safetensors file:"
        guard data.count >= 8 else {
            throw DataError("\(what) it holds \(data.count) bytes, fewer than the 8 of the header length")
        }
        let length = data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard length <= UInt64(data.count - 8) else {
            throw DataError("\(what) the header is truncated (the file says \(length) header bytes, "
                            + "\(data.count - 8) follow the length)")
        }
        guard length <= 100_000_000 else { throw DataError("\(what) the header length \(length) is implausibly large") }
        let n = Int(length)
        let json = data.subdata(in: 8 ..< 8 + n)
        guard json.first == UInt8(ascii: "{"),
              let object = try? JSONSerialization.jsonObject(with: json) as? [String: Any] else {
            throw DataError("\(what) the \(n)-byte header is not a JSON object")
        }
        var entries: [SafetensorsEntry] = []
        var metadata: [String: String] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                guard let m = value as? [String: String] else { throw DataError("\(what) __metadata__ must map strings to strings") }
                metadata = m
                continue
            }
            entries.append(try entry(name, value, what: what))
        }
        return Header(length: n, entries: entries, metadata: metadata)
    }

    /// One header entry, its dtype known and its byte count matching its shape.
    private static func entry(_ name: String, _ value: Any, what: String) throws -> SafetensorsEntry {
        guard let fields = value as? [String: Any], let dtypeName = fields["dtype"] as? String,
              let shape = fields["shape"] as? [Int], let offsets = fields["data_offsets"] as? [Int], offsets.count == 2 else {
            throw DataError("\(what) tensor '\(name)' needs \"dtype\", \"shape\" and \"data_offsets\": [begin, end]")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw DataError("\(what) tensor '\(name)' has dtype \(dtypeName); this build reads "
                            + SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", "))
        }
        guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1] else {
            throw DataError("\(what) tensor '\(name)' has shape \(shape) and data_offsets \(offsets)")
        }
        let elements = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
        guard offsets[1] - offsets[0] == elements * dtype.size else {
            throw DataError("\(what) tensor '\(name)' of shape \(shape) and dtype \(dtypeName) needs "
                            + "\(elements * dtype.size) bytes, its data_offsets \(offsets) give \(offsets[1] - offsets[0])")
        }
        return SafetensorsEntry(name: name, dtype: dtype, shape: shape, byteRange: offsets[0] ..< offsets[1])
    }

    /// The entries in data order, after checking that they cover the data section exactly.
    private static func checkTiling(_ entries: [SafetensorsEntry], dataBytes: Int, path: String) throws -> [SafetensorsEntry] {
        let sorted = entries.sorted {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound) < ($1.byteRange.lowerBound, $1.byteRange.upperBound)
        }
        var end = 0
        for e in sorted {
            guard e.byteRange.lowerBound == end else {
                throw DataError("\(path): not a valid safetensors file: the header is inconsistent: tensor '\(e.name)' "
                                + "starts at byte \(e.byteRange.lowerBound) of the data, the tensors before it end at \(end)")
            }
            end = e.byteRange.upperBound
        }
        guard end == dataBytes else {
            throw DataError("\(path): not a valid safetensors file: the header describes \(end) bytes of tensor data, "
                            + "the file holds \(dataBytes) (" + (end > dataBytes ? "truncated)" : "trailing bytes)"))
        }
        return sorted
    }
}

// MARK: - Writing

/// A tensor to write: its name, shape and float32 values (converted to the file's dtype).
public struct NamedTensor {
    public let name: String
    public let shape: [Int]
    public let values: [Float]

    public init(name: String, shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count,
                     "\(name): shape \(shape) holds \(shape.reduce(1, *)) values, given \(values.count)")
        self.name = name
        self.shape = shape
        self.values = values
    }
}

public enum SafetensorsWriter {
    /// Writes `tensors` in the given order as `dtype` to `path` (replacing it), with `metadata` in the header.
    ///
    /// The header is padded with spaces to a multiple of 8 bytes, as the `safetensors` package pads it,
    /// so every tensor starts 8-byte aligned when the tensors before it are.
    public static func write(_ tensors: [NamedTensor], dtype: SafetensorsDType, metadata: [String: String] = ["format": "pt"],
                             to path: String) throws {
        var header = "{"
        if !metadata.isEmpty {
            let fields = metadata.sorted { $0.key < $1.key }.map { quotedStringLiteral($0.key) + ":" + quotedStringLiteral($0.value) }
            header += "\"__metadata__\":{" + fields.joined(separator: ",") + "}"
        }
        var offset = 0
        for t in tensors {
            let bytes = t.values.count * dtype.size
            header += (header.count > 1 ? "," : "") + quotedStringLiteral(t.name) + ":{\"dtype\":\"\(dtype.rawValue)\",\"shape\":["
                + t.shape.map(String.init).joined(separator: ",") + "],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        header += "}"
        while header.utf8.count % 8 != 0 { header += " " }
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw DataError("\(path): cannot create the file")
        }
        defer { try? handle.close() }
        var length = UInt64(header.utf8.count).littleEndian
        try handle.write(contentsOf: Data(bytes: &length, count: 8) + Data(header.utf8))
        for t in tensors { try handle.write(contentsOf: encode(t.values, as: dtype)) }
        try handle.synchronize()
    }

    /// The little-endian bytes of `values` as `dtype`.
    static func encode(_ values: [Float], as dtype: SafetensorsDType) -> Data {
        switch dtype {
        case .f32: return values.withUnsafeBytes { Data($0) }
        case .f16: return values.map { Float16($0).bitPattern }.withUnsafeBytes { Data($0) }
        case .bf16: return values.map(SafetensorsDType.bfloat16Bits).withUnsafeBytes { Data($0) }
        }
    }
}
