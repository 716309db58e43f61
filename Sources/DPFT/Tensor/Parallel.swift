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
        forEachChunk(count, minimumPerChunk: minimumPerChunk) { _, range in body(range) }
    }

    /// `forEachChunk`'s chunks with their index: `body(chunk, range)`, chunk in 0..<chunks.
    @inline(__always)
    static func forEachChunk(_ count: Int, minimumPerChunk: Int = 1, _ body: (Int, Range<Int>) -> Void) {
        let chunks = chunkCount(count, minimumPerChunk: minimumPerChunk)
        if chunks <= 1 {
            body(0, 0..<count)
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
                if start < end { shared.value(chunk, start..<end) }
            }
        }
    }

    /// `body(range)` of every chunk of `forEachChunk`, the results in chunk order.
    static func mapChunks<Result>(_ count: Int, minimumPerChunk: Int = 1, _ body: (Range<Int>) -> Result) -> [Result] {
        var results = [Result?](repeating: nil, count: max(1, chunkCount(count, minimumPerChunk: minimumPerChunk)))
        results.withUnsafeMutableBufferPointer { results in
            // Each chunk writes only its own slot.
            let shared = UncheckedSendable(results)
            forEachChunk(count, minimumPerChunk: minimumPerChunk) { chunk, range in shared.value[chunk] = body(range) }
        }
        return results.compactMap { $0 }
    }

    /// Chunks `forEachChunk` makes of `count` items: one per thread, each of at least
    /// `minimumPerChunk` items (one chunk when there are fewer than twice as many).
    private static func chunkCount(_ count: Int, minimumPerChunk: Int) -> Int {
        min(threadCount, max(1, count / max(minimumPerChunk, 1)))
    }
}

/// Carries a value across threads where the caller guarantees the access is race-free.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
