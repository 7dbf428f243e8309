import Foundation
import XCTest
import GPTCore
import GPTData
import GPTTrain
import TestSupport

/// A catalogue of bad inputs, each run through the real `gpt` binary.
///
/// Every case must end with a non-zero exit status (never a crash, never a
/// hang), print exactly one line on stderr that starts with `error:` and says
/// what is wrong and what to do, and leave every file it could touch exactly
/// as it was (no file changed, removed or created). docs/ERRORS.md lists the
/// cases and their messages; with `SWIFTGPT_ERRORS_TABLE=<file>` set, each
/// case appends its row of that table to the file.
final class BadInputTests: XCTestCase {
    override class func tearDown() {
        Fixture.release()
        super.tearDown()
    }

    // MARK: - Cases: config

    func testConfigUnknownKey() throws {
        let w = try Workspace()
        try w.write("run.toml", "batch_szie = 8\n")
        try w.expectError("a misspelt key in the config file", ["train", "run.toml"] + w.trainArgs(),
                          mentions: ["run.toml:1", "unknown config key \"batch_szie\"", "did you mean \"batch_size\""])
    }

    func testConfigWrongType() throws {
        let w = try Workspace()
        try w.write("run.toml", "learning_rate = \"fast\"\n")
        try w.expectError("a string where a number belongs", ["train", "run.toml"] + w.trainArgs(),
                          mentions: ["run.toml:1", "learning_rate must be a number", "\"fast\""])
    }

    func testConfigValueOutOfRange() throws {
        let w = try Workspace()
        try w.expectError("dropout outside [0, 1)", ["train"] + w.trainArgs(["dropout=1.5"]),
                          mentions: ["invalid config", "dropout must be in [0, 1)", "1.5"])
    }

    func testConfigHeadsDoNotDivideWidth() throws {
        let w = try Workspace()
        try w.expectError("n_embd not divisible by n_head", ["train"] + w.trainArgs(["n_embd=50", "n_head=3"]),
                          mentions: ["n_embd (50) must be divisible by n_head (3)"])
    }

    func testConfigHugeBucket() throws {
        let w = try Workspace()
        try w.expectError("a bucket size too large to count in floats", ["train"] + w.trainArgs(["bucket_mb=1e300"]),
                          mentions: ["bucket_mb must be at most"])
    }

    func testBatchTooLargeForMemory() throws {
        try expectMemoryRefusal("a batch_size whose activations do not fit in the machine's memory", "batch_size=100000000",
                                mentions: ["activations", "lower batch_size", "gradient_accumulation_steps"])
    }

    func testModelTooLargeForMemory() throws {
        try expectMemoryRefusal("an n_embd whose parameters and AdamW moments do not fit in the machine's memory",
                                "n_embd=65536", mentions: ["parameters", "adamw moments", "lower n_embd"])
    }

    /// A run of the fixture with `setting` that needs more memory than the machine has:
    /// refused with the estimate before out_dir is created.
    private func expectMemoryRefusal(_ what: String, _ setting: String, mentions: [String],
                                     testName: String = #function) throws {
        let w = try Workspace()
        try w.expectError(what, ["train"] + w.trainArgs([setting]),
                          mentions: ["the run needs about", "physical memory"] + mentions, testName: testName)
        XCTAssertFalse(FileManager.default.fileExists(atPath: w.path("new-run")), "out_dir must not be created")
    }

    func testConfigMalformedTOML() throws {
        let w = try Workspace()
        try w.write("run.toml", "n_layer = 1\nblock_size = [16,\n")
        try w.expectError("malformed TOML", ["train", "run.toml"] + w.trainArgs(),
                          mentions: ["run.toml:", "malformed toml"])
    }

    func testConfigFileMissing() throws {
        let w = try Workspace()
        try w.expectError("a config file that does not exist", ["train", "missing.toml"] + w.trainArgs(),
                          mentions: ["config file \"missing.toml\" not found", "toml file"])
    }

    func testConfigOverrideWithoutValue() throws {
        let w = try Workspace()
        try w.expectError("an override without a value", ["train", "--set", "batch_size"] + w.trainArgs(),
                          mentions: ["\"batch_size\"", "must look like key=value"])
    }

    func testBlockSizeLargerThanCheckpointOnResume() throws {
        let w = try Workspace()
        try w.expectError("a longer block_size than the run's checkpoint, on --resume",
                          ["train", "--resume"] + w.trainArgs(["block_size=32", "max_iters=20"], outDir: "run"),
                          mentions: ["architecture differs", "block_size 32 vs 16", "resume with the config",
                                     "run/config.toml"])
    }

