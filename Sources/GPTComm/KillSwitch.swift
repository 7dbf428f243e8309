// A test hook for failure drills: one rank of a training run SIGKILLs itself
// at a chosen step, as a crashed or OOM-killed process would vanish, or
// SIGSTOPs itself, as a hung node would stop answering, so that tests can
// prove the job ends instead of hanging. Inert unless both of the first two
// environment variables are set:
//
//   SWIFTGPT_TEST_KILL_RANK=R      the rank that dies
//   SWIFTGPT_TEST_KILL_STEP=S      it dies when it starts step S (after S finished steps)
//   SWIFTGPT_TEST_KILL_SIGNAL=KILL KILL (the default) or STOP
//
// Package access only: the trainer uses it, GPTComm's public API does not offer it.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// MARK: - KillSwitch

/// Makes one rank kill (or stop) itself when it reaches a given step (a test hook).
package struct KillSwitch: Sendable, Equatable {
    /// How the rank goes away.
    package enum Signal: String, Sendable {
        /// SIGKILL: the process vanishes, as after a crash or the OOM killer.
        case kill = "KILL"
        /// SIGSTOP: the process stays but stops running, as on a hung node.
        case stop = "STOP"
    }

    /// The rank that dies.
    package let rank: Int
    /// The step at whose start it dies.
    package let step: Int
    /// The signal it sends itself.
    package let signal: Signal

    package init(rank: Int, step: Int, signal: Signal = .kill) {
        self.rank = rank
        self.step = step
        self.signal = signal
    }

    /// The switch that SWIFTGPT_TEST_KILL_RANK and SWIFTGPT_TEST_KILL_STEP describe, nil when neither is set.
    ///
    /// Throws a one-line message when only one is set or either is not a non-negative integer.
    package static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) throws -> KillSwitch? {
        let rankText = environment["SWIFTGPT_TEST_KILL_RANK"], stepText = environment["SWIFTGPT_TEST_KILL_STEP"]
        if rankText == nil && stepText == nil { return nil }
        guard let rankText, let stepText else {
            throw KillSwitchError("SWIFTGPT_TEST_KILL_RANK and SWIFTGPT_TEST_KILL_STEP must be set together "
                + "(a test hook: rank R kills itself at step S); unset both for a normal run")
        }
        guard let rank = Int(rankText), rank >= 0 else {
            throw KillSwitchError("SWIFTGPT_TEST_KILL_RANK=\(rankText) is not a rank; give a number >= 0 or unset it")
        }
        guard let step = Int(stepText), step >= 0 else {
            throw KillSwitchError("SWIFTGPT_TEST_KILL_STEP=\(stepText) is not a step; give a number >= 0 or unset it")
        }
        let signalText = environment["SWIFTGPT_TEST_KILL_SIGNAL"] ?? Signal.kill.rawValue
        guard let signal = Signal(rawValue: signalText.uppercased()) else {
            throw KillSwitchError("SWIFTGPT_TEST_KILL_SIGNAL=\(signalText) is not KILL or STOP")
        }
        return KillSwitch(rank: rank, step: step, signal: signal)
    }

    /// On rank `rank` at step `step`: announces it on standard output, then sends itself the signal.
    ///
    /// The line reads `rank R of N kills itself (SIGKILL) at step S at unix time T` (or
    /// `stops itself (SIGSTOP)`), so a test can time how long the job takes to end.
    package func fire(rank current: Int, of size: Int, step now: Int) {
        guard current == rank, now == step else { return }
        let verb = signal == .kill ? "kills" : "stops"
        let line = String(format: "rank %d of %d %@ itself (SIG%@) at step %d at unix time %.3f\n",
                          current, size, verb as NSString, signal.rawValue as NSString, now, Date().timeIntervalSince1970)
        FileHandle.standardOutput.write(Data(line.utf8))
        raise(signal == .kill ? SIGKILL : SIGSTOP)
    }
}

/// A misconfigured kill switch: one line that says what to fix.
package struct KillSwitchError: Error, CustomStringConvertible {
    package let description: String
    init(_ description: String) { self.description = description }
}
