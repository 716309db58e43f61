import Foundation

/// Why a file could not be read or written, in words. Foundation's own messages say
/// "The operation could not be completed. (NSCocoaErrorDomain error 512.)"; these say "no such
/// file or directory", "permission denied" or "not a directory: /a/b is a regular file".
///
/// Every error a file operation throws goes through `reason(for:path:)` before a user sees it.
public enum FileProblem {
    /// Why `error`, thrown by a Foundation file operation on `path`, happened, as words to
    /// follow "PATH: could not …: ". The file system is asked first (a part of the path that is
    /// a regular file, a directory where a file was read); then the POSIX error underneath
    /// Foundation's; then Foundation's error code.
    public static func reason(for error: Error, path: String) -> String {
        if let blocked = notADirectoryAncestor(of: path) { return blocked }
        if let code = posixCode(of: error) {
            if code == EISDIR || (code == EEXIST && kind(of: path) != nil) { return existing(path) }
            return posixReason(code)
        }
        if let described = cocoaReason(of: error, path: path) { return described }
        if let kind = kind(of: path), kind == "a directory" { return "it is a directory" }
        return error.localizedDescription
    }

    /// Why `path` cannot be read as a file, or nil when it is a file (or something else
    /// readable): "no such file or directory", "it is a directory", "not a directory: … is a
    /// regular file".
    public static func readProblem(at path: String) -> String? {
        if let blocked = notADirectoryAncestor(of: path) { return blocked }
        switch kind(of: path) {
        case nil: return "no such file"
        case "a directory"?: return "it is a directory, not a file"
        default: return nil
        }
    }

    /// Why files cannot be written into the directory `path`, or nil when it is a directory:
    /// "the directory … does not exist", "not a directory: … is a regular file".
    public static func directoryProblem(at path: String) -> String? {
        if let blocked = notADirectoryAncestor(of: path) { return blocked }
        switch kind(of: path) {
        case nil: return "the directory \(path) does not exist"
        case "a directory"?: return nil
        case let other?: return "not a directory: \(path) is \(other)"
        }
    }

    /// Creates the directory `path` and any missing parents; a failure throws
    /// `FileAccessError` with the reason in words.
    public static func createDirectory(atPath path: String) throws(FileAccessError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            let inTheWay = kind(of: path).flatMap { $0 == "a directory" ? nil : "not a directory: \(path) is \($0)" }
            throw FileAccessError(path: path, reason: notADirectoryAncestor(of: path) ?? inTheWay ?? reason(for: error, path: path))
        }
    }

    /// `error` with Foundation's wording replaced: a Cocoa or POSIX file error that names its
    /// path (`NSFilePathErrorKey`, `NSURLErrorKey`) becomes a `FileAccessError` with the reason
    /// in words; any other error is returned as it is. For the last line of defence, where a
    /// command reports an error no caller has explained.
    public static func explained(_ error: Error) -> Error {
        let nsError = error as NSError
        guard nsError.domain == NSCocoaErrorDomain || nsError.domain == NSPOSIXErrorDomain else { return error }
        let path = (nsError.userInfo[NSFilePathErrorKey] as? String) ?? (nsError.userInfo[NSURLErrorKey] as? URL)?.path
        guard let path else { return error }
        return FileAccessError(path: path, reason: reason(for: error, path: path))
    }

    /// Reads the whole file at `path`; a failure throws `FileAccessError` with the reason in words.
    public static func contents(ofFile path: String) throws(FileAccessError) -> Data {
        if let problem = readProblem(at: path) { throw FileAccessError(path: path, reason: problem) }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw FileAccessError(path: path, reason: reason(for: error, path: path))
        }
    }

    // MARK: - Parts

    /// "not a directory: A is a regular file" for the first proper ancestor A of `path` that
    /// exists and is not a directory (the cause of ENOTDIR and of Foundation's error 512 when
    /// creating `somefile/run`).
    static func notADirectoryAncestor(of path: String) -> String? {
        var ancestor = URL(fileURLWithPath: path).standardizedFileURL
        var chain: [String] = []
        while ancestor.path != "/" {
            ancestor.deleteLastPathComponent()
            chain.append(ancestor.path)
        }
        for candidate in chain.reversed() {
            guard let kind = kind(of: candidate) else { return nil }
            if kind != "a directory" { return "not a directory: \(candidate) is \(kind)" }
        }
        return nil
    }

    /// What `path` is ("a regular file", "a directory", …), following symbolic links; nil when
    /// nothing is there.
    static func kind(of path: String) -> String? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        switch status.st_mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFREG: return "a regular file"
        case S_IFIFO: return "a named pipe"
        case S_IFSOCK: return "a socket"
        case S_IFCHR, S_IFBLK: return "a device"
        default: return "not a regular file"
        }
    }

    /// "it is a directory" / "not a directory: P is a regular file" (EEXIST: dpft only creates
    /// directories without overwriting, so what is in the way is a file where one should be).
    private static func existing(_ path: String) -> String {
        let kind = kind(of: path)
        return kind == "a directory" ? "it is a directory" : "not a directory: \(path) is \(kind ?? "in the way")"
    }

    /// The POSIX error code inside a Foundation error (itself, or its underlying error).
    static func posixCode(of error: Error) -> Int32? {
        if let posix = error as? POSIXError { return posix.code.rawValue }
        let nsError = error as NSError
        if nsError.domain == NSPOSIXErrorDomain { return Int32(truncatingIfNeeded: nsError.code) }
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? Error { return posixCode(of: underlying) }
        return nil
    }

    private static func posixReason(_ code: Int32) -> String {
        switch code {
        case ENOENT: return "no such file or directory"
        case EACCES, EPERM: return "permission denied"
        case ENOTDIR: return "a part of the path is not a directory"
        case ENOSPC, EDQUOT: return "no space left on the device"
        case EROFS: return "the file system is read-only"
        case ENAMETOOLONG: return "the name is too long"
        case EFBIG: return "the file is too large"
        default: return String(cString: strerror(code)).lowercased()
        }
    }

    private static func cocoaReason(of error: Error, path: String) -> String? {
        guard let cocoa = error as? CocoaError else { return nil }
        switch cocoa.code {
        case .fileNoSuchFile, .fileReadNoSuchFile: return "no such file or directory"
        case .fileReadNoPermission, .fileWriteNoPermission: return "permission denied"
        case .fileWriteFileExists: return existing(path)
        case .fileWriteOutOfSpace: return "no space left on the device"
        case .fileWriteVolumeReadOnly: return "the file system is read-only"
        case .fileReadInvalidFileName, .fileWriteInvalidFileName: return "the name is not a valid file name"
        case .fileReadTooLarge: return "the file is too large to read"
        default: return nil
        }
    }
}

/// A file that could not be read or written, with the reason in words (`FileProblem`).
public struct FileAccessError: Error, Equatable, CustomStringConvertible {
    public var path: String
    /// Why, e.g. "no such file or directory", "it is a directory, not a file".
    public var reason: String

    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)." }
}
