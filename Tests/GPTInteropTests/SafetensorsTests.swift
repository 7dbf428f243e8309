import Foundation
import GPTInterop
import TestSupport
import XCTest

final class SafetensorsTests: XCTestCase {
    func testRoundTripF32() throws {
        let dir = try TemporaryDirectory()
        let a = NamedTensor(name: "a", shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let b = NamedTensor(name: "b.weight", shape: [1], values: [-0.5])
        try SafetensorsWriter.write([a, b], dtype: .f32, to: dir.file("t.safetensors"))
        let f = try SafetensorsFile(path: dir.file("t.safetensors"))
        XCTAssertEqual(f.entries.map(\.name), ["a", "b.weight"])
        XCTAssertEqual(f.floats(f["a"]!), a.values)
        XCTAssertEqual(f.floats(f["b.weight"]!), b.values)
        XCTAssertEqual(f.metadata, ["format": "pt"])
        let header = try Data(contentsOf: URL(fileURLWithPath: dir.file("t.safetensors"))).prefix(8)
        XCTAssertEqual(header.reversed().reduce(0) { $0 << 8 | Int($1) } % 8, 0, "the header is padded to 8 bytes")
    }

    /// 16-bit floats round to nearest even (1 + 2^-8 is halfway between two bfloat16 values) and read back exactly.
    func testSixteenBitFloatsRoundToNearestEven() throws {
        let dir = try TemporaryDirectory()
        let values: [Float] = [1, 1 + 0x1p-8, 1 + 0x1p-7 + 0x1p-8, -2.5, 65504, 1e-3]
        for (dtype, expected) in [(SafetensorsDType.bf16, [1, 1, 1 + 0x1p-6, -2.5, 65536, 0.00099945068] as [Float]),
                                  (.f16, values.map { Float(Float16($0)) })] {
            try SafetensorsWriter.write([NamedTensor(name: "x", shape: [6], values: values)], dtype: dtype,
                                        to: dir.file("t.safetensors"))
            let f = try SafetensorsFile(path: dir.file("t.safetensors"))
            XCTAssertEqual(f["x"]?.dtype, dtype)
            XCTAssertEqual(f.floats(f["x"]!), expected, "\(dtype)")
        }
    }

    func testBadHeadersAreRefusedWithTheReason() throws {
        let dir = try TemporaryDirectory()
        func file(_ header: String, data: Int) -> Data {
            var length = UInt64(header.utf8.count).littleEndian
            return Data(bytes: &length, count: 8) + Data(header.utf8) + Data(count: data)
        }
        let cases: [(Data, String)] = [
            (Data([1, 2, 3]), "fewer than the 8"),
            (file("[1, 2]", data: 0), "not a JSON object"),
            (file(#"{"x":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, data: 8), "dtype I64"),
            (file(#"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: 8), "needs 12 bytes"),
            (file(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: 12), "trailing bytes"),
            (file(#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                  data: 12), "inconsistent"),
        ]
        for (bytes, message) in cases {
            try bytes.write(to: URL(fileURLWithPath: dir.file("bad.safetensors")))
            XCTAssertThrowsError(try SafetensorsFile(path: dir.file("bad.safetensors"))) {
                XCTAssertTrue("\($0)".contains(message), "expected '\(message)': \($0)")
            }
        }
    }
}
