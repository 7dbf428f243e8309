import ArgumentParser
import Foundation
import GPTTrain

/// `gpt supervise --out-dir runs/x [--max-restarts N] -- mpirun -np 4 gpt train cfg.toml`, or, elastic,
/// `gpt supervise --elastic --hostfile H --min-np 2 --out-dir runs/x -- gpt train cfg.toml`
///
/// Runs a training job and, when it exits with an error (a rank died, the watchdog aborted a hung
/// collective, a node was lost), starts it again from the newest good checkpoint, up to N times.
/// With --elastic it builds the mpirun command itself, drops the hosts that are gone and continues
/// on the survivors with the same tokens per step, and grows the world again when they return.
struct SuperviseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "supervise",
        abstract: "Run a training command and restart it from the newest good checkpoint when it fails.",
        discussion: """
            Example: gpt supervise --out-dir runs/big --max-restarts 5 -- mpirun -np 8 --hostfile hosts gpt train big.toml
            Elastic (see docs/DISTRIBUTED.md): gpt supervise --elastic --hostfile hosts --min-np 4 --out-dir runs/big -- gpt train big.toml
            """)

    @Option(help: "The run's out_dir (where latest.h5 and metrics.jsonl are).") var outDir: String
    @Option(help: "Restarts after failures allowed before giving up.") var maxRestarts = 3
    @Option(help: "Seconds to wait before a restart.") var delay = 2.0
    @Option(help: "Seconds a job may keep running after its watchdog fired before it is killed (mpirun can wait minutes for a lost host).")
    var hangGrace = 10.0
    @OptionGroup(title: "Elastic runs") var elastic: ElasticOptions
    @Argument(parsing: .captureForPassthrough, help: "The command, after --.") var command: [String] = []

    func validate() throws {
        if command.first == "--" { return }
        guard !command.isEmpty else { throw ValidationError("give the training command after --, e.g. -- mpirun -np 4 gpt train cfg.toml") }
    }

    func run() throws {
        let cmd = command.first == "--" ? Array(command.dropFirst()) : command
        guard !cmd.isEmpty else { throw ValidationError("give the training command after --") }
        let job = SupervisedJob(outDir: outDir, hangGrace: hangGrace, say: Self.say)
        if elastic.elastic {
            do {
                let loop = try ElasticSupervisor(options: elastic, train: cmd, job: job, maxRestarts: maxRestarts, delay: delay)
                try loop.run()
            } catch { fail(error) }
            return
        }
        try restartLoop(cmd, job: job)
    }

    /// The plain mode: the same command again, with --resume once a checkpoint exists.
    private func restartLoop(_ command: [String], job: SupervisedJob) throws {
        var cmd = command
        var restarts = 0
        while true {
            let status = job.run(cmd).status
            if status == 0 {
                Self.say("job finished" + (restarts > 0 ? " after \(restarts) restart(s)" : ""))
                return
            }
            guard restarts < maxRestarts else {
                Self.say("job failed with exit status \(status); giving up after \(restarts) restart(s) (--max-restarts \(maxRestarts))")
                throw ExitCode(status == 0 ? 1 : status)
            }
            restarts += 1
            let latest = outDir + "/latest.h5"
            let hasCheckpoint = FileManager.default.fileExists(atPath: latest)
            if hasCheckpoint && !cmd.contains("--resume") { cmd.append("--resume") }
            Self.say("job failed with exit status \(status); restart \(restarts)/\(maxRestarts) "
                + (hasCheckpoint ? "from the newest good checkpoint in \(outDir)" : "from scratch (no checkpoint yet)"))
            if let log = try? MetricsLog(directory: outDir) {
                try? log.log("restart", step: -1, ["restart": .int(restarts), "exit_status": .int(Int(status)),
                                                   "from_checkpoint": .bool(hasCheckpoint)])
                log.close()
            }
            Thread.sleep(forTimeInterval: delay)
        }
    }

    /// One line of the supervisor's log, time-stamped.
    static func say(_ line: String) {
        let stamp = ISO8601DateFormatter().string(from: Date())
        print("[supervise \(stamp)] \(line)")
        fflush(stdout)
    }
}

/// The options of `gpt supervise --elastic`.
struct ElasticOptions: ParsableArguments {
    @Flag(help: "Elastic: build the mpirun command for the usable hosts, drop lost hosts, take returning ones back.")
    var elastic = false
    @Option(help: "Elastic: hostfile (host, host:SLOTS or host slots=SLOTS a line; read again at every decision).")
    var hostfile: String?
    @Option(help: "Elastic: a program printing the usable hosts, one a line (host or host:SLOTS), as Horovod's.")
    var hostDiscoveryScript: String?
    @Option(help: "Elastic: slots of a host listed without a count.") var slotsPerHost = 1
    @Option(help: "Elastic: the fewest ranks to train on.") var minNp = 1
    @Option(help: "Elastic: the fewest hosts to train on.") var minHosts = 1
    @Option(help: "Elastic: the command that starts the job, with its fixed options (split at spaces).")
    var launcher = "mpirun"
    @Option(help: "Elastic: mpirun's remote shell, also used to probe hosts (default: $OMPI_MCA_plm_rsh_agent, else ssh).")
    var rshAgent: String?
    @Option(help: "Elastic: seconds a host has to answer the probe.") var probeTimeout = 5.0
    @Option(help: "Elastic: seconds between looks for returning hosts while the job runs (0: never grow).")
    var rejoinInterval = 30.0

    func validate() throws {
        guard elastic || (hostfile == nil && hostDiscoveryScript == nil) else {
            throw ValidationError("--hostfile and --host-discovery-script are for elastic runs; add --elastic")
        }
        guard !(hostfile != nil && hostDiscoveryScript != nil) else {
            throw ValidationError("give either --hostfile or --host-discovery-script, not both")
        }
        guard minNp >= 1, minHosts >= 1, slotsPerHost >= 1 else {
            throw ValidationError("--min-np, --min-hosts and --slots-per-host must be at least 1")
        }
    }

    /// Where the hosts are listed: the hostfile, the script, else the Slurm allocation.
    func hostSource() throws -> HostSource {
        if let hostfile { return .hostfile(hostfile) }
        if let hostDiscoveryScript { return .script(hostDiscoveryScript) }
        if let list = ProcessInfo.processInfo.environment["SLURM_JOB_NODELIST"], !list.isEmpty { return .slurm(list) }
        throw TrainError("elastic: no hosts given; use --hostfile H or --host-discovery-script S, or run inside a Slurm allocation")
    }
}
