// Attributes of HDF5 files, groups and datasets: strings, integers and
// doubles, one value or a 1-D array.
import CHDF5
import Foundation

// MARK: - Attributes

extension H5File {

    /// Sets a string attribute (variable-length UTF-8, any length) on the object at `object`.
    public func setAttribute(_ name: String, _ value: String, on object: String = "/") throws {
        if value.utf8.contains(0) {
            throw H5Error("\(path): attribute '\(name)' on '\(object)': strings with NUL characters cannot be stored")
        }
        let type = try stringType(variable: true, object)
        defer { H5Tclose(type) }
        try value.withCString { cString in
            var pointer: UnsafePointer<CChar>? = cString
            try writeAttribute(name, on: object, type: type, shape: []) { attribute in
                H5Awrite(attribute, type, &pointer)
            }
        }
    }

    /// Sets a 64-bit integer attribute.
    public func setAttribute(_ name: String, _ value: Int, on object: String = "/") throws {
        try setNumbers(name, [Int64(value)], shape: [], on: object)
    }

    /// Sets a 64-bit floating-point attribute.
    public func setAttribute(_ name: String, _ value: Double, on object: String = "/") throws {
        try setNumbers(name, [value], shape: [], on: object)
    }

    /// Sets a 1-D 64-bit integer array attribute.
    public func setAttribute(_ name: String, _ value: [Int], on object: String = "/") throws {
        try setNumbers(name, value.map { Int64($0) }, shape: [value.count], on: object)
    }

    /// Sets a 1-D 64-bit floating-point array attribute.
    public func setAttribute(_ name: String, _ value: [Double], on object: String = "/") throws {
        try setNumbers(name, value, shape: [value.count], on: object)
    }

    /// Replaces attribute `name` with `values` of `shape` (`[]`: one value), stored as `T`'s native type.
    private func setNumbers<T: H5Scalar>(_ name: String, _ values: [T], shape: [Int], on object: String) throws {
        try writeAttribute(name, on: object, type: T.h5NativeType, shape: shape) { attribute in
            values.isEmpty ? 0 : values.withUnsafeBufferPointer { H5Awrite(attribute, T.h5NativeType, $0.baseAddress) }
        }
    }

    /// Removes attribute `name` from the object at `object`.
    public func deleteAttribute(_ name: String, on object: String = "/") throws {
        try withObject(object) { oid in
            guard try check(H5Aexists(oid, name), "cannot check attribute", name) > 0 else {
                throw H5Error("\(path): no attribute '\(name)' on '\(object)'")
            }
            try check(H5Adelete(oid, name), "cannot delete attribute", name)
        }
    }

    /// Whether the object at `object` has an attribute `name`.
    public func hasAttribute(_ name: String, on object: String = "/") -> Bool {
        (try? withObject(object) { H5Aexists($0, name) > 0 }) ?? false
    }

    /// Names of the attributes of the object at `object`, in name order.
    public func attributeNames(on object: String = "/") throws -> [String] {
        try withObject(object) { oid in
            var names: [String] = []
            _ = try withUnsafeMutablePointer(to: &names) { pointer in
                try check(H5Aiterate2(oid, H5_INDEX_NAME, H5_ITER_INC, nil, { _, name, _, data in
                    guard let name, let data else { return -1 }
                    data.assumingMemoryBound(to: [String].self).pointee.append(String(cString: name))
                    return 0
                }, pointer), "cannot list attributes of", object)
            }
            return names
        }
    }

    /// Reads a string attribute (variable- or fixed-length).
    public func stringAttribute(_ name: String, on object: String = "/") throws -> String {
        try withAttribute(name, on: object) { attribute, fileType, points in
            guard H5Tget_class(fileType) == H5T_STRING, points == 1 else {
                throw H5Error("\(path): attribute '\(name)' on '\(object)' is not a string")
            }
            let isVariable = try check(H5Tis_variable_str(fileType), "cannot read attribute", name)
            if isVariable > 0 {
                let memType = try stringType(variable: true, object)
                defer { H5Tclose(memType) }
                var pointer: UnsafeMutablePointer<CChar>?
                try check(H5Aread(attribute, memType, &pointer), "cannot read attribute", name)
                guard let pointer else { return "" }
                defer { H5free_memory(pointer) }
                return String(cString: pointer)
            }
            let size = H5Tget_size(fileType)
            let memType = try stringType(variable: false, object)
            defer { H5Tclose(memType) }
            try check(H5Tset_size(memType, size + 1), "cannot read attribute", name)
            var buffer = [CChar](repeating: 0, count: size + 1)
            try check(H5Aread(attribute, memType, &buffer), "cannot read attribute", name)
            return String(cString: buffer)
        }
    }

