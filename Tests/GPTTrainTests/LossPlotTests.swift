import Foundation
import XCTest
import GPTTrain
import TestSupport

final class LossPlotTests: XCTestCase {
    func testReadsEvalPointsAndDrawsOneLinePerSeries() throws {
        let tmp = try TemporaryDirectory()
        let lines = [
            #"{"event":"eval","step":0,"val_loss":4.2,"train_loss":4.1}"#,
            #"{"event":"train","step":5,"loss":3.0}"#,
            #"{"event":"eval","step":10,"val_loss":2.5,"train_loss":2.4}"#,
            #"{"event":"eval","step":10,"val_loss":2.6,"train_loss":2.4}"#,  // logged again after a resume: last wins
        ]
        try lines.joined(separator: "\n").write(toFile: tmp.file("metrics.jsonl"), atomically: false, encoding: .utf8)
        let pts = try LossPlot.read(metrics: tmp.file("metrics.jsonl"), event: "eval", field: "val_loss")
        XCTAssertEqual(pts.map(\.x), [0, 10])
        XCTAssertEqual(pts.map(\.y), [4.2, 2.6])
        var plot = LossPlot(title: "a < b")
        plot.series = [.init(label: "val", points: pts, color: 0), .init(label: "train", points: pts, dashed: true, color: 0)]
        let svg = plot.svg()
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 2)
        XCTAssertTrue(svg.contains("a &lt; b"))
        XCTAssertTrue(svg.contains("stroke-dasharray"))
        XCTAssertThrowsError(try LossPlot.read(metrics: tmp.file("missing.jsonl"), event: "eval", field: "val_loss"))
    }
}