    func testBlockSizeLargerThanInitFromCheckpoint() throws {
        let w = try Workspace()
        try w.expectError("a longer block_size than the init_from checkpoint's model",
                          ["train"] + w.trainArgs(["init_from=run/latest.h5", "block_size=32"]),
                          mentions: ["block_size 32", "init_from checkpoint", "at most 16"])
    }

    func testBlockSizeLongerThanValSplit() throws {
        let w = try Workspace()
        try CorpusMaker(vocabulary: w.vocabulary, train: .uint16(w.tokens(2000)), val: .uint16(w.tokens(10)))
            .write(to: w.path("short-val.h5"))
        try w.expectError("a block_size longer than the val split",
                          ["train"] + w.trainArgs(dataset: "short-val.h5"),
                          mentions: ["block_size 16", "/val", "10 tokens", "lower block_size"])
    }

    // MARK: - Cases: corpus

    func testCorpusMissing() throws {
        let w = try Workspace()
        try w.expectError("a dataset that does not exist", ["train"] + w.trainArgs(dataset: "missing.h5"),
                          mentions: ["dataset missing.h5 not found", "gpt prepare"])
    }

    func testCorpusNotHDF5() throws {
        let w = try Workspace()
        try w.expectError("a text file as dataset", ["train"] + w.trainArgs(dataset: "text.txt"),
                          mentions: ["dataset text.txt", "not an hdf5 file", "gpt prepare"])
    }

    func testCorpusTruncated() throws {
        let w = try Workspace()
        try w.truncate("corpus.h5", to: 0.5)
        try w.expectError("a truncated corpus", ["train"] + w.trainArgs(),
                          mentions: ["dataset corpus.h5", "truncated", "gpt prepare"])
    }

    func testCorpusIsACheckpoint() throws {
        let w = try Workspace()
        try w.expectError("a checkpoint as dataset", ["train"] + w.trainArgs(dataset: "run/latest.h5"),
                          mentions: ["not a swiftgpt corpus", "swiftgpt-checkpoint", "gpt prepare"])
    }

    func testCorpusWithoutValSplit() throws {
        let w = try Workspace()
        try CorpusMaker(vocabulary: w.vocabulary, train: .uint16(w.tokens(2000)), val: .absent)
            .write(to: w.path("no-val.h5"))
        try w.expectError("a corpus without /val", ["train"] + w.trainArgs(dataset: "no-val.h5"),
                          mentions: ["missing dataset '/val'", "prepare it again"])
    }

    func testCorpusFloatTokens() throws {
        let w = try Workspace()
        try CorpusMaker(vocabulary: w.vocabulary, train: .float32(w.tokens(2000).map(Float.init)),
                        val: .uint16(w.tokens(500))).write(to: w.path("float.h5"))
        try w.expectError("float32 token ids", ["train"] + w.trainArgs(dataset: "float.h5"),
                          mentions: ["'/train' holds float32", "uint16 or uint32", "gpt prepare"])
    }

    func testCorpusTokenIDBeyondVocabulary() throws {
        let w = try Workspace()
        var val = w.tokens(500)
        val[321] = UInt16(w.vocabulary.unicodeScalars.count + 7)
        try CorpusMaker(vocabulary: w.vocabulary, train: .uint16(w.tokens(2000)), val: .uint16(val))
            .write(to: w.path("bad-id.h5"))
        try w.expectError("a token id >= vocab_size", ["train"] + w.trainArgs(dataset: "bad-id.h5"),
                          mentions: ["token id \(val[321])", "/val[321]", "vocab_size", "gpt prepare"])
    }

    func testCorpusEmptyValSplit() throws {
        let w = try Workspace()
        try CorpusMaker(vocabulary: w.vocabulary, train: .uint16(w.tokens(2000)), val: .uint16([]))
            .write(to: w.path("empty-val.h5"))
        try w.expectError("an empty /val split", ["train"] + w.trainArgs(dataset: "empty-val.h5"),
                          mentions: ["split 'val' is empty", "more text"])
    }

    func testCorpusTokenizerDiffersFromInitFrom() throws {
        let w = try Workspace()
        try w.expectError("a corpus with another tokenizer than the init_from checkpoint",
                          ["train"] + w.trainArgs(["init_from=run/latest.h5"], dataset: "digits.h5"),
                          mentions: ["different tokenizer", "digits.h5", "checkpoint's tokenizer"])
    }

    // MARK: - Cases: checkpoints

    func testResumeArchitectureDiffers() throws {
        let w = try Workspace()
        try w.expectError("n_layer differs from the run's checkpoint, on --resume",
                          ["train", "--resume"] + w.trainArgs(["n_layer=2", "max_iters=20"], outDir: "run"),
                          mentions: ["architecture differs", "n_layer 2 vs 1", "resume with the config"])
    }

