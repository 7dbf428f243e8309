import Dispatch
import Foundation

// MARK: - ProgressLine

/// A one-line progress display for long loops (training, evaluation, data preparation).
///
/// On a terminal, `update` redraws one status line in place on standard error:
/// `train 1250/5000  25.0%  3.41 it/s  elapsed 6m06s  eta 18m20s  loss 1.8234`.
/// Off a terminal (a log file, a batch job) `update` prints nothing, and the caller prints
/// plain lines with `log`, which works in both modes: on a terminal it clears the status line,
/// prints the line on standard output and redraws the status line below it.
/// Rate and ETA come from an exponential moving average of the time per step, so they
/// follow the current speed rather than the run's average; they are available in both modes.
public final class ProgressLine {
    /// Where a piece of output goes: the redrawn status line, or a plain log line.
    public enum Stream: Sendable {
        case status, log
    }

    /// The step count at which the loop is done.
    public let total: Int
    /// The word that opens the status line ("train", "eval", ...).
    public let label: String
    /// Whether output goes to a terminal that can redraw a line.
    public let isTTY: Bool
    /// Weight of the newest step time in the moving average.
    public var smoothing = 0.1
    /// Minimum seconds between two redraws (the last step is always drawn).
    public var redrawInterval = 0.1

    private let clock: () -> Double
    private let output: (Stream, String) -> Void
    /// Width of the terminal, 0 when unknown; a status line is cut to fit, as a wrapped line cannot be redrawn.
    public var columns: () -> Int = terminalColumns
    private let startTime: Double
    private var lastStep: Int?
    private var lastTime = 0.0
    private var averageStepSeconds: Double?
    private var lastDrawTime = -Double.infinity
    private var shown = ""

    /// A progress line counting to `total`.
    ///
    /// - Parameters:
    ///   - isTTY: redraw in place; by default, whether standard error is a terminal.
    ///   - clock: monotonic seconds; the default is the system's monotonic clock.
    ///   - output: receives the text to print; by default the status line goes to standard
    ///     error and log lines to standard output, each flushed at once.
    public init(total: Int, label: String, isTTY: Bool = isatty(STDERR_FILENO) != 0,
                clock: @escaping () -> Double = monotonicSeconds,
                output: @escaping (Stream, String) -> Void = ProgressLine.standardOutput) {
        self.total = total
        self.label = label
        self.isTTY = isTTY
        self.clock = clock
        self.output = output
        self.startTime = clock()
    }

    // MARK: Reporting

    /// Records that `step` steps are done and, on a terminal, redraws the status line.
    ///
    /// Call it every step or every few steps; `extra` (e.g. "loss 1.8234") ends the line.
    public func update(step: Int, extra: String = "") {
        let now = clock()
        if let last = lastStep, step > last {
            let perStep = (now - lastTime) / Double(step - last)
            if let average = averageStepSeconds {
                // k steps at once weigh as much as k single-step updates would.
                let weight = 1 - pow(1 - smoothing, Double(step - last))
                averageStepSeconds = average + weight * (perStep - average)
            } else {
                averageStepSeconds = perStep
            }
        } else if let last = lastStep, step < last {
            averageStepSeconds = nil  // the count went back (a restart): measure afresh
        }
        if lastStep != step {
            lastStep = step
            lastTime = now
        }
        guard isTTY, now - lastDrawTime >= redrawInterval || step >= total else { return }
        lastDrawTime = now
        draw(render(step: step, extra: extra))
    }

    /// Prints a plain line; on a terminal the status line is kept below it.
    public func log(_ line: String) {
        guard isTTY, !shown.isEmpty else {
            output(.log, line + "\n")
            return
        }
        output(.status, "\r\u{1B}[K")
        output(.log, line + "\n")
        output(.status, "\r" + shown + "\u{1B}[K")
    }

