import Foundation

// MARK: - Errors

/// A config that cannot be used; `description` is one line that says what to fix.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(String)
    case unreadableFile(String, reason: String)
    case malformedTOML(source: String, line: Int, column: Int, message: String)
    case nestedTable(source: String, line: Int?, name: String)
    /// `source` is nil for a command-line override.
    case unknownKey(key: String, source: String?, line: Int?, suggestion: String?)
    case wrongType(key: String, expected: String, got: String, source: String?, line: Int?)
    case malformedOverride(String)
    case invalid([String])
    /// `--set` with no `key=value` after it.
    case missingOverride
    /// A second config path on the command line.
    case unexpectedArgument(String, configPath: String)
    /// A dashed command-line word that is neither a flag of `gpt train` nor `--key=value`.
    case unknownOption(String, suggestion: String?)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "config file \"\(path)\" not found; pass the path of a TOML file such as configs/shakespeare_char.toml"
        case .unreadableFile(let path, let reason):
            return "cannot read config file \"\(path)\": \(reason)"
        case .malformedTOML(let source, let line, let column, let message):
            return "\(source):\(line):\(column): malformed TOML: \(Self.oneLine(message))"
        case .nestedTable(let source, let line, let name):
            return "\(Self.place(source, line)): [\(name)] is a table, but run configs are flat; "
                + "write its keys as top-level \"key = value\" lines"
        case .unknownKey(let key, let source, let line, let suggestion):
            let where_ = source.map { Self.place($0, line) + ": " } ?? "command-line override: "
            let hint = suggestion.map { " (did you mean \"\($0)\"?)" } ?? ""
            return "\(where_)unknown config key \"\(key)\"\(hint); valid keys: \(TrainConfig.keys.joined(separator: ", "))"
        case .wrongType(let key, let expected, let got, let source, let line):
            let where_ = source.map { Self.place($0, line) + ": " } ?? "command-line override: "
            return "\(where_)\(key) must be \(expected), got \(got)"
        case .malformedOverride(let text):
            return "override \"\(text)\" must look like key=value, e.g. batch_size=32"
        case .invalid(let problems):
            return "invalid config: " + problems.joined(separator: "; ")
        case .missingOverride:
            return "--set needs a key=value after it, e.g. --set batch_size=32"
        case .unexpectedArgument(let word, let configPath):
            return "unexpected argument \"\(word)\": the config file is already \"\(configPath)\"; "
                + "write overrides as --set key=value or --key=value"
        case .unknownOption(let word, let suggestion):
            let hint = suggestion.map { " (did you mean \"\($0)\"?)" } ?? ""
            return "unknown option \"\(word)\"\(hint); gpt train takes a config file, --resume, "
                + "--set key=value and --key=value for any config key"
        }
    }

    private static func place(_ source: String, _ line: Int?) -> String {
        line.map { "\(source):\($0)" } ?? source
    }

    private static func oneLine(_ s: String) -> String {
        s.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    }
}