    func testResumeArchitectureOptionDiffers() throws {
        let w = try Workspace()
        try w.expectError("norm and mlp differ from the run's checkpoint (LayerNorm, GELU), on --resume",
                          ["train", "--resume"] + w.trainArgs(["norm=rmsnorm", "mlp=swiglu", "max_iters=20"], outDir: "run"),
                          mentions: ["architecture differs", "norm rmsnorm vs layernorm", "mlp swiglu vs gelu",
                                     "resume with the config"])
    }

    func testInitFromTruncatedCheckpoint() throws {
        let w = try Workspace()
        try w.copy("run/ckpt_0000010.h5", to: "cut.h5")
        try w.truncate("cut.h5", to: 0.6)
        try w.expectError("a truncated init_from checkpoint", ["train"] + w.trainArgs(["init_from=cut.h5"]),
                          mentions: ["init_from cut.h5", "truncated", "set init_from to a checkpoint"])
    }

    func testInitFromCorpusFile() throws {
        let w = try Workspace()
        try w.expectError("a corpus given as init_from", ["train"] + w.trainArgs(["init_from=corpus.h5"]),
                          mentions: ["init_from corpus.h5", "not a swiftgpt checkpoint", "set init_from to a checkpoint"])
    }

    func testInitFromCorruptTensorByte() throws {
        let w = try Workspace()
        try w.copy("run/ckpt_0000010.h5", to: "flipped.h5")
        try flipByteInParameters(w.path("flipped.h5"))
        try w.expectError("one flipped byte in a parameter tensor of the init_from checkpoint",
                          ["train"] + w.trainArgs(["init_from=flipped.h5"]),
                          mentions: ["init_from flipped.h5", "damaged", "set init_from to a checkpoint"])
    }

    func testInitFromMissingCheckpoint() throws {
        let w = try Workspace()
        try w.expectError("an init_from checkpoint that does not exist",
                          ["train"] + w.trainArgs(["init_from=run/ckpt_0000099.h5"]),
                          mentions: ["init_from checkpoint run/ckpt_0000099.h5 not found", "scratch"])
    }

    func testResumeWhenEveryCheckpointIsDamaged() throws {
        let w = try Workspace()
        try w.truncate("run/ckpt_0000010.h5", to: 0.5)
        try w.truncate("run/ckpt_0000005.h5", to: 0.5)
        try w.expectError("--resume when every checkpoint is damaged",
                          ["train", "--resume"] + w.trainArgs(["max_iters=20"], outDir: "run"),
                          mentions: ["nothing to resume", "run/ckpt_0000010.h5 is unreadable",
                                     "run/ckpt_0000005.h5 is unreadable", "restore a checkpoint"])
    }

    func testResumeWithoutCheckpoint() throws {
        let w = try Workspace()
        try w.expectError("--resume with no checkpoint in out_dir", ["train", "--resume"] + w.trainArgs(outDir: "fresh"),
                          mentions: ["nothing to resume", "no checkpoint in fresh", "start without --resume"])
    }

    func testNewRunInExistingRunDirectory() throws {
        let w = try Workspace()
        try w.expectError("a new run into an out_dir holding a run's checkpoints", ["train"] + w.trainArgs(outDir: "run"),
                          mentions: ["out_dir run already holds", "--resume", "another out_dir"])
    }

    // MARK: - Cases: launch

    func testOutDirUnderRegularFile() throws {
        let w = try Workspace()
        try w.expectError("out_dir inside a regular file", ["train"] + w.trainArgs(outDir: "text.txt/run"),
                          mentions: ["cannot create out_dir text.txt/run", "not a directory", "writable directory"])
    }

    func testOutDirIsRegularFile() throws {
        let w = try Workspace()
        try w.expectError("out_dir naming a regular file", ["train"] + w.trainArgs(outDir: "text.txt"),
                          mentions: ["out_dir text.txt is a file", "writable directory"])
    }

    func testOutDirOnReadOnlyFileSystem() throws {
        let w = try Workspace()
        let mount = try TmpfsMount(at: w.path("ro"), options: "ro,size=64k")
        defer { mount.unmount() }
        try w.expectError("out_dir on a read-only file system", ["train"] + w.trainArgs(outDir: "ro/run"),
                          mentions: ["cannot create out_dir ro/run", "read-only file system", "writable directory"])
    }

