import ArgumentParser
import Foundation
import GPTData
import GPTTrain

/// `gpt plot --out curves.svg [--field accuracy] runs/a:label runs/b:label ...`
///
/// A change of world of an elastic run (metrics.jsonl's "world_change" events) is a labelled vertical line.
struct PlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "Plot the loss (or accuracy) curves of runs (from their metrics.jsonl) into one SVG chart.")

    @Option(help: "Output file (.svg).") var out: String
    @Option(help: "Chart title (default: the field).") var title: String?
    @Option(help: "Field of the eval records: val_loss, or a task's accuracy, accuracy_digits_<n>, accuracy_<op>.")
    var field = "val_loss"
    @Flag(help: "Also plot the eval train loss (dashed; with --field val_loss).") var train = false
    @Argument(help: "Run directories, each optionally followed by :label.") var runs: [String]

    func run() throws {
        do {
            let loss = field == "val_loss"
            var plot = LossPlot(title: title ?? (loss ? "loss" : field))
            if !loss { plot.yLabel = field }
            for (i, spec) in runs.enumerated() {
                let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
                let dir = parts[0], label = parts.count > 1 ? parts[1] : (dir as NSString).lastPathComponent
                let path = dir + "/metrics.jsonl"
                plot.series.append(.init(label: label + (loss ? " (val)" : ""),
                                         points: try LossPlot.read(metrics: path, event: "eval", field: field), color: i))
                for m in WorldChange.marks(metrics: path) {
                    plot.marks.append((m.step, runs.count > 1 ? "\(label): \(m.label)" : m.label))
                }
                if train && loss {
                    plot.series.append(.init(label: label + " (train)",
                                             points: try LossPlot.read(metrics: path, event: "eval", field: "train_loss"), dashed: true, color: i))
                }
            }
            guard plot.series.contains(where: { !$0.points.isEmpty }) else {
                throw TrainError("no eval events with \(field) in the given runs' metrics.jsonl; nothing to plot")
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
