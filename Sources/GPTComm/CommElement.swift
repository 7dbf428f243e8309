// The element types the Communicator's collectives take, each mapped to its
// MPI datatype, and the reductions `allreduce` can apply to them.
//
//   type     MPI datatype   broadcast/allgather   allreduce
//   Float    MPI_FLOAT      yes                   FloatReduction (sum, mean, max, min)
//   Double   MPI_DOUBLE     yes                   FloatReduction
//   UInt64   MPI_UINT64_T   yes                   IntegerReduction (sum, max, min)
//   Int      MPI_INT64_T    yes                   IntegerReduction
//   UInt8    MPI_BYTE       yes                   no
import CMPI

// MARK: - Element types

/// A type the Communicator can move between ranks (broadcast, allgather).
public protocol CommElement {
    /// Its MPI datatype, and its name in messages ("floats", "int64").
    static var commDatatype: CommDatatype { get }
}

/// A `CommElement` that `allreduce` can combine across ranks.
public protocol CommReducible: CommElement {
    /// How it can be combined: `FloatReduction` for floating point, `IntegerReduction` for integers.
    associatedtype Reduction: CommReduction
    /// Divides each of `count` elements by `n`: the mean, after a sum (only `.mean` asks for it).
    static func divide(_ buf: UnsafeMutablePointer<Self>, count: Int, by n: Int)
}

/// An MPI datatype as the Communicator's element types name it (opaque outside GPTComm).
public struct CommDatatype {
    let handle: MPI_Datatype?
    /// The element type's name in messages, e.g. "allreduce(4 doubles, sum)".
    let name: String
}

extension CommReducible where Self: FloatingPoint {
    /// `buf[i] /= n`: a correctly rounded mean, unlike multiplying by 1/n.
    public static func divide(_ buf: UnsafeMutablePointer<Self>, count: Int, by n: Int) {
        let divisor = Self(n)
        for i in 0..<count { buf[i] /= divisor }
    }
}

extension CommReducible where Self: BinaryInteger {
    /// Never called: `IntegerReduction` has no mean.
    public static func divide(_ buf: UnsafeMutablePointer<Self>, count: Int, by n: Int) {}
}

extension Float: CommReducible { public typealias Reduction = FloatReduction; public static var commDatatype: CommDatatype { .float } }
extension Double: CommReducible { public typealias Reduction = FloatReduction; public static var commDatatype: CommDatatype { .double } }
extension UInt64: CommReducible { public typealias Reduction = IntegerReduction; public static var commDatatype: CommDatatype { .uint64 } }
extension Int: CommReducible { public typealias Reduction = IntegerReduction; public static var commDatatype: CommDatatype { .int64 } }
extension UInt8: CommElement { public static var commDatatype: CommDatatype { .bytes } }

extension CommDatatype {
    static var float: CommDatatype { CommDatatype(handle: swiftgpt_mpi_float(), name: "floats") }
    static var double: CommDatatype { CommDatatype(handle: swiftgpt_mpi_double(), name: "doubles") }
    static var uint64: CommDatatype { CommDatatype(handle: swiftgpt_mpi_uint64(), name: "uint64") }
    static var int64: CommDatatype { CommDatatype(handle: swiftgpt_mpi_int64(), name: "int64") }
    static var bytes: CommDatatype { CommDatatype(handle: swiftgpt_mpi_byte(), name: "bytes") }
}

// MARK: - Reductions

/// A way to combine values across ranks, named by its raw value: "sum", "mean", "max" or "min".
public protocol CommReduction: RawRepresentable, CustomStringConvertible, Sendable where RawValue == String {
    /// Element-wise sum over all ranks, the default.
    static var sum: Self { get }
}

extension CommReduction {
    public var description: String { rawValue }

    /// The MPI operation that does the combining; `mean` is a sum, divided by the number of ranks afterwards.
    var mpiOp: MPI_Op? {
        switch rawValue {
        case "max": return swiftgpt_mpi_max()
        case "min": return swiftgpt_mpi_min()
        default: return swiftgpt_mpi_sum()
        }
    }

    /// Whether the sum is divided by the number of ranks afterwards.
    var isMean: Bool { rawValue == "mean" }
}

/// How `allreduce` combines floating-point buffers across ranks.
public enum FloatReduction: String, CommReduction {
    /// Element-wise sum over all ranks.
    case sum
    /// Element-wise sum divided by the number of ranks (gradient averaging).
    case mean
    /// Element-wise maximum over all ranks.
    case max
    /// Element-wise minimum over all ranks.
    case min
}

/// How `allreduce` combines integer buffers (checksums, counters, flags) across ranks.
public enum IntegerReduction: String, CommReduction {
    /// Element-wise sum over all ranks (wraps around on overflow, as MPI does).
    case sum
    /// Element-wise maximum over all ranks.
    case max
    /// Element-wise minimum over all ranks.
    case min
}
