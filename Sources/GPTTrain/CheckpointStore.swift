import Foundation
import GPTCore
import GPTData

/// The checkpoints of one run directory: `ckpt_<step>.h5` files, the last K
/// kept, with `latest.h5` and `best.h5` as symbolic links updated atomically.
public struct CheckpointStore {
    public let directory: String
    public let keep: Int

    public init(directory: String, keep: Int) {
        self.directory = directory
        self.keep = keep
    }

    public var latestPath: String { directory + "/latest.h5" }
    public var bestPath: String { directory + "/best.h5" }

    public func path(step: Int) -> String { directory + String(format: "/ckpt_%07d.h5", step) }

    /// Writes the checkpoint for `step` (never from non-finite parameters), points
    /// `latest.h5` (and `best.h5` when `isBest`) at it, and prunes old ones.
    public func save(_ ckpt: Checkpoint, isBest: Bool) throws {
        if let bad = ckpt.parameters.firstIndex(where: { !$0.isFinite }) {
            throw TrainError("refusing to write a checkpoint at step \(ckpt.step): parameter \(bad) is \(ckpt.parameters[bad]); "
                + "the previous checkpoint is kept")
        }
        let file = path(step: ckpt.step)
        do {
            try ckpt.write(to: file)
        } catch {
            let kept = target(of: latestPath).map { "latest.h5 still points at \(($0 as NSString).lastPathComponent)" }
                ?? "no earlier checkpoint exists"
            let text = "\(error)"
            if ["No space left on device", "errno = 28", "Disk quota exceeded", "errno = 122"].contains(where: text.contains) {
                throw TrainError("no space left in out_dir \(directory) to write \(file) (\(freeSpace) free); free space "
                    + "there or move the run to a larger disk, then continue with --resume; \(kept)")
            }
            throw TrainError("cannot write checkpoint \(file): \(text); \(kept)")
        }
        try link(latestPath, to: file)
        if isBest { try link(bestPath, to: file) }
        prune()
    }

    /// Points `name` at `target` atomically (a temporary link renamed over it).
    private func link(_ name: String, to target: String) throws {
        let tmp = name + ".tmp-\(getpid())"
        unlink(tmp)
        let rel = (target as NSString).lastPathComponent
        guard symlink(rel, tmp) == 0, rename(tmp, name) == 0 else {
            let err = String(cString: strerror(errno))
            unlink(tmp)
            throw TrainError("cannot update \(name): \(err)")
        }
    }

    /// Whether the directory holds checkpoints of a run (a step file or `latest.h5`).
    public var hasCheckpoints: Bool {
        var info = stat()
        return lstat(latestPath, &info) == 0 || !stepFiles().isEmpty
    }

    /// Free space on the directory's file system, for messages ("1.2 MB").
    private var freeSpace: String {
        var fs = statvfs()
        guard statvfs(directory, &fs) == 0 else { return "unknown" }
        let bytes = Double(fs.f_bavail) * Double(fs.f_frsize)
        return bytes >= 1e6 ? String(format: "%.1f MB", bytes / 1e6) : String(format: "%.0f kB", bytes / 1e3)
    }

    /// Step files in the directory, newest first.
    public func stepFiles() -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { n -> (Int, String)? in
            guard n.hasPrefix("ckpt_"), n.hasSuffix(".h5"), let s = Int(n.dropFirst(5).dropLast(3)) else { return nil }
            return (s, directory + "/" + n)
        }.sorted { $0.0 > $1.0 }
    }

    private func target(of link: String) -> String? {
        guard let dest = try? FileManager.default.destinationOfSymbolicLink(atPath: link) else { return nil }
        return dest.hasPrefix("/") ? dest : directory + "/" + dest
    }

    /// Removes step files beyond the newest `keep`, never the one `best.h5` or `latest.h5` points at.
    private func prune() {
        guard keep > 0 else { return }
        let protected = Set([target(of: bestPath), target(of: latestPath)].compactMap { $0 })
        for (i, f) in stepFiles().enumerated() where i >= keep && !protected.contains(f.path) {
            unlink(f.path)
        }
    }

    /// The newest checkpoint that reads back intact: `latest.h5` first, then
    /// step files newest first. Returns it, its path, and one line for each
    /// newer one skipped, naming the file and what is wrong with it.
    public func loadNewestGood(includeOptimizer: Bool = true) throws -> (Checkpoint, String, [String]) {
        var candidates: [String] = []
        if let t = target(of: latestPath) { candidates.append(t) }
        for f in stepFiles() where !candidates.contains(f.path) { candidates.append(f.path) }
        var skipped: [String] = []
        for c in candidates {
            do {
                return (try Checkpoint.read(from: c, includeOptimizer: includeOptimizer), c, skipped)
            } catch {
                var reason = TrainError.oneLine("\(error)")
                if reason.hasPrefix(c + ": ") { reason.removeFirst(c.count + 2) }
                skipped.append("checkpoint \(c) is unreadable (\(reason))")
            }
        }
        if candidates.isEmpty {
            throw TrainError("nothing to resume: no checkpoint in \(directory); start without --resume, "
                + "or set out_dir to the directory of the run to continue")
        }
        throw TrainError("nothing to resume: no readable checkpoint in \(directory): " + skipped.joined(separator: "; ")
            + "; restore a checkpoint from a backup, or start a new run without --resume in another out_dir")
    }
}
