import Foundation

/// Runs `write` against a temporary path beside `destination`, then renames it over the
/// destination, so readers never see a half-written file. The temporary file is removed
/// when `write` throws.
func writeAtomically(to destination: URL, _ write: (URL) throws -> Void) throws {
    let directory = destination.deletingLastPathComponent()
    if let problem = FileProblem.directoryProblem(at: directory.path) {
        throw CheckpointError.writeFailed(path: destination.path, reason: problem)
    }
    let temporary = directory.appendingPathComponent(
        ".\(destination.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))")
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
