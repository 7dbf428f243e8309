// The one progress display of the project: training, evaluation, tokenizer
// training and corpus preparation all report through a `ProgressLine`.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - ProgressLine

/// A one-line progress display for long loops (training, evaluation, data preparation).
///
/// On a terminal, `update` redraws one status line in place on standard error:
/// `train 1250/5000  25.0%  3.41 it/s  elapsed 6m06s  eta 18m20s  loss 1.8234`.
/// Off a terminal (a log file, a batch job) `update` prints nothing, and the caller prints
/// plain lines with `log`, which works in both modes: on a terminal it clears the status line,
/// prints the line on standard output and redraws the status line below it. With `logInterval`,
/// `update` off a terminal prints the status as a plain line that often (the first after one
/// interval), and once at `total`.
/// Rate and ETA come from an exponential moving average of the time per step, so they
/// follow the current speed rather than the run's average; they are available in both modes.
/// Steps can be bytes (`unit: .bytes`), shown in MB and MB/s, for jobs that stream files.
public final class ProgressLine {
    /// Where a piece of output goes: the redrawn status line, or a plain log line.
    public enum Stream: Sendable {
        case status, log
    }

    /// What a step counts: a step of a loop, or a byte of a streamed input.
    public enum Unit: Sendable {
        case steps, bytes
    }

    /// The step count at which the loop is done.
    public let total: Int
    /// The word that opens the status line ("train", "eval", ...).
    public let label: String
    /// Whether output goes to a terminal that can redraw a line.
    public let isTTY: Bool
    /// What a step counts.
    public let unit: Unit
    /// Weight of the newest step time in the moving average (per step; per byte for `.bytes`).
    public var smoothing: Double
    /// Off a terminal, seconds between two status lines printed by `update`; nil prints none.
    public var logInterval: Double?
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
    /// When `update` last printed a status line off a terminal, and at which step.
    private var lastLogTime: Double?
    private var lastLoggedStep: Int?
    private var loggedTotal = false
    private var shown = ""

    /// A progress line counting to `total`.
    ///
    /// - Parameters:
    ///   - unit: what a step counts; bytes are shown in MB and MB/s.
    ///   - isTTY: redraw in place; by default, whether standard error is a terminal.
    ///   - clock: monotonic seconds; the default is the system's monotonic clock.
    ///   - output: receives the text to print; by default the status line goes to standard
    ///     error and log lines to standard output, each flushed at once.
    public init(total: Int, label: String, unit: Unit = .steps, isTTY: Bool = isatty(STDERR_FILENO) != 0,
                clock: @escaping () -> Double = monotonicSeconds,
                output: @escaping (Stream, String) -> Void = ProgressLine.standardOutput) {
        self.total = total
        self.label = label
        self.isTTY = isTTY
        self.unit = unit
        self.smoothing = unit == .bytes ? 1e-7 : 0.1
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
        if isTTY {
            guard now - lastDrawTime >= redrawInterval || step >= total else { return }
            lastDrawTime = now
            draw(render(step: step, extra: extra))
        } else {
            logIfDue(step: step, extra: extra, now: now)
        }
    }

    /// Off a terminal, with `logInterval`: prints the status as a plain line when one is due or `forced`.
    ///
    /// A line is due one interval after the last (or the start), and at `total`; none follows the one at `total`.
    private func logIfDue(step: Int, extra: String, now: Double, forced: Bool = false) {
        guard let interval = logInterval, !loggedTotal, lastLoggedStep != step else { return }
        guard forced || now - (lastLogTime ?? startTime) >= interval || (step >= total && total > 0) else { return }
        lastLogTime = now
        lastLoggedStep = step
        loggedTotal = step >= total
        output(.log, render(step: step, extra: extra) + "\n")
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

    /// Shows the status at `step` a last time (on a terminal, and off one with `logInterval`), then ends the line.
    public func finish(step: Int, extra: String = "") {
        update(step: step, extra: extra)
        if isTTY {
            draw(render(step: step, extra: extra))
        } else {
            logIfDue(step: step, extra: extra, now: clock(), forced: true)
        }
        finish()
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
        let count = unit == .bytes ? String(format: "%.1f/%.1f MB", Double(step) / 1e6, Double(total) / 1e6)
                                   : "\(step)/\(total)"
        var parts = ["\(label) \(count)", String(format: "%5.1f%%", percent)]
        if let average = averageStepSeconds, average > 0 {
            switch unit {
            case .bytes: parts.append(String(format: "%.1f MB/s", 1e-6 / average))
            case .steps: parts.append(average <= 1 ? String(format: "%.2f it/s", 1 / average)
                                                   : String(format: "%.2f s/it", average))
            }
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

    /// Writes the status line and log lines to standard error, flushed (for tools whose standard output is data).
    public static func standardError(_ stream: Stream, _ text: String) {
        fputs(text, stderr)
        fflush(stderr)
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

/// Width of the terminal on standard error, or 0 when unknown.
private func terminalColumns() -> Int {
    var size = winsize()
    guard ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0 else { return 0 }
    return Int(size.ws_col)
}