    func testSamplePromptOutsideCorpusVocabulary() throws {
        let w = try Workspace()
        try w.expectError("a sample_prompt with characters the corpus lacks",
                          ["train"] + w.trainArgs(["sample_tokens=20", "sample_prompt=the ü"]),
                          mentions: ["sample_prompt", "'ü' (U+00FC) at position 4", "sample_tokens = 0"])
    }

    /// A full disk while a checkpoint is written: the run stops with one line, the
    /// previous checkpoint stays intact and `latest.h5` points at it; once there is
    /// room again, --resume continues from it.
    func testDiskFullWhileWritingCheckpoint() throws {
        let w = try Workspace()
        let mount = try TmpfsMount(at: w.path("small"), options: "size=\(Fixture.checkpointBytes * 3 / 2 / 1024)k")
        defer { mount.unmount() }
        let args = ["train"] + w.trainArgs(["max_iters=30", "keep_checkpoints=0"], outDir: "small/run")
        let line = try w.expectError("the disk fills up while a checkpoint is written", args,
                                     mentions: ["no space left in out_dir small/run", "small/run/ckpt_0000010.h5",
                                                "--resume", "latest.h5 still points at ckpt_0000005.h5"],
                                     checkUnchanged: false)
        XCTAssertFalse(line.isEmpty)
        let names = try FileManager.default.contentsOfDirectory(atPath: w.path("small/run")).sorted()
            .filter { !$0.hasPrefix("events.out.tfevents.") }
        XCTAssertEqual(names, ["best.h5", "ckpt_0000005.h5", "config.toml", "latest.h5", "metrics.jsonl"],
                       "no partial checkpoint or temporary file may stay behind")
        let latest = try Checkpoint.read(from: w.path("small/run/latest.h5"))
        XCTAssertEqual(latest.step, 5)
        try mount.resize(options: "size=4m")
        let resumed = try w.gpt(["train", "--resume"] + w.trainArgs(["max_iters=15", "keep_checkpoints=0"],
                                                                     outDir: "small/run"))
        XCTAssertEqual(resumed.status, 0, resumed.output)
        XCTAssertTrue(resumed.output.contains("resuming from small/run/ckpt_0000005.h5 at step 5"), resumed.output)
        XCTAssertEqual(try Checkpoint.read(from: w.path("small/run/latest.h5")).step, 15)
    }

    // MARK: - Cases: sample, eval, inspect, prepare

    func testSampleMissingCheckpoint() throws {
        let w = try Workspace()
        try w.expectError("sample from a checkpoint that does not exist", ["sample", "run/ckpt_0000099.h5"],
                          mentions: ["checkpoint run/ckpt_0000099.h5 not found", "gpt train"])
    }

    func testSampleRunDirectoryWithoutCheckpoint() throws {
        let w = try Workspace()
        try FileManager.default.createDirectory(atPath: w.path("empty-run"), withIntermediateDirectories: false)
        try w.expectError("sample from a run directory without latest.h5", ["sample", "empty-run"],
                          mentions: ["empty-run holds no checkpoint", "latest.h5", "train first"])
    }

    func testSamplePromptOutsideVocabulary() throws {
        let w = try Workspace()
        try w.expectError("a prompt with characters outside the vocabulary", ["sample", "run", "--prompt", "the ü"],
                          mentions: ["--prompt", "'ü' (U+00FC) at position 4", "run/latest.h5",
                                     "characters of its training text"])
    }

    func testSampleCorpusGivenAsCheckpoint() throws {
        let w = try Workspace()
        try w.expectError("a corpus given to sample", ["sample", "corpus.h5"],
                          mentions: ["not a swiftgpt checkpoint", "give a checkpoint written by `gpt train`"])
    }

    func testSampleWithoutCheckpointArgument() throws {
        let w = try Workspace()
        try w.expectError("sample without its checkpoint argument", ["sample", "--tokens", "5"],
                          mentions: ["missing expected argument", "gpt sample --help"], status: 64)
    }

    func testEvalWhenTrainingCorpusIsGone() throws {
        let w = try Workspace()
        try FileManager.default.removeItem(atPath: w.path("corpus.h5"))
        try w.expectError("eval of a checkpoint whose corpus was moved", ["eval", "run/latest.h5", "--iters", "2"],
                          mentions: ["corpus.h5", "is not there", "pass --dataset"])
    }

    func testInspectNotHDF5() throws {
        let w = try Workspace()
        try w.expectError("inspect of a text file", ["inspect", "text.txt"],
                          mentions: ["text.txt", "not an hdf5 file", "gpt prepare", "gpt train"])
    }

    func testPrepareMissingInput() throws {
        let w = try Workspace()
        try w.expectError("prepare of a text file that does not exist", ["prepare", "--out", "new.h5", "missing.txt"],
                          mentions: ["input text file missing.txt not found", "utf-8 text file"])
    }

