import Foundation
import GPTData
import GPTSupport
import TOMLKit

// MARK: - Loading

extension TrainConfig {
    /// The resolved config: defaults, then the TOML file at `path` (if any), then `key=value` overrides.
    ///
    /// Override values are parsed with the key's type: `batch_size=32`, `learning_rate=1e-3`,
    /// `decay_lr=false`, `out_dir=runs/x` or `out_dir="runs/x"`. A leading `--` is allowed
    /// (`--batch_size=32`, as nanoGPT's configurator). The result is validated.
    public static func load(path: String?, overrides: [String]) throws -> TrainConfig {
        var config = TrainConfig()
        config.dataset = unsetDataset
        if let path {
            try config.apply(toml: try readConfigFile(path), source: path)
        }
        return try config.finished(overrides: overrides)
    }

    /// The config in a TOML document (e.g. one stored in a checkpoint), then `key=value` overrides.
    ///
    /// `source` names the document in error messages.
    public static func load(toml: String, source: String, overrides: [String] = []) throws -> TrainConfig {
        var config = TrainConfig()
        config.dataset = unsetDataset
        try config.apply(toml: toml, source: source)
        return try config.finished(overrides: overrides)
    }

    /// This config with `overrides` applied, validated.
    private func finished(overrides: [String]) throws -> TrainConfig {
        var config = self
        try config.apply(overrides: overrides)
        config.resolveDataset()
        try config.validate()
        return config
    }

    /// Sets the keys found in a TOML document; other keys keep their values. Does not validate.
    public mutating func apply(toml: String, source: String) throws {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: toml)
        } catch let error as TOMLParseError {
            throw ConfigError.malformedTOML(source: source, line: error.source.begin.line,
                                            column: error.source.begin.column, message: error.description)
        }
        // Report the first problem in file order, so fixing errors top to bottom works.
        let entries = table.map { (key: $0.0, value: $0.1, line: Self.line(ofKey: $0.0, in: toml)) }
            .sorted { ($0.line ?? Int.max, $0.key) < ($1.line ?? Int.max, $1.key) }
        for entry in entries {
            guard let key = ConfigKey.named(entry.key) else {
                if entry.value.type == .table {
                    throw ConfigError.nestedTable(source: source, line: entry.line, name: entry.key)
                }
                throw ConfigError.unknownKey(key: entry.key, source: source, line: entry.line,
                                             suggestion: ConfigKey.closest(to: entry.key))
            }
            key.set(&self, try key.value(fromTOML: entry.value, source: source, line: entry.line))
        }
    }

    /// Sets the keys given as `key=value` strings (a leading `--` is allowed). Does not validate.
    public mutating func apply(overrides: [String]) throws {
        for override in overrides {
            var text = Substring(override)
            if text.hasPrefix("--") { text = text.dropFirst(2) }
            guard let eq = text.firstIndex(of: "=") else {
                throw ConfigError.malformedOverride(override)
            }
            let name = text[..<eq].trimmingCharacters(in: .whitespaces)
            let raw = String(text[text.index(after: eq)...])
            guard !name.isEmpty else { throw ConfigError.malformedOverride(override) }
            guard let key = ConfigKey.named(name) else {
                throw ConfigError.unknownKey(key: name, source: nil, line: nil, suggestion: ConfigKey.closest(to: name))
            }
            key.set(&self, try key.value(fromOverride: raw))
        }
    }

    /// The 1-based line on which top-level `key` is assigned or opened as a table, if found.
    private static func line(ofKey key: String, in toml: String) -> Int? {
        let names = [key, "\"\(key)\"", "'\(key)'"]
        for (i, line) in toml.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let t = line.trimmingCharacters(in: .whitespaces)
            for name in names where t.hasPrefix(name) {
                let after = t.dropFirst(name.count).drop(while: { $0 == " " || $0 == "\t" })
                if after.hasPrefix("=") || after.hasPrefix(".") { return i + 1 }  // key = ..., key.sub = ...
            }
            if t.hasPrefix("[\(key)]") || t.hasPrefix("[\(key).") || t.hasPrefix("[[\(key)]]") { return i + 1 }
        }
        return nil
    }

    private static func readConfigFile(_ path: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard !path.isEmpty, FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ConfigError.fileNotFound(path)
        }
        if isDirectory.boolValue { throw ConfigError.unreadableFile(path, reason: "it is a directory") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError.unreadableFile(path, reason: "permission denied or I/O error")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError.unreadableFile(path, reason: "it is not UTF-8 text")
        }
        return text
    }
}

// MARK: - Parsing values

