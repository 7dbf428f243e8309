import ArgumentParser
import Foundation
import GPTData
import GPTTrain

/// `gpt plot --out curves.svg runs/a:label runs/b:label ...`
struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Plot the loss curves of runs (from their metrics.jsonl) into one SVG chart.")

    @Option(help: "Output file (.svg).") var out: String
    @Option(help: "Chart title.") var title = "loss"
    @Flag(help: "Also plot the eval train loss (dashed).") var train = false
    @Argument(help: "Run directories, each optionally followed by :label.") var runs: [String]

    func run() throws {
        do {
            var plot = LossPlot(title: title)
            for (i, spec) in runs.enumerated() {
                let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
                let dir = parts[0], label = parts.count > 1 ? parts[1] : (dir as NSString).lastPathComponent
                let path = dir + "/metrics.jsonl"
                plot.series.append(.init(label: label + " (val)", points: try LossPlot.read(metrics: path, event: "eval", field: "val_loss"),
                                         color: i))
                if train {
                    plot.series.append(.init(label: label + " (train)",
                                             points: try LossPlot.read(metrics: path, event: "eval", field: "train_loss"), dashed: true, color: i))
                }
            }
            guard plot.series.contains(where: { !$0.points.isEmpty }) else {
                throw TrainError("no eval events in the given runs' metrics.jsonl; nothing to plot")
            }
            try AtomicFile.write(to: out) { tmp in
                guard FileManager.default.createFile(atPath: tmp, contents: Data(plot.svg().utf8)) else {
                    throw TrainError("cannot write \(tmp)")
                }
            }
            print("wrote \(out)")
        } catch { fail(error) }
    }
}