    func testPrepareEmptyInput() throws {
        let w = try Workspace()
        try w.write("empty.txt", "")
        try w.expectError("prepare of an empty file", ["prepare", "--out", "new.h5", "empty.txt"],
                          mentions: ["input text file empty.txt is empty", "training text"])
    }

    func testPrepareBinaryInput() throws {
        let w = try Workspace()
        try w.expectError("prepare of a binary file", ["prepare", "--out", "new.h5", "corpus.h5"],
                          mentions: ["corpus.h5", "not utf-8 text", "utf-8 text files"])
    }

    func testPrepareOutputInMissingDirectory() throws {
        let w = try Workspace()
        try w.expectError("prepare into a directory that does not exist", ["prepare", "--out", "nowhere/new.h5", "text.txt"],
                          mentions: ["nowhere/new.h5", "does not exist", "create it first"])
    }

    // MARK: - Cases: several ranks

    func testMPIBadCorpusStopsEveryRank() throws {
        let w = try Workspace()
        try w.expectError("a bad dataset under mpirun -np 2", ["train"] + w.trainArgs(dataset: "text.txt"),
                          mentions: ["dataset text.txt", "not an hdf5 file"], ranks: 2)
    }

    /// Only rank 1 reads the damaged half of /train; every rank must still stop, with one message.
    func testMPIBadTokenInOneRanksSliceStopsEveryRank() throws {
        let w = try Workspace()
        var train = w.tokens(4000)
        train[3500] = 999
        try CorpusMaker(vocabulary: w.vocabulary, train: .uint16(train), val: .uint16(w.tokens(500)))
            .write(to: w.path("bad-half.h5"))
        try w.expectError("a token id >= vocab_size in rank 1's slice, under mpirun -np 2",
                          ["train"] + w.trainArgs(dataset: "bad-half.h5"),
                          mentions: ["token id 999", "/train[3500]", "gpt prepare"], ranks: 2)
    }

    /// A full disk while rank 0 writes a checkpoint is rank 0's error alone: it must end
    /// the whole job (the other ranks wait in the next step's allreduce), not hang it.
    func testMPIDiskFullWhileWritingCheckpointEndsTheJob() throws {
        let w = try Workspace()
        let mount = try TmpfsMount(at: w.path("small"), options: "size=\(Fixture.checkpointBytes * 3 / 2 / 1024)k")
        defer { mount.unmount() }
        try w.expectError("the disk fills up while rank 0 writes a checkpoint, under mpirun -np 2",
                          ["train"] + w.trainArgs(["max_iters=30"], outDir: "small/run"),
                          mentions: ["no space left in out_dir small/run", "latest.h5 still points at ckpt_0000005.h5"],
                          ranks: 2, checkUnchanged: false)
        XCTAssertEqual(try Checkpoint.read(from: w.path("small/run/latest.h5")).step, 5)
    }

    // MARK: - The catalogue in docs/ERRORS.md

