import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One child process of a sweep: started with `posix_spawn`, its output appended to a log
/// file, and reaped with `wait4`, whose resource usage is that child's alone — so its peak
/// resident set (`ru_maxrss`) is the run's, not the sweep's high-water mark.
struct ChildRun {
    /// How a child ended.
    struct Outcome: Sendable, Equatable {
        /// The exit status, when it exited.
        var exitStatus: Int32?
        /// The signal that ended it, when one did.
        var signal: Int32?
        /// Peak resident set size in bytes (Linux reports kilobytes; converted).
        var peakResidentBytes: Int
        var seconds: Double

        var succeeded: Bool { exitStatus == 0 }

        /// `exit 0`, `exit 1`, `killed by signal 9`.
        var description: String {
            if let signal { return "killed by signal \(signal)" }
            return "exit \(exitStatus ?? -1)"
        }
    }

    /// Runs `executable` with `arguments` in the current directory, appending its standard
    /// output and error to `log`, and waits for it.
    static func run(_ executable: URL, _ arguments: [String], log: URL) throws -> Outcome {
        let descriptor = open(log.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw SweepError.unreadable(file: log.path, reason: "cannot open for the run's output: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, descriptor, STDOUT_FILENO)
        posix_spawn_file_actions_adddup2(&actions, descriptor, STDERR_FILENO)
        let argv = ([executable.path] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let started = Date()
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable.path, &actions, nil, argv, environ)
        guard spawned == 0 else {
            throw SweepError.unreadable(file: executable.path, reason: "cannot start it: \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { break }
        }
        let seconds = Date().timeIntervalSince(started)
        #if os(Linux)
        let peak = Int(usage.ru_maxrss) * 1024
        #else
        let peak = Int(usage.ru_maxrss)
        #endif
        // WIFEXITED / WTERMSIG, which Swift does not import as macros.
        let signal = status & 0x7f
        return Outcome(exitStatus: signal == 0 ? (status >> 8) & 0xff : nil, signal: signal == 0 ? nil : signal,
                       peakResidentBytes: peak, seconds: seconds)
    }
}