extension ConfigKey {
    /// The value of a TOML entry, checked against this key's type.
    func value(fromTOML v: TOMLValueConvertible, source: String, line: Int?) throws -> ConfigValue {
        func wrong() -> ConfigError {
            .wrongType(key: name, expected: kind.expected, got: Self.describe(v), source: source, line: line)
        }
        switch kind {
        case .int:
            guard let i = v.int else { throw wrong() }
            return .int(i)
        case .double:
            if let d = v.double { return .double(d) }
            guard let i = v.int else { throw wrong() }
            return .double(Double(i))
        case .bool:
            guard let b = v.bool else { throw wrong() }
            return .bool(b)
        case .string:
            guard let s = v.string else { throw wrong() }
            return .string(s)
        case .choice(let options):
            guard let s = v.string, options.contains(s) else { throw wrong() }
            return .string(s)
        }
    }

    /// The value of a command-line override's text (after `=`), read with this key's type.
    func value(fromOverride raw: String) throws -> ConfigValue {
        func wrong() -> ConfigError {
            .wrongType(key: name, expected: kind.expected, got: quotedStringLiteral(raw), source: nil, line: nil)
        }
        let text = try unquoted(raw)
        switch kind {
        case .int:
            guard let i = Int(text.replacingOccurrences(of: "_", with: "")) else { throw wrong() }
            return .int(i)
        case .double:
            let number = text.replacingOccurrences(of: "_", with: "")
            guard !number.isEmpty, let d = Double(number) else { throw wrong() }
            return .double(d)
        case .bool:
            switch text.lowercased() {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default: throw wrong()
            }
        case .string:
            return .string(text)
        case .choice(let options):
            guard options.contains(text) else { throw wrong() }
            return .string(text)
        }
    }

    /// The override text without surrounding spaces and, if it has them, its matching quotes
    /// (TOML escapes apply inside double quotes; single quotes are literal).
    private func unquoted(_ raw: String) throws -> String {
        let text = raw.trimmingCharacters(in: .whitespaces)
        guard text.count >= 2, let first = text.first, first == text.last, first == "\"" || first == "'" else {
            return text
        }
        guard let s = (try? TOMLTable(string: "v = " + text))?["v"]?.string else {
            throw ConfigError.wrongType(key: name, expected: "a correctly quoted string (TOML escapes inside double quotes)",
                                        got: quotedStringLiteral(raw), source: nil, line: nil)
        }
        return s
    }

    /// A TOML value as shown after "got" in an error message.
    private static func describe(_ v: TOMLValueConvertible) -> String {
        switch v.type {
        case .string: return quotedStringLiteral(v.string ?? "")
        case .int: return v.int.map(String.init) ?? "an integer"
        case .double: return v.double.map { $0.description } ?? "a number"
        case .bool: return v.bool.map { $0 ? "true" : "false" } ?? "a boolean"
        case .array: return "an array"
        case .table: return "a table"
        case .date: return "a date"
        case .time: return "a time"
        case .dateTime: return "a date-time"
        }
    }
}

// MARK: - Suggestions

extension ConfigKey {
    /// Names other trainers use for our keys.
    private static let aliases: [String: String] = [
        "lr": "learning_rate", "max_lr": "learning_rate", "batch": "batch_size", "micro_batch_size": "batch_size",
        "context_length": "block_size", "seq_len": "block_size", "sequence_length": "block_size",
        "layers": "n_layer", "num_layers": "n_layer", "heads": "n_head", "num_heads": "n_head",
        "d_model": "n_embd", "hidden_size": "n_embd", "max_steps": "max_iters", "steps": "max_iters",
        "warmup_steps": "warmup_iters", "grad_accum": "gradient_accumulation_steps",
        "grad_accum_steps": "gradient_accumulation_steps", "clip": "grad_clip", "num_threads": "threads",
        "data": "dataset", "output_dir": "out_dir", "resume": "init_from",
    ]

    /// The valid key closest to a misspelt one, if any is close enough to be a likely typo.
    static func closest(to key: String) -> String? {
        let k = key.lowercased().replacingOccurrences(of: "-", with: "_")
        if named(k) != nil { return k }
        if let alias = aliases[k] { return alias }
        return closest(to: k, among: all.map(\.name))
    }

    /// The candidate within a typo's reach of `word` (edit distance at most max(2, length / 3)), if any.
    static func closest(to word: String, among candidates: [String]) -> String? {
        let limit = max(2, word.count / 3)
        let best = candidates.map { ($0, editDistance(word, $0)) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= limit else { return nil }
        return best.0
    }
}

/// Levenshtein distance between two strings.
private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    var previous = Array(0...b.count)
    var current = [Int](repeating: 0, count: b.count + 1)
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
            current[j] = min(previous[j] + 1, current[j - 1] + 1, substitution)
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