    /// Every case above has its row in docs/ERRORS.md, and every row there is a case.
    func testErrorCatalogueIsDocumented() throws {
        let root = packageRootPath()
        let source = try String(contentsOfFile: root + "/Tests/GPTTrainTests/BadInputTests.swift", encoding: .utf8)
        let doc = try String(contentsOfFile: root + "/docs/ERRORS.md", encoding: .utf8)
        func names(_ text: String, _ pattern: String) throws -> Set<String> {
            let regex = try NSRegularExpression(pattern: pattern, options: [.anchorsMatchLines])
            let range = NSRange(text.startIndex..., in: text)
            return Set(regex.matches(in: text, range: range).compactMap { Range($0.range(at: 1), in: text).map { String(text[$0]) } })
        }
        let cases = try names(source, #"^    func (test\w+)\(\) throws \{"#).subtracting(["testErrorCatalogueIsDocumented"])
        let rows = try names(doc, #"^\| `(test\w+)` \|"#)
        XCTAssertGreaterThanOrEqual(cases.count, 25)
        XCTAssertEqual(cases.subtracting(rows).sorted(), [], "cases without a row in docs/ERRORS.md")
        XCTAssertEqual(rows.subtracting(cases).sorted(), [], "rows of docs/ERRORS.md without a case")
    }
}

// MARK: - The shared run

/// A small corpus and a trained run, made once, that each case copies into its own workspace.
final class Fixture {
    /// The model every case trains: small enough that a run takes well under a second.
    static let model = ["n_layer=1", "n_head=2", "n_embd=16", "block_size=16"]
    static let quick = ["batch_size=4", "eval_iters=2", "sample_tokens=0", "threads=1", "warmup_iters=2",
                        "lr_decay_iters=20", "eval_interval=5", "max_iters=10"]
    /// Bytes of one checkpoint (with optimizer state) of `model`, measured on the fixture.
    nonisolated(unsafe) static var checkpointBytes = 0

    let directory: TemporaryDirectory
    let vocabulary: String

    private nonisolated(unsafe) static var shared: Fixture?

    static func get() throws -> Fixture {
        if let f = shared { return f }
        let f = try Fixture()
        shared = f
        return f
    }

    /// Drops the shared fixture, removing its directory.
    static func release() { shared = nil }

    /// text.txt and corpus.h5 (words), digits.h5 (another alphabet), and run/: 10 steps
    /// with checkpoints at steps 5 and 10.
    private init() throws {
        directory = try TemporaryDirectory(prefix: "swiftgpt-bad-input")
        let words = ["the", "king", "and", "queen", "of", "a", "land", "far", "away", "said", "to", "his", "her",
                     "son", "walked", "over", "hill", "river", "night", "morning", "light", "we", "shall", "not"]
        var rng = SplitMix64(seed: 42)
        var text = ""
        while text.unicodeScalars.count < 60_000 {
            text += words[rng.nextInt(below: words.count)]
            text += [" ", " ", " ", ", ", ". ", ".\n", "? "][rng.nextInt(below: 7)]
        }
        try text.write(toFile: directory.file("text.txt"), atomically: false, encoding: .utf8)
        var digits = ""
        while digits.count < 5_000 { digits += String(rng.nextInt(below: 100_000)) + [" + ", " = ", "\n"][rng.nextInt(below: 3)] }
        try digits.write(toFile: directory.file("digits.txt"), atomically: false, encoding: .utf8)
        vocabulary = String(String.UnicodeScalarView(Set(text.unicodeScalars).sorted { $0.value < $1.value }))
        for (input, output) in [("text.txt", "corpus.h5"), ("digits.txt", "digits.h5")] {
            let r = try run(try GPTBinary.path(), ["prepare", "--out", output, input], directory: directory.path, timeout: 60)
            guard r.status == 0 else { throw TrainError("fixture: gpt prepare \(input) failed: \(r.output)") }
        }
        let args = ["train", "--set", "dataset=corpus.h5", "--set", "out_dir=run"]
            + (Self.model + Self.quick).flatMap { ["--set", $0] }
        let r = try run(try GPTBinary.path(), args, directory: directory.path, timeout: 120)
        guard r.status == 0 else { throw TrainError("fixture: gpt train failed: \(r.output)") }
        let size = try FileManager.default.attributesOfItem(atPath: directory.file("run/ckpt_0000005.h5"))[.size] as? Int
        Self.checkpointBytes = size ?? 0
    }
}

// MARK: - A workspace per case

/// A fresh copy of the fixture in which one case runs `gpt` (the working directory,
/// so paths and messages are relative) and checks what it did.
private struct Workspace {
    let directory: TemporaryDirectory
    let vocabulary: String

    init() throws {
        let fixture = try Fixture.get()
        directory = try TemporaryDirectory(prefix: "swiftgpt-case")
        vocabulary = fixture.vocabulary
        let r = try runProcess("/bin/cp", ["-a", fixture.directory.path + "/.", directory.path])
        guard r.status == 0 else { throw TrainError("cannot copy the fixture: \(r.output)") }
    }

    func path(_ name: String) -> String { directory.file(name) }

    func write(_ name: String, _ text: String) throws {
        try text.write(toFile: path(name), atomically: false, encoding: .utf8)
    }

    func copy(_ name: String, to other: String) throws {
        try FileManager.default.copyItem(atPath: path(name), toPath: path(other))
    }

    /// Cuts the file to `fraction` of its length.
    func truncate(_ name: String, to fraction: Double) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path(name)))
        try data.prefix(Int(Double(data.count) * fraction)).write(to: URL(fileURLWithPath: path(name)))
    }

    /// `n` token ids of the vocabulary (a fixed pseudo-random sequence).
    func tokens(_ n: Int) -> [UInt16] {
        var rng = SplitMix64(seed: UInt64(n))
        let v = vocabulary.unicodeScalars.count
        return (0..<n).map { _ in UInt16(rng.nextInt(below: v)) }
    }

    /// `--set` arguments of a small run: the fixture's model and schedule, then `extra`.
    func trainArgs(_ extra: [String] = [], dataset: String = "corpus.h5", outDir: String = "new-run") -> [String] {
        (["dataset=\(dataset)", "out_dir=\(outDir)"] + Fixture.model + Fixture.quick + extra).flatMap { ["--set", $0] }
    }

    /// Runs `gpt` in the workspace, stdout and stderr merged.
    func gpt(_ args: [String], timeout: Double = 120) throws -> RunResult {
        try run(try GPTBinary.path(), args, directory: directory.path, timeout: timeout)
    }

    /// Runs `gpt args` (under `mpirun -np ranks` when ranks > 1), expecting it to fail
    /// with status `status` and one stderr line `error: ...` that mentions each of
    /// `mentions` (case-insensitive), leaving every file in the workspace as it was
    /// unless `checkUnchanged` is false. Returns the line.
    @discardableResult
    func expectError(_ what: String, _ args: [String], mentions: [String], status: Int32 = 1, ranks: Int = 1,
                     checkUnchanged: Bool = true, testName: String = #function,
                     file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let before = try FileSnapshot(directory.path)
        let stderrPath = NSTemporaryDirectory() + "gpt-stderr-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: stderrPath) }
        let command = "gpt " + args.joined(separator: " ")
        let result: RunResult
        var errorLines: [String]
        if ranks > 1 {
            guard let mpirun = findExecutable("mpirun") else { throw XCTSkip("mpirun is not installed") }
            result = try run(mpirun, ["-np", String(ranks), "--oversubscribe", "--allow-run-as-root",
                                      try GPTBinary.path()] + args, directory: directory.path, timeout: 120)
            // mpirun adds its own banner about the failed job; the ranks must print one error line in all.
            errorLines = result.output.split(separator: "\n").map(String.init).filter { $0.hasPrefix("error:") }
            XCTAssertEqual(errorLines.count, 1, "\(command): exactly one error line over all ranks:\n\(result.output)",
                           file: file, line: line)
        } else {
            // sh redirects stderr to its own file and then becomes gpt (exec).
            result = try run("/bin/sh", ["-c", "exec \"$@\" 2>\"$GPT_STDERR\"", "sh", try GPTBinary.path()] + args,
                             environment: ["GPT_STDERR": stderrPath], directory: directory.path, timeout: 120)
            let stderr = (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? ""
            errorLines = stderr.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            XCTAssertEqual(errorLines.count, 1, "\(command): stderr must be one line:\n\(stderr)", file: file, line: line)
            XCTAssertTrue(errorLines.first?.hasPrefix("error: ") ?? false, "\(command): \(stderr)", file: file, line: line)
        }
        let message = errorLines.first ?? ""
        XCTAssertFalse(result.timedOut, "\(command) hung:\n\(result.output)", file: file, line: line)
        if ranks > 1 {
            XCTAssertNotEqual(result.status, 0, "\(command) must fail:\n\(result.output)", file: file, line: line)
        } else {
            XCTAssertEqual(result.status, status, "\(command) must exit with \(status):\n\(result.output)\n\(message)",
                           file: file, line: line)
        }
        for marker in ["Fatal error", "Backtrac", "crashed", "Segmentation"] {
            XCTAssertFalse(result.output.contains(marker), "\(command) crashed:\n\(result.output)", file: file, line: line)
        }
        for word in mentions {
            XCTAssertTrue(message.lowercased().contains(word.lowercased()), "\(command): the message must mention "
                + "\"\(word)\":\n\(message)", file: file, line: line)
        }
        if checkUnchanged {
            let changes = try FileSnapshot(directory.path).changes(since: before)
            XCTAssertEqual(changes, [], "\(command) changed files", file: file, line: line)
        }
        try recordRow(testName: testName, what: what, args: args, ranks: ranks, message: message)
        return message
    }

    /// Appends this case's row of docs/ERRORS.md to $SWIFTGPT_ERRORS_TABLE, when set.
    private func recordRow(testName: String, what: String, args: [String], ranks: Int, message: String) throws {
        guard let table = ProcessInfo.processInfo.environment["SWIFTGPT_ERRORS_TABLE"], !table.isEmpty else { return }
        let common = Set((Fixture.model + Fixture.quick).flatMap { ["--set", $0] })
        var shown: [String] = []
        var i = 0
        while i < args.count {
            if args[i] == "--set", i + 1 < args.count, common.contains(args[i + 1]) { i += 2; continue }
            shown.append(args[i])
            i += 1
        }
        let launcher = ranks > 1 ? "mpirun -np \(ranks) gpt" : "gpt"
        let name = testName.replacingOccurrences(of: "()", with: "")
        // Paths inside the workspace as the user would see them from the run's directory.
        func cell(_ s: String) -> String {
            s.replacingOccurrences(of: directory.path + "/", with: "").replacingOccurrences(of: "|", with: "\\|")
        }
        let row = "| `\(name)` | \(cell(what)) | `\(cell(launcher + " " + shown.joined(separator: " ")))` | \(cell(message)) |\n"
        if !FileManager.default.fileExists(atPath: table) { FileManager.default.createFile(atPath: table, contents: nil) }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: table))
        defer { try? handle.close() }
        handle.seekToEndOfFile()
        handle.write(Data(row.utf8))
    }
}

