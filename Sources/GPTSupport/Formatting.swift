// Durations and counts for humans, in progress lines and run logs.
import Foundation

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
