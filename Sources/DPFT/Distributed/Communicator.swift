import CMPI
import Foundation

/// Errors of a data-parallel run.
public enum DistributedError: Error, CustomStringConvertible, Equatable {
    /// Open MPI could not be loaded or initialised under mpirun.
    case cannotStart(String)
    /// The ranks' parameters differ after `step` (they must stay bit-identical).
    case ranksDisagree(step: Int, rank: Int)

    public var description: String {
        switch self {
        case .cannotStart(let reason): return "cannot start data-parallel training: \(reason)."
        case .ranksDisagree(let step, let rank):
            return "after step \(step) the parameters of rank \(rank) differ from rank 0's; the ranks must apply identical updates. Check that every rank runs the same dpft build on the same files, then --resume from the last checkpoint."
        }
    }
}

/// The processes of one run and the few collective operations data-parallel DP-SGD needs
/// (README "Training on several processes"): rank 0 draws each logical batch and its noise,
/// every rank clips its share, the clipped sums meet at rank 0, and the noised gradient goes
/// back to every rank, so all ranks take the same optimizer step.
///
/// `single` is one process with no MPI at all (every operation is the identity); `world()` is
/// MPI_COMM_WORLD when dpft was started by `mpirun`, else `single`.
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    private let usesMPI: Bool
    /// Bytes of gradient this rank reduced or broadcast so far (each float counts once per call).
    public private(set) var gradientBytesMoved = 0
    /// Seconds this rank spent in those calls, waiting for slower ranks included.
    public private(set) var gradientSeconds = 0.0

    private init(rank: Int, size: Int, usesMPI: Bool) {
        self.rank = rank
        self.size = size
        self.usesMPI = usesMPI
    }

    /// One process, no MPI.
    public static let single = Communicator(rank: 0, size: 1, usesMPI: false)

    nonisolated(unsafe) private static var started: Communicator?

    /// The job's communicator: MPI_COMM_WORLD under `mpirun` (Open MPI is loaded and
    /// initialised at the first call), `single` otherwise.
    public static func world() throws -> Communicator {
        if let started { return started }
        guard dpft_mpi_launched_by_mpirun() != 0 else { return single }
        var message = [CChar](repeating: 0, count: 512)
        guard dpft_mpi_init(&message, message.count) == 0 else {
            let text = message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            throw DistributedError.cannotStart(String(decoding: text, as: UTF8.self))
        }
        let world = Communicator(rank: Int(dpft_mpi_rank()), size: Int(dpft_mpi_size()), usesMPI: true)
        started = world
        return world
    }

    /// The communicator `world()` started, if it started MPI.
    public static var launched: Communicator? { started }

    /// Whether every rank of a data-parallel run raises `error` at the same point of the same
    /// step (a diverged step, disagreeing ranks): then rank 0 alone reports it, after writing
    /// the ledger, and no rank has to end the others.
    public static func isSeenByEveryRank(_ error: Error) -> Bool {
        if case RunError.diverged = error { return true }
        if case DistributedError.ranksDisagree = error { return true }
        return false
    }

    /// True on the rank that samples, adds noise and writes files.
    public var isRoot: Bool { rank == 0 }

    /// Sums `values` over all ranks into rank 0's buffer (the other ranks' are left as they were).
    func sumToRoot(_ values: UnsafeMutableBufferPointer<Float>) {
        guard usesMPI, size > 1 else { return }
        timed(bytes: values.count * MemoryLayout<Float>.size) {
            check(dpft_mpi_reduce_sum_float(values.baseAddress, values.count, 0), "MPI_Reduce")
        }
    }

    /// Rank 0's `values` on every rank.
    func broadcast(_ values: UnsafeMutableBufferPointer<Float>) {
        guard usesMPI, size > 1 else { return }
        timed(bytes: values.count * MemoryLayout<Float>.size) {
            check(dpft_mpi_broadcast(values.baseAddress, values.count * MemoryLayout<Float>.size, 0), "MPI_Bcast")
        }
    }

    /// Rank 0's integers on every rank (their count travels first).
    func broadcast(_ values: [Int]) -> [Int] {
        guard usesMPI, size > 1 else { return values }
        var count = Int64(values.count)
        check(dpft_mpi_broadcast(&count, 8, 0), "MPI_Bcast")
        var received = isRoot ? values.map(Int64.init) : [Int64](repeating: 0, count: Int(count))
        received.withUnsafeMutableBytes { check(dpft_mpi_broadcast($0.baseAddress, $0.count, 0), "MPI_Bcast") }
        return received.map(Int.init)
    }

    /// The element-wise sum of `values` over all ranks, on every rank.
    func sum(_ values: [Double]) -> [Double] {
        guard usesMPI, size > 1 else { return values }
        var result = values
        check(dpft_mpi_allreduce_sum_double(&result, Int32(result.count)), "MPI_Allreduce")
        return result
    }

    /// Waits until every rank arrives.
    public func barrier() {
        guard usesMPI, size > 1 else { return }
        check(dpft_mpi_barrier(), "MPI_Barrier")
    }

    /// Ends the whole job now with exit status `code` (every rank).
    public func abort(code: Int32) -> Never {
        if usesMPI { dpft_mpi_abort(code) }
        exit(code)
    }

    /// Ends MPI on this rank (a no-op without MPI); call once, before exiting.
    public func finalize() {
        if usesMPI { _ = dpft_mpi_finalize() }
    }

    private func timed(bytes: Int, _ body: () -> Void) {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        gradientSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        gradientBytesMoved += bytes
    }

    private func check(_ status: Int32, _ call: String) {
        // MPI's default handler ends the job on errors; a non-zero status means it was changed.
        precondition(status == 0, "\(call) failed with status \(status)")
    }
}
