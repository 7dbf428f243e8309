// The documents of a corpus: the files, directories and glob patterns named
// on a command line, listed once each in a stable order, each with the name
// that chooses its split.
import Foundation
import GPTSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Documents

/// One input document: a text file, possibly gzip- or xz-compressed.
public struct CorpusDocument: Sendable, Equatable {
    public enum Compression: String, Sendable { case none, gzip, xz }

    /// Path of the file.
    public let path: String
    /// The name that chooses the document's split: its path below the directory it was found in,
    /// prefixed by that directory's name, or the file name for files given directly. It does not
    /// change when the corpus is moved or listed in another order.
    public let name: String
    /// Size of the file on disk.
    public let fileBytes: Int
    public let compression: Compression
}

/// Finding the documents named on a command line.
public enum CorpusInputs {
    /// The documents of `inputs`: files, directories (every file below them, recursively, in path
    /// order; hidden files and directories skipped) and glob patterns, in the order given.
    ///
    /// `include` (shell patterns such as `*.txt`) keeps only the files of
    /// directories and globs whose names match one; files named directly are
    /// always taken. Names ending in `.gz` or `.xz` are decompressed while read.
    public static func documents(_ inputs: [String], include: [String] = []) throws -> [CorpusDocument] {
        guard !inputs.isEmpty else { throw DataError("no input files or directories given") }
        var documents: [CorpusDocument] = []
        var seen = Set<String>()
        func add(_ path: String, name: String) throws {
            let key = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
            guard seen.insert(key).inserted else {
                throw DataError("\(path): listed twice (check overlapping directories and patterns)")
            }
            documents.append(try document(path, name: name))
        }
        func included(_ file: String) -> Bool {
            include.isEmpty || include.contains { fnmatch($0, (file as NSString).lastPathComponent, 0) == 0 }
        }
        for input in inputs {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: input, isDirectory: &isDirectory) {
                if isDirectory.boolValue {
                    let base = URL(fileURLWithPath: input).standardizedFileURL.lastPathComponent
                    let files = try filesBelow(input).filter(included)
                    guard !files.isEmpty else {
                        throw DataError("\(input): no files in this directory"
                                        + (include.isEmpty ? "" : " match \(include.joined(separator: " or "))"))
                    }
                    for relative in files { try add((input as NSString).appendingPathComponent(relative),
                                                    name: base + "/" + relative) }
                } else {
                    try add(input, name: (input as NSString).lastPathComponent)
                }
            } else if input.contains(where: { "*?[".contains($0) }) {
                let matches = try expand(input).filter(included)
                guard !matches.isEmpty else { throw DataError("\(input): no files match this pattern") }
                for path in matches { try add(path, name: (path as NSString).lastPathComponent) }
            } else {
                throw DataError("\(input): no such file or directory")
            }
        }
        return documents
    }

    /// Throws when `output` names the same file as one of `inputs` (after resolving links), which it would overwrite.
    ///
    /// The message calls the input `naming(input)` ("the input <path>" by default).
    public static func checkOutput(_ output: String, isNot inputs: [String],
                                   naming: (String) -> String = { $0 }) throws {
        func resolved(_ path: String) -> URL { URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath() }
        let target = resolved(output)
        if let input = inputs.first(where: { resolved($0) == target }) {
            throw DataError("\(output): the output would overwrite the input \(naming(input)); choose another output path")
        }
    }

    /// The document for the file at `path`.
    private static func document(_ path: String, name: String) throws -> CorpusDocument {
        let lower = path.lowercased()
        if lower.hasSuffix(".tar") || lower.contains(".tar.") || lower.hasSuffix(".tgz") || lower.hasSuffix(".zip") {
            throw DataError("\(path): is an archive; unpack it first (tar -xf / unzip) and give the directory")
        }
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let size = attributes[.size] as? NSNumber else {
            throw DataError("\(path): cannot read the file's size")
        }
        guard attributes[.type] as? FileAttributeType == .typeRegular else {
            throw DataError("\(path): not a regular file")
        }
        let compression: CorpusDocument.Compression = lower.hasSuffix(".gz") ? .gzip : lower.hasSuffix(".xz") ? .xz : .none
        return CorpusDocument(path: path, name: name, fileBytes: size.intValue, compression: compression)
    }

    /// Relative paths of the regular files below `directory`, sorted, hidden entries skipped.
    private static func filesBelow(_ directory: String) throws -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: directory) else {
            throw DataError("\(directory): cannot list the directory")
        }
        var files: [String] = []
        while let relative = walker.nextObject() as? String {
            if (relative as NSString).lastPathComponent.hasPrefix(".") {
                walker.skipDescendants()
                continue
            }
            if walker.fileAttributes?[.type] as? FileAttributeType == .typeRegular { files.append(relative) }
        }
        return files.sorted()
    }

    /// The paths matching the shell pattern `pattern`, sorted.
    private static func expand(_ pattern: String) throws -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        let status = glob(pattern, 0, nil, &result)
        if status == GLOB_NOMATCH { return [] }
        guard status == 0 else { throw DataError("\(pattern): cannot expand the pattern (glob error \(status))") }
        var paths: [String] = []
        for i in 0..<Int(result.gl_pathc) {
            if let p = result.gl_pathv[i] {
                let path = String(cString: p)
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
                    paths.append(path)
                }
            }
        }
        return paths.sorted()
    }
}
