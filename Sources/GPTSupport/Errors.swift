// The error for input that cannot be used (a file, a text, an option), with a
// message that says which and what to fix.
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Errors

/// A data or checkpoint file (or its input) that cannot be used; the message says which file and what to fix.
public struct DataError: Error, CustomStringConvertible, LocalizedError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// The text of the current `errno`.
public func errnoDescription() -> String { String(cString: strerror(errno)) }