    /// Ends the status line so that later output starts on a fresh line. Safe to call twice.
    public func finish() {
        guard isTTY, !shown.isEmpty else { return }
        output(.status, "\n")
        shown = ""
    }

    // MARK: Measurements

    /// Seconds since the progress line was created.
    public var elapsedSeconds: Double { clock() - startTime }

    /// Steps per second from the moving average, once two updates have been seen.
    public var stepsPerSecond: Double? {
        averageStepSeconds.flatMap { $0 > 0 ? 1 / $0 : nil }
    }

    /// Seconds until `total` at the current average speed, once two updates have been seen.
    public var etaSeconds: Double? {
        guard let average = averageStepSeconds, let step = lastStep else { return nil }
        return Double(max(0, total - step)) * average
    }

    /// The status line for `step`, as `update` draws it (without the terminal control codes).
    public func render(step: Int, extra: String = "") -> String {
        let percent = total > 0 ? 100 * Double(step) / Double(total) : 100
        var parts = ["\(label) \(step)/\(total)", String(format: "%5.1f%%", percent)]
        if let average = averageStepSeconds, average > 0 {
            parts.append(average <= 1 ? String(format: "%.2f it/s", 1 / average) : String(format: "%.2f s/it", average))
        }
        parts.append("elapsed " + formatDuration(elapsedSeconds))
        if let eta = etaSeconds { parts.append("eta " + formatDuration(eta)) }
        if !extra.isEmpty { parts.append(extra) }
        return parts.joined(separator: "  ")
    }

    // MARK: Output

    private func draw(_ line: String) {
        var text = line
        let width = columns()
        if width > 1 && text.count >= width { text = String(text.prefix(width - 1)) }
        shown = text
        output(.status, "\r" + text + "\u{1B}[K")
    }

    /// Writes the status line to standard error and log lines to standard output, flushed.
    public static func standardOutput(_ stream: Stream, _ text: String) {
        switch stream {
        case .status:
            fputs(text, stderr)
            fflush(stderr)
        case .log:
            fputs(text, stdout)
            fflush(stdout)
        }
    }
}

/// Seconds on the system's monotonic clock (not affected by changes to the wall clock).
public func monotonicSeconds() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) / 1e9
}

/// Width of the terminal on standard error, or 0 when unknown.
private func terminalColumns() -> Int {
    var size = winsize()
    guard ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0 else { return 0 }
    return Int(size.ws_col)
}

// MARK: - Formatting

/// A duration for humans: "12.3s" under a minute, "3m05s" under an hour, then "1h02m".
///
/// Negative, non-finite or absurdly long durations (no meaningful estimate) give "--".
public func formatDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0, seconds < 1e15 else { return "--" }
    let tenths = (seconds * 10).rounded() / 10
    if tenths < 60 { return String(format: "%.1fs", tenths) }
    let whole = Int(seconds.rounded())
    if whole < 3600 { return String(format: "%dm%02ds", whole / 60, whole % 60) }
    let minutes = Int((seconds / 60).rounded())
    return String(format: "%dh%02dm", minutes / 60, minutes % 60)
}

/// A count with three significant digits and a suffix: 999, "1.23k", "45.6M", "124M", "1.50B", "2.00T".
public func formatCount(_ n: Int) -> String {
    let sign = n < 0 ? "-" : ""
    let magnitude = Double(n.magnitude)
    if magnitude < 1000 { return String(n) }
    let suffixes = ["k", "M", "B", "T", "P", "E"]
    for (i, suffix) in suffixes.enumerated() {
        let v = magnitude / pow(1000, Double(i + 1))
        // Choose the decimals from the value as it will be rounded, so 9.996k reads "10.0k".
        if v < 9.995 { return sign + String(format: "%.2f", v) + suffix }
        if v < 99.95 { return sign + String(format: "%.1f", v) + suffix }
        if v < 999.5 || i == suffixes.count - 1 { return sign + String(format: "%.0f", v) + suffix }
    }
    return String(n)
}