// MARK: - Files with defects

/// Writes a corpus file with chosen defects through GPTData's H5File.
private struct CorpusMaker {
    /// What a token dataset holds.
    enum Tokens {
        case uint16([UInt16])
        case float32([Float])
        case absent
    }

    var vocabulary: String
    var train: Tokens
    var val: Tokens

    func write(to path: String) throws {
        let file = try H5File.create(path)
        defer { file.close() }
        try file.setAttribute("format", CorpusFile.format)
        try file.setAttribute("format_version", CorpusFile.formatVersion)
        try file.setAttribute("vocab_size", vocabulary.unicodeScalars.count)
        try file.setAttribute("tokenizer_kind", CharTokenizer.kindName)
        try file.setAttribute("tokenizer", vocabulary)
        for (name, tokens) in [("/train", train), ("/val", val)] {
            switch tokens {
            case .uint16(let ids): try file.write(ids, shape: [ids.count], to: name, chunk: 1024)
            case .float32(let ids): try file.write(ids, shape: [ids.count], to: name, chunk: 1024)
            case .absent: break
            }
        }
        try file.flush()
    }
}

/// Flips one bit in the stored data of the checkpoint's first parameter tensor
/// (found by its bytes: tensors are stored uncompressed).
func flipByteInParameters(_ path: String) throws {
    let ckpt = try Checkpoint.read(from: path)
    let first = ParameterLayout(config: ckpt.modelConfig).tensors[0]
    let needle = ckpt.parameters[first.offset ..< first.offset + 16].withUnsafeBytes { Data($0) }
    var data = try Data(contentsOf: URL(fileURLWithPath: path))
    guard let range = data.range(of: needle) else {
        throw TrainError("\(path): the bytes of tensor \(first.name) were not found")
    }
    data[range.lowerBound + 5] ^= 0x10
    try data.write(to: URL(fileURLWithPath: path))
}

