import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive lock on a run directory, held for as long as this value lives: a kernel
/// `flock` on `<directory>/.lock`, whose contents name the holder (pid, host, start time).
///
/// The kernel releases the lock when the holder exits in any way, `kill -9` included, so a
/// `.lock` file left behind by a dead run blocks nothing: only a live lock does. The file is
/// never deleted (deleting it would let two runs lock two different files of one name).
final class RunDirectoryLock {
    /// The lock file's name inside the run directory.
    static let fileName = ".lock"

    /// Who holds (or held) a lock, as written into the lock file.
    struct Holder: Codable, Equatable, CustomStringConvertible {
        var pid: Int32
        var host: String
        /// ISO 8601, UTC.
        var since: String

        var description: String { "pid \(pid) on \(host), since \(since)" }

        static var current: Holder {
            Holder(pid: ProcessInfo.processInfo.processIdentifier, host: ProcessInfo.processInfo.hostName,
                   since: ISO8601DateFormatter().string(from: Date()))
        }
    }

    private let descriptor: Int32

    /// Takes the lock on `directory` (which must exist) without waiting; throws
    /// `RunError.directoryLocked` naming the holder when another process has it.
    init(directory: URL) throws {
        let path = directory.appendingPathComponent(Self.fileName).path
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw RunError.cannotCreateDirectory(path: directory.path,
                                                 reason: "cannot open its lock file \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            let holder = Self.readHolder(descriptor)
            close(descriptor)
            guard reason == EWOULDBLOCK else {
                throw RunError.cannotCreateDirectory(path: directory.path,
                                                     reason: "cannot lock \(path): \(String(cString: strerror(reason)))")
            }
            throw RunError.directoryLocked(directory: directory.path, holder: holder?.description)
        }
        self.descriptor = descriptor
        Self.writeHolder(.current, to: descriptor)
    }

    deinit { close(descriptor) }  // releases the flock

    /// Fails at once, as `init` would, when a live run holds `directory`'s lock; creates and
    /// writes nothing (a run calls it before its setup stages, so that it does not spend them
    /// on a directory in use). The lock itself is taken later, by `init`.
    static func checkNotHeld(directory: URL) throws {
        let descriptor = open(directory.appendingPathComponent(fileName).path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }  // no lock file: nobody holds it
        defer { close(descriptor) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            guard errno == EWOULDBLOCK else { return }  // init reports other failures
            throw RunError.directoryLocked(directory: directory.path, holder: readHolder(descriptor)?.description)
        }
        _ = flock(descriptor, LOCK_UN)
    }

    /// The holder recorded in a lock file (nil when it is empty or unreadable: a holder that
    /// has just taken the lock may not have written itself yet).
    static func holder(of directory: URL) -> Holder? {
        let descriptor = open(directory.appendingPathComponent(fileName).path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        return readHolder(descriptor)
    }

    private static func readHolder(_ descriptor: Int32) -> Holder? {
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count = pread(descriptor, &bytes, bytes.count, 0)
        guard count > 0 else { return nil }
        return try? JSONDecoder().decode(Holder.self, from: Data(bytes[0..<count]))
    }

    private static func writeHolder(_ holder: Holder, to descriptor: Int32) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(holder) else { return }
        _ = ftruncate(descriptor, 0)
        _ = data.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
    }
}
