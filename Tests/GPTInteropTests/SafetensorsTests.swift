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
    }
}
