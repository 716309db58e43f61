import Foundation

/// Runs `write` against a temporary path beside `destination`, then renames it over the
/// destination, so readers never see a half-written file. The temporary file is removed
/// when `write` throws; a process killed while writing leaves it behind (named as
/// `AtomicWriteTemporary.name(for:)` says), for `AtomicWriteTemporary.removeStale(in:)`.
func writeAtomically(to destination: URL, _ write: (URL) throws -> Void) throws {
    let directory = destination.deletingLastPathComponent()
    if let problem = FileProblem.directoryProblem(at: directory.path) {
        throw CheckpointError.writeFailed(path: destination.path, reason: problem)
    }
    let temporary = directory.appendingPathComponent(AtomicWriteTemporary.name(for: destination.lastPathComponent))
    do {
        try write(temporary)
        guard rename(temporary.path, destination.path) == 0 else {
            throw CheckpointError.writeFailed(path: destination.path,
                                              reason: String(cString: strerror(errno)))
        }
    } catch {
        try? FileManager.default.removeItem(at: temporary)
        throw error
    }
}

/// The temporary files of `writeAtomically`: `.<name>.tmp-<pid>-<random>` beside `<name>`.
enum AtomicWriteTemporary {
    static let marker = ".tmp-"

    /// A fresh temporary name for a file called `name`.
    static func name(for name: String) -> String {
        ".\(name)\(marker)\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Whether `name` is such a temporary name.
    static func isTemporary(_ name: String) -> Bool {
        name.hasPrefix(".") && name.contains(marker)
    }

    /// Removes every temporary file in `directory` (not in its subfolders) and returns their
    /// names. Only safe while no writer can be at work there, i.e. under the run directory's
    /// lock: each such file is then what a killed process left half-written.
    @discardableResult
    static func removeStale(in directory: URL) throws -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        let stale = names.filter(isTemporary).sorted()
        for name in stale {
            try FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
        return stale
    }
}