/// Every file, symbolic link and directory under a root, with contents and mtimes.
struct FileSnapshot {
    private var entries: [String: String] = [:]

    init(_ root: String) throws {
        let fm = FileManager.default
        for relative in fm.enumerator(atPath: root)?.compactMap({ $0 as? String }) ?? [] {
            let path = root + "/" + relative
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            switch info.st_mode & S_IFMT {
            case S_IFLNK:
                entries[relative] = "link -> " + ((try? fm.destinationOfSymbolicLink(atPath: path)) ?? "?")
            case S_IFDIR:
                entries[relative] = "directory"
            default:
                let data = (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()
                var hash: UInt64 = 0xCBF2_9CE4_8422_2325
                for byte in data { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3 }
                entries[relative] = "file \(data.count) bytes, fnv \(String(hash, radix: 16)), "
                    + "mtime \(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"
            }
        }
    }

    /// What differs from `earlier`: one line per file added, removed or changed.
    func changes(since earlier: FileSnapshot) -> [String] {
        var out: [String] = []
        for (name, now) in entries.sorted(by: { $0.key < $1.key }) {
            if let then = earlier.entries[name] {
                if then != now { out.append("changed \(name): \(then) -> \(now)") }
            } else {
                out.append("created \(name)")
            }
        }
        for name in earlier.entries.keys.sorted() where entries[name] == nil { out.append("removed \(name)") }
        return out
    }
}

/// A tmpfs mounted for one case (we run as root); skips the case where mounting is not allowed.
final class TmpfsMount {
    let path: String
    private var mounted = false

    init(at path: String, options: String) throws {
        self.path = path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let r = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", options, "tmpfs", path])
        guard r.status == 0 else { throw XCTSkip("cannot mount a tmpfs here (needs root): \(r.output)") }
        mounted = true
    }

    /// Remounts with new options (e.g. a larger size).
    func resize(options: String) throws {
        let r = try runProcess("/bin/mount", ["-o", "remount," + options, path])
        guard r.status == 0 else { throw TrainError("cannot remount \(path): \(r.output)") }
    }

    func unmount() {
        guard mounted else { return }
        _ = try? runProcess("/bin/umount", [path])
        mounted = false
    }

    deinit { unmount() }
}
