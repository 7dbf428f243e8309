// A small Swift wrapper over the HDF5 C API: files, groups, whole-dataset and
// hyperslab I/O, extendible 1-D datasets for streaming writes, attributes.
// Every negative return from HDF5 becomes a thrown `H5Error` that names the
// file, the object and HDF5's own innermost explanation.
//
// This file: errors, library set-up and element types. HDF5File.swift: files,
// groups and whole datasets; HDF5Attributes.swift: attributes;
// HDF5Dataset.swift: open datasets for slice reads and appends.
import CHDF5
import Foundation

// MARK: - Errors

/// A failed HDF5 operation; the message names the file and the object.
public struct H5Error: Error, CustomStringConvertible, LocalizedError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// Process-wide HDF5 set-up and error-stack access.
enum H5Library {
    /// Silences HDF5's automatic error printing on the calling thread.
    ///
    /// Thread-safe HDF5 builds keep the error-printing setting per thread, so
    /// every entry point calls this; it is a cheap, idempotent call.
    static func prepare() {
        _ = skipLibraryShutdown
        swiftgpt_h5_silence_errors()
    }

    /// Keeps HDF5 from registering its exit handler, before anything initialises it.
    ///
    /// When a write fails (a full disk), H5Fclose fails too and HDF5 1.10 leaves the
    /// freed file in its table of open objects; the exit handler then closes it again
    /// and crashes. Every file is closed explicitly here, so the handler has nothing to do.
    private static let skipLibraryShutdown: Void = { H5dont_atexit() }()

    /// The innermost description on HDF5's error stack (then clears the stack).
    static func takeErrorDetail() -> String? {
        var detail: String?
        withUnsafeMutablePointer(to: &detail) { pointer in
            _ = H5Ewalk2(swiftgpt_h5e_default(), H5E_WALK_UPWARD, { n, error, clientData in
                guard n == 0, let error, let desc = error.pointee.desc, let clientData else { return 0 }
                clientData.assumingMemoryBound(to: String?.self).pointee = String(cString: desc)
                return 0
            }, pointer)
        }
        H5Eclear2(swiftgpt_h5e_default())
        return detail
    }

    /// An error for `file` saying `what` failed on `object`, with HDF5's explanation.
    static func error(_ file: String, _ what: String, _ object: String? = nil) -> H5Error {
        var message = "\(file): \(what)"
        if let object { message += " '\(object)'" }
        if let detail = takeErrorDetail() { message += " (HDF5: \(detail))" }
        return H5Error(message)
    }
}

// MARK: - Element types

/// The element type of a stored dataset or attribute.
public enum H5ElementType: String, Sendable, CustomStringConvertible {
    case float32, float64, uint8, uint16, int32, uint32, int64, uint64, other

    public var description: String { rawValue }

    /// Classifies an HDF5 datatype.
    init(typeID t: hid_t) {
        let size = H5Tget_size(t)
        switch H5Tget_class(t) {
        case H5T_FLOAT:
            self = size == 4 ? .float32 : size == 8 ? .float64 : .other
        case H5T_INTEGER:
            let signed = H5Tget_sign(t) == H5T_SGN_2
            switch (size, signed) {
            case (1, false): self = .uint8
            case (2, false): self = .uint16
            case (4, true): self = .int32
            case (4, false): self = .uint32
            case (8, true): self = .int64
            case (8, false): self = .uint64
            default: self = .other
            }
        default:
            self = .other
        }
    }

    /// The HDF5 native type of the element type in memory; `other` has none (-1).
    var nativeType: hid_t {
        switch self {
        case .float32: return swiftgpt_h5t_native_float()
        case .float64: return swiftgpt_h5t_native_double()
        case .uint8: return swiftgpt_h5t_native_uint8()
        case .uint16: return swiftgpt_h5t_native_uint16()
        case .int32: return swiftgpt_h5t_native_int32()
        case .uint32: return swiftgpt_h5t_native_uint32()
        case .int64: return swiftgpt_h5t_native_int64()
        case .uint64: return swiftgpt_h5t_native_uint64()
        case .other: return -1
        }
    }

    /// True for the integer types.
    public var isInteger: Bool {
        switch self {
        case .uint8, .uint16, .int32, .uint32, .int64, .uint64: return true
        case .float32, .float64, .other: return false
        }
    }
}


/// A Swift scalar type with a native HDF5 counterpart.
public protocol H5Scalar {
    /// The element type a dataset written from this type has.
    static var h5ElementType: H5ElementType { get }
}

extension H5Scalar {
    /// The HDF5 native type identifier used in memory (and in files we write).
    public static var h5NativeType: hid_t { h5ElementType.nativeType }
}

extension Float: H5Scalar { public static var h5ElementType: H5ElementType { .float32 } }
extension Double: H5Scalar { public static var h5ElementType: H5ElementType { .float64 } }
extension UInt8: H5Scalar { public static var h5ElementType: H5ElementType { .uint8 } }
extension UInt16: H5Scalar { public static var h5ElementType: H5ElementType { .uint16 } }
extension Int32: H5Scalar { public static var h5ElementType: H5ElementType { .int32 } }
extension UInt32: H5Scalar { public static var h5ElementType: H5ElementType { .uint32 } }
extension Int64: H5Scalar { public static var h5ElementType: H5ElementType { .int64 } }
extension UInt64: H5Scalar { public static var h5ElementType: H5ElementType { .uint64 } }
