import Foundation

/// Loss curves of one or more runs as an SVG chart (what `gpt plot` writes).
public struct LossPlot {
    public struct Series {
        public var label: String
        public var points: [(x: Double, y: Double)]
        public var dashed: Bool
        /// Series with the same color index share a color (e.g. a run's val and train curves).
        public var color: Int?
        public init(label: String, points: [(x: Double, y: Double)], dashed: Bool = false, color: Int? = nil) {
            self.label = label; self.points = points; self.dashed = dashed; self.color = color
        }
    }

    public var title: String
    public var xLabel = "step"
    public var yLabel = "loss"
    public var series: [Series] = []
    /// Vertical lines with a label at steps where something happened (a change of world).
    public var marks: [(x: Double, label: String)] = []
    public var width = 860.0, height = 520.0

    public init(title: String) { self.title = title }

    /// Points (step, value) of `field` in the `event` lines of a run's metrics.jsonl.
    public static func read(metrics path: String, event: String, field: String) throws -> [(x: Double, y: Double)] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TrainError("cannot read \(path); give a run directory that holds metrics.jsonl")
        }
        var points: [Int: Double] = [:]
        for line in text.split(separator: "\n") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  o["event"] as? String == event, let step = (o["step"] as? NSNumber)?.intValue,
                  let v = (o[field] as? NSNumber)?.doubleValue, v.isFinite else { continue }
            points[step] = v  // a resumed run logs a step again: the last one wins
        }
        return points.keys.sorted().map { (Double($0), points[$0]!) }
    }

    private static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]

    /// Ticks at 1, 2 or 5 times a power of ten covering lo...hi.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 6) -> [Double] {
        let span = max(hi - lo, 1e-12)
        let raw = span / Double(count)
        let mag = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
        var t = ceil(lo / step) * step
        var out: [Double] = []
        while t <= hi + step * 1e-9 { out.append(t); t += step }
        return out
    }

    /// A tick label with as many decimals as the tick spacing needs.
    private static func format(_ v: Double, spacing: Double) -> String {
        let decimals = max(0, Int(-floor(log10(spacing) + 1e-9)))
        return String(format: "%.\(decimals)f", v)
    }

    private static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    /// The chart as an SVG document.
    public func svg() -> String {
        let all = series.flatMap(\.points)
        let left = 70.0, right = 20.0, top = 50.0, bottom = 60.0
        let pw = width - left - right, ph = height - top - bottom
        let xs = all.map(\.x) + marks.map(\.x), ys = all.map(\.y)
        let x0 = xs.min() ?? 0, x1 = max(xs.max() ?? 1, x0 + 1)
        var y0 = ys.min() ?? 0, y1 = ys.max() ?? 1
        let pad = max((y1 - y0) * 0.05, 1e-3)
        y0 -= pad; y1 += pad
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * ph }
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
        viewBox="0 0 \(Int(width)) \(Int(height))" font-family="Helvetica, Arial, sans-serif" font-size="13">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(width / 2)" y="28" text-anchor="middle" font-size="16">\(Self.escape(title))</text>

        """
        let yt = Self.ticks(y0, y1), xt = Self.ticks(x0, x1)
        let ys0 = yt.count > 1 ? yt[1] - yt[0] : 1, xs0 = xt.count > 1 ? xt[1] - xt[0] : 1
        for t in yt {
            let y = py(t)
            s += "<line x1=\"\(left)\" y1=\"\(y)\" x2=\"\(left + pw)\" y2=\"\(y)\" stroke=\"#e5e5e5\"/>\n"
            s += "<text x=\"\(left - 8)\" y=\"\(y + 4)\" text-anchor=\"end\">\(Self.format(t, spacing: ys0))</text>\n"
        }
        for t in xt {
            let x = px(t)
            s += "<line x1=\"\(x)\" y1=\"\(top)\" x2=\"\(x)\" y2=\"\(top + ph)\" stroke=\"#e5e5e5\"/>\n"
            s += "<text x=\"\(x)\" y=\"\(top + ph + 20)\" text-anchor=\"middle\">\(Self.format(t, spacing: xs0))</text>\n"
        }
        s += "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(pw)\" height=\"\(ph)\" fill=\"none\" stroke=\"#333\"/>\n"
        s += "<text x=\"\(left + pw / 2)\" y=\"\(height - 15)\" text-anchor=\"middle\">\(Self.escape(xLabel))</text>\n"
        s += "<text x=\"18\" y=\"\(top + ph / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(top + ph / 2))\">\(Self.escape(yLabel))</text>\n"
        for (i, m) in marks.enumerated() {
            let x = String(format: "%.1f", px(m.x)), ly = top + 14 + Double(i % 3) * 14
            s += "<line class=\"mark\" x1=\"\(x)\" y1=\"\(top)\" x2=\"\(x)\" y2=\"\(top + ph)\" stroke=\"#555\" stroke-dasharray=\"3 3\"/>\n"
            s += "<text x=\"\(px(m.x) + 4)\" y=\"\(ly)\" font-size=\"11\" fill=\"#555\">\(Self.escape(m.label))</text>\n"
        }
        for (i, ser) in series.enumerated() {
            let color = Self.palette[(ser.color ?? i) % Self.palette.count]
            let pts = ser.points.map { String(format: "%.1f,%.1f", px($0.x), py($0.y)) }.joined(separator: " ")
            s += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(ser.dashed ? " stroke-dasharray=\"6 4\"" : "") points=\"\(pts)\"/>\n"
            for p in ser.points where ser.points.count <= 60 {
                s += "<circle cx=\"\(String(format: "%.1f", px(p.x)))\" cy=\"\(String(format: "%.1f", py(p.y)))\" r=\"2.5\" fill=\"\(color)\"/>\n"
            }
            let ly = top + 18 + Double(i) * 20
            s += "<line x1=\"\(left + pw - 230)\" y1=\"\(ly - 4)\" x2=\"\(left + pw - 200)\" y2=\"\(ly - 4)\" stroke=\"\(color)\" stroke-width=\"2\"\(ser.dashed ? " stroke-dasharray=\"6 4\"" : "")/>\n"
            s += "<text x=\"\(left + pw - 192)\" y=\"\(ly)\">\(Self.escape(ser.label))</text>\n"
        }
        return s + "</svg>\n"
    }
}
