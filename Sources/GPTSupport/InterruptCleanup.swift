// Interrupt cleanup: a half-written output file is removed when the user
// presses Ctrl-C (SIGINT) or the job is stopped (SIGTERM) while it is written.
import Dispatch
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Interrupts

/// Removes a temporary file when the process is interrupted (SIGINT, SIGTERM) while `body` runs.
public enum InterruptCleanup {
    /// Runs `body`; on SIGINT or SIGTERM meanwhile, `path` is deleted and the process exits with status 130 or 143.
    public static func removing<R>(_ path: String, _ body: () throws -> R) rethrows -> R {
        let signals: [Int32] = [SIGINT, SIGTERM]
        var sources: [DispatchSourceSignal] = []
        let cPath = strdup(path)!
        for sig in signals {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler {
                unlink(cPath)
                let message = "\ninterrupted: removed the unfinished \(path)\n"
                _ = message.withCString { write(2, $0, strlen($0)) }
                _exit(128 + sig)
            }
            source.resume()
            sources.append(source)
        }
        defer {
            for source in sources { source.cancel() }
            for sig in signals { signal(sig, SIG_DFL) }
            free(cPath)
        }
        return try body()
    }
}
