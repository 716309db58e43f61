import Dispatch
import Foundation

/// Work split for the loops BLAS does not cover (norms, activations, softmax, attention).
public enum Parallel {
    /// Threads used by `forEachChunk` (the machine's active cores, at most 8).
    nonisolated(unsafe) public static var threadCount: Int =
        max(1, min(ProcessInfo.processInfo.activeProcessorCount, 8))

    /// Calls `body(range)` on contiguous, disjoint chunks of `0..<count`, one per thread.
    /// Counts below `2 · minimumPerChunk` run inline.
    @inline(__always)
    public static func forEachChunk(_ count: Int, minimumPerChunk: Int = 1,
                                    _ body: (Range<Int>) -> Void) {
        let chunks = min(threadCount, max(1, count / max(minimumPerChunk, 1)))
        if chunks <= 1 {
            body(0..<count)
            return
        }
        let size = (count + chunks - 1) / chunks
        // The chunks are disjoint by construction, which is what makes sharing the
        // (pointer-capturing, hence non-Sendable) body across threads sound.
        withoutActuallyEscaping(body) { escapable in
            let shared = UncheckedSendable(escapable)
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let start = chunk * size
                let end = min(count, start + size)
                if start < end { shared.value(start..<end) }
            }
        }
    }
}

/// Carries a value across threads where the caller guarantees the access is race-free.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