    /// Reads an integer attribute holding one value.
    public func intAttribute(_ name: String, on object: String = "/") throws -> Int {
        try single(integerValues(name, on: object), name, object)
    }

    /// Reads an integer array attribute.
    public func intArrayAttribute(_ name: String, on object: String = "/") throws -> [Int] {
        try integerValues(name, on: object)
    }

    /// Reads a numeric attribute holding one value as a Double.
    public func doubleAttribute(_ name: String, on object: String = "/") throws -> Double {
        try single(doubleArrayAttribute(name, on: object), name, object)
    }

    /// Reads a numeric array attribute as Doubles.
    public func doubleArrayAttribute(_ name: String, on object: String = "/") throws -> [Double] {
        try readNumbers(name, on: object, as: Double.self, accepting: [H5T_FLOAT, H5T_INTEGER], "is not numeric")
    }

    private func integerValues(_ name: String, on object: String) throws -> [Int] {
        try readNumbers(name, on: object, as: Int64.self, accepting: [H5T_INTEGER], "is not an integer").map { Int($0) }
    }

    /// The values of attribute `name`, converted to `T`, when its type class is one of `classes`.
    private func readNumbers<T: H5Scalar & Numeric>(_ name: String, on object: String, as type: T.Type,
                                                    accepting classes: [H5T_class_t],
                                                    _ otherwise: String) throws -> [T] {
        try withAttribute(name, on: object) { attribute, fileType, points in
            guard classes.contains(H5Tget_class(fileType)) else {
                throw H5Error("\(path): attribute '\(name)' on '\(object)' \(otherwise)")
            }
            var values = [T](repeating: 0, count: points)
            try check(values.withUnsafeMutableBufferPointer { H5Aread(attribute, T.h5NativeType, $0.baseAddress) },
                      "cannot read attribute", name)
            return values
        }
    }

    /// The one value of attribute `name`, or an error saying how many it holds.
    private func single<T>(_ values: [T], _ name: String, _ object: String) throws -> T {
        guard values.count == 1 else {
            throw H5Error("\(path): attribute '\(name)' on '\(object)' holds \(values.count) values, not one")
        }
        return values[0]
    }

    /// A C string type, variable-length UTF-8 or fixed-length (size set by the caller).
    private func stringType(variable: Bool, _ object: String) throws -> hid_t {
        let type = try check(H5Tcopy(swiftgpt_h5t_c_s1()), "cannot create string type for", object)
        if variable {
            guard H5Tset_size(type, swiftgpt_h5t_variable()) >= 0, H5Tset_cset(type, H5T_CSET_UTF8) >= 0 else {
                H5Tclose(type)
                throw H5Library.error(path, "cannot create string type for", object)
            }
        }
        return type
    }

    /// Replaces attribute `name` on `object` with a new one of `type` and `shape`, filled by `write`.
    private func writeAttribute(_ name: String, on object: String, type: hid_t, shape: [Int],
                                _ write: (hid_t) -> herr_t) throws {
        try withObject(object) { oid in
            if try check(H5Aexists(oid, name), "cannot check attribute", name) > 0 {
                try check(H5Adelete(oid, name), "cannot replace attribute", name)
            }
            let space = try makeSpace(shape, name)
            defer { H5Sclose(space) }
            let attribute = try check(H5Acreate2(oid, name, type, space, swiftgpt_h5p_default(),
                                                 swiftgpt_h5p_default()), "cannot create attribute", name)
            defer { H5Aclose(attribute) }
            try check(write(attribute), "cannot write attribute", name)
        }
    }

    /// Runs `body` with attribute `name` open, its file type and its number of elements.
    private func withAttribute<R>(_ name: String, on object: String,
                                  _ body: (hid_t, hid_t, Int) throws -> R) throws -> R {
        try withObject(object) { oid in
            guard try check(H5Aexists(oid, name), "cannot check attribute", name) > 0 else {
                throw H5Error("\(path): no attribute '\(name)' on '\(object)'")
            }
            let attribute = try check(H5Aopen(oid, name, swiftgpt_h5p_default()), "cannot open attribute", name)
            defer { H5Aclose(attribute) }
            let fileType = try check(H5Aget_type(attribute), "cannot read the type of attribute", name)
            defer { H5Tclose(fileType) }
            let space = try check(H5Aget_space(attribute), "cannot read the shape of attribute", name)
            defer { H5Sclose(space) }
            let points = try check(H5Sget_simple_extent_npoints(space), "cannot read the shape of attribute", name)
            return try body(attribute, fileType, Int(points))
        }
    }
}
