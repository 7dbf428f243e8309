// MARK: - Command-line words

/// The config part of `gpt train`'s command line: at most one config path and the overrides, in order.
///
/// Accepted forms, mixed in any order with the config path (and `--resume`, which the command
/// itself takes before these words reach here):
/// - `--set key=value`, repeatable;
/// - `--set key1=value1 key2=value2 ...`: every `key=value` word right after one `--set`;
/// - `--set=key=value`;
/// - `--key=value`, nanoGPT's configurator form, for any config key.
///
/// The one other word is the config path (after `--`, every word is taken as a path). Overrides
/// apply left to right, so a later one wins.
public struct TrainArguments: Equatable, Sendable {
    /// The TOML run config, if one was given.
    public var configPath: String?
    /// `key=value` overrides (possibly with a leading `--`), as `TrainConfig.load` takes them.
    public var overrides: [String]

    public init(configPath: String? = nil, overrides: [String] = []) {
        self.configPath = configPath
        self.overrides = overrides
    }

    /// Sorts command-line words into the config path and the overrides.
    ///
    /// Throws a `ConfigError` for `--set` without `key=value`, a second config path, or a dashed
    /// word that is not `--key=value`; an unknown key in `--key=value` is left to `TrainConfig.load`,
    /// which names the valid keys.
    public init(parsing words: [String]) throws {
        self.init()
        var rest = words[...]
        var literal = false  // after "--", every word is a path
        while let word = rest.popFirst() {
            if word == "--" && !literal {
                literal = true
            } else if literal || !word.hasPrefix("-") {
                try setConfigPath(word)
            } else if word == "--set" {
                guard let first = rest.first, !first.hasPrefix("-") else { throw ConfigError.missingOverride }
                guard first.contains("=") else { throw ConfigError.malformedOverride(first) }
                while let next = rest.first, !next.hasPrefix("-"), next.contains("=") {
                    overrides.append(next)
                    rest.removeFirst()
                }
            } else if word.hasPrefix("--set=") {
                overrides.append(String(word.dropFirst("--set=".count)))
            } else {
                overrides.append(try Self.dashedOverride(word))
            }
        }
    }

    /// Takes `word` as the config path; there is only one.
    private mutating func setConfigPath(_ word: String) throws {
        if let configPath { throw ConfigError.unexpectedArgument(word, configPath: configPath) }
        configPath = word
    }

    /// `--key=value` as an override; any other dashed word is an error that suggests what was meant.
    private static func dashedOverride(_ word: String) throws -> String {
        if word.hasPrefix("--"), word.contains("=") { return word }
        let name = String(word.drop(while: { $0 == "-" }).prefix(while: { $0 != "=" }))
        if ConfigKey.named(name) != nil { throw ConfigError.malformedOverride(word) }
        let flag = ConfigKey.closest(to: name, among: ["resume", "set", "help"]).map { "--" + $0 }
        let key = ConfigKey.closest(to: name).map { "--\($0)=..." }
        throw ConfigError.unknownOption(word, suggestion: flag ?? key)
    }
}
