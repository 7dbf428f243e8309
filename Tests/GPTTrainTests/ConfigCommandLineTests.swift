import Foundation
import GPTTrain
import TestSupport
import XCTest

/// `gpt train`'s command-line forms: `--set k=v` (repeatable), `--set k1=v1 k2=v2`, `--key=value`.
extension ConfigTests {
    // MARK: - Command line

    /// The config path and overrides of `gpt train`'s words.
    private func parse(_ words: [String]) throws -> TrainArguments { try TrainArguments(parsing: words) }

    func testCommandLineForms() throws {
        XCTAssertEqual(try parse([]), TrainArguments())
        XCTAssertEqual(try parse(["cfg.toml"]), TrainArguments(configPath: "cfg.toml"))
        // --set repeated, the old form.
        XCTAssertEqual(try parse(["--set", "a=1", "--set", "b=2", "cfg.toml"]),
                       TrainArguments(configPath: "cfg.toml", overrides: ["a=1", "b=2"]))
        // Several key=value after one --set; the first word without '=' is the config path.
        XCTAssertEqual(try parse(["--set", "a=1", "b=2", "cfg.toml"]), TrainArguments(configPath: "cfg.toml", overrides: ["a=1", "b=2"]))
        XCTAssertEqual(try parse(["cfg.toml", "--set", "a=1", "b=2"]), TrainArguments(configPath: "cfg.toml", overrides: ["a=1", "b=2"]))
        XCTAssertEqual(message { try self.parse(["--set", "a=1", "cfg.toml", "b=2"]) },
                       "unexpected argument \"b=2\": the config file is already \"cfg.toml\"; write overrides as --set key=value or --key=value")
        // nanoGPT's --key=value, and --set=key=value, mixed with the rest in any order.
        XCTAssertEqual(try parse(["--batch_size=32", "cfg.toml", "--max_iters=500", "--set", "seed=1", "seed=2", "--set=seed=3"]),
                       TrainArguments(configPath: "cfg.toml", overrides: ["--batch_size=32", "--max_iters=500", "seed=1", "seed=2", "seed=3"]))
        // After "--" every word is a path.
        XCTAssertEqual(try parse(["--batch_size=1", "--", "-odd.toml"]), TrainArguments(configPath: "-odd.toml", overrides: ["--batch_size=1"]))
        // Values may contain '=' and dashes.
        XCTAssertEqual(try parse(["--set", "sample_prompt=a=b", "--sample_prompt=-x"]).overrides, ["sample_prompt=a=b", "--sample_prompt=-x"])
    }

    func testCommandLineFormsLoad() throws {
        let path = try write("batch_size = 8\nseed = 5\n")
        let words = try parse(["--batch_size=32", path, "--set", "max_iters=500", "seed=7", "--set", "eval_iters=3"])
        let c = try TrainConfig.load(path: words.configPath, overrides: words.overrides)
        XCTAssertEqual([c.batchSize, c.maxIters, c.seed, c.evalIters], [32, 500, 7, 3])
        // An unknown key in any form names the valid keys.
        for form in [["--batch_sise=3"], ["--set", "batch_sise=3"], ["--set", "seed=1", "batch_sise=3"]] {
            let m = message { () throws -> Any in try TrainConfig.load(path: nil, overrides: self.parse(form).overrides) }
            XCTAssertTrue(m.hasPrefix("command-line override: unknown config key \"batch_sise\" (did you mean \"batch_size\"?); valid keys: out_dir, "), m)
        }
    }

    func testCommandLineErrors() {
        XCTAssertEqual(message { try self.parse(["--set"]) }, "--set needs a key=value after it, e.g. --set batch_size=32")
        XCTAssertEqual(message { try self.parse(["--set", "--resume"]) }, "--set needs a key=value after it, e.g. --set batch_size=32")
        XCTAssertEqual(message { try self.parse(["--set", "batch_size"]) },
                       "override \"batch_size\" must look like key=value, e.g. batch_size=32")
        XCTAssertEqual(message { try self.parse(["--batch_size", "32"]) },
                       "override \"--batch_size\" must look like key=value, e.g. batch_size=32")
        XCTAssertEqual(message { try self.parse(["a.toml", "b.toml"]) },
                       "unexpected argument \"b.toml\": the config file is already \"a.toml\"; write overrides as --set key=value or --key=value")
        let typo = message { try self.parse(["--resum"]) }
        XCTAssertTrue(typo.hasPrefix("unknown option \"--resum\" (did you mean \"--resume\"?); gpt train takes"), typo)
        let key = message { try self.parse(["--batch_sise"]) }
        XCTAssertTrue(key.hasPrefix("unknown option \"--batch_sise\" (did you mean \"--batch_size=...\"?)"), key)
        let far = message { try self.parse(["-v"]) }
        XCTAssertTrue(far.hasPrefix("unknown option \"-v\"; "), far)
    }

    /// The real binary takes every form, in any order with the config path and --resume.
    func testCommandLineFormsEndToEnd() throws {
        let path = try write("seed = 5\n")
        // Each form sets a key to an invalid value: the error lists all four, so every form reached the config.
        let r = try gpt(["train", "--batch_size=0", path, "--set", "max_iters=0", "eval_iters=0", "--resume",
                         "--set", "log_interval=0"], expectSuccess: false)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("error: invalid config: log_interval must be at least 1 (got 0); "
                                        + "eval_iters must be at least 1 (got 0); batch_size must be at least 1 (got 0); "
                                        + "max_iters must be at least 1 (got 0)"), r.output)
        let typo = try gpt(["train", path, "--set", "seed=1", "batch_sise=3"], expectSuccess: false)
        XCTAssertTrue(typo.output.contains("error: command-line override: unknown config key \"batch_sise\" "
                                           + "(did you mean \"batch_size\"?); valid keys: out_dir, "), typo.output)
        let help = try gpt(["train", "--help"])
        XCTAssertTrue(help.output.contains("--set key=value"), help.output)
        XCTAssertTrue(help.output.contains("--resume"), help.output)
    }
}
