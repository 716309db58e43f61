import Crypto
import Foundation

/// The SHA-256 of a file's bytes as 64 lowercase hex digits, read in 4 MiB pieces so that a
/// model file of any size is hashed in constant memory. Used to tie a run to the exact
/// training file and a LoRA step checkpoint to its frozen base.
func fileSHA256(_ url: URL) throws -> String {
    guard let handle = FileHandle(forReadingAtPath: url.path) else {
        throw FileDigestError.unreadable(path: url.path)
    }
    defer { try? handle.close() }
    var hasher = SHA256()
    while true {
        let piece = try handle.read(upToCount: 4 << 20) ?? Data()
        if piece.isEmpty { break }
        hasher.update(data: piece)
    }
    return hasher.finalize().map { String(format: "%02x", $0) }.joined()
}

/// A file that could not be hashed.
enum FileDigestError: Error, CustomStringConvertible, Equatable {
    case unreadable(path: String)

    var description: String {
        switch self {
        case .unreadable(let path):
            let reason = FileManager.default.fileExists(atPath: path) ? "cannot be read (permissions?)" : "no such file"
            return "\(path): \(reason); it is needed to compute its SHA-256."
        }
    }
}
