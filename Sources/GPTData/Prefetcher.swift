// Overlapping reading with encoding: the next batch of documents is read on
// a background thread while the current one is encoded.
import Dispatch

// MARK: - Prefetcher

/// Produces the next item on a background thread while the caller works on the current one.
final class Prefetcher<Item>: @unchecked Sendable {
    private let produce: () throws -> Item?
    private let queue = DispatchQueue(label: "swiftgpt.prefetch")
    private let ready = DispatchSemaphore(value: 0)
    private var result: Result<Item?, Error> = .success(nil)
    private var running = false

    init(_ produce: @escaping () throws -> Item?) {
        self.produce = produce
        start()
    }

    private func start() {
        running = true
        queue.async {
            self.result = Result { try self.produce() }
            self.ready.signal()
        }
    }

    /// The next item (nil at the end); starts producing the one after.
    func next() throws -> Item? {
        guard running else { return nil }
        ready.wait()
        running = false
        guard let item = try result.get() else { return nil }
        start()
        return item
    }

    deinit {
        if running { ready.wait() } // let a running read finish before its state goes away
    }
}
