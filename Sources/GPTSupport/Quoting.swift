// The one string-literal escaper, for the JSON and TOML this project writes
// (metrics log, config echo, BPE tokenizer files).
import Foundation

// MARK: - String literals

/// A double-quoted string literal for `s`, valid both as JSON and as a TOML
/// basic string: quotes, backslashes and control characters (and DEL) escaped.
public func quotedStringLiteral(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.value < 0x20 || scalar.value == 0x7F {
                out += String(format: "\\u%04X", scalar.value)
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
