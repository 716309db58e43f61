import CBLAS
import CVectorMath

/// Errors from loading or using the BLAS library.
public enum BLASError: Error, CustomStringConvertible {
    case unavailable(String)

    public var description: String {
        switch self {
        case .unavailable(let message): return message
        }
    }
}

/// OpenBLAS, loaded on first use with the best kernel the CPU supports (DESIGN.md §8).
public enum BLAS {
    /// Loads OpenBLAS if it is not loaded yet. Every matrix product calls this; call it early
    /// to turn a missing library into an error instead of a trap.
    public static func load() throws {
        var message = [CChar](repeating: 0, count: 512)
        if dpft_blas_load(&message, message.count) != 0 {
            throw BLASError.unavailable(String(decoding: message.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self))
        }
    }

    /// The kernel family OpenBLAS runs (e.g. "SkylakeX"); loads the library if needed.
    public static var coreName: String {
        (try? load()) == nil ? "unavailable" : String(cString: dpft_blas_corename())
    }

    /// The OPENBLAS_CORETYPE dpft picks for this CPU, or nil when it leaves OpenBLAS's choice.
    public static var preferredCoreType: String? {
        dpft_blas_preferred_coretype().map { String(cString: $0) }
    }

    /// True when dpft set OPENBLAS_CORETYPE (false when the user set it or none fits).
    public static var coreTypeChosenByDPFT: Bool { dpft_blas_coretype_was_chosen_by_dpft() != 0 }

    /// Runs `body` with OpenBLAS on one thread, then restores its thread count: for callers
    /// that run several small products at once on their own threads.
    public static func withOneThread<Result>(_ body: () throws -> Result) rethrows -> Result {
        let previous = threadCount
        guard previous > 1 else { return try body() }
        threadCount = 1
        defer { threadCount = previous }
        return try body()
    }

    /// Threads OpenBLAS uses.
    public static var threadCount: Int {
        get { (try? load()) == nil ? 1 : Int(dpft_blas_num_threads()) }
        set { if (try? load()) != nil { dpft_blas_set_num_threads(Int32(newValue)) } }
    }
}

// M, N, K = the sizes of C (M×N) = op(A) (M×K) · op(B) (K×N); all matrices row-major.

/// C = alpha · op(A) · op(B) + beta · C through `cblas_sgemm` (row-major).
///
/// `a` is M×K (or K×M when `transposeA`), `b` is K×N (or N×K when `transposeB`), `c` is M×N.
/// Leading dimensions are the row lengths as stored.
@inline(__always)
public func sgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                  alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                  b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if m == 0 || n == 0 { return }
    do { try BLAS.load() } catch { fatalError("\(error)") }
    dpft_sgemm(transposeA ? DPFTBlasTrans : DPFTBlasNoTrans,
               transposeB ? DPFTBlasTrans : DPFTBlasNoTrans,
               Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
               beta, c, Int32(ldc))
}

/// The upper triangle of the Gram matrix C = A·Aᵀ (N×N) of the N×K matrix `a`: dpft's own
/// AVX-512 / AVX2 kernel (`dpft_gram_upper`, CVectorMath/gram.c), else `cblas_ssyrk`. On one
/// Zen 4 core at N = 128 the kernel took 0.12–0.56 ms where ssyrk took 0.17–0.85 ms (K = 768 …
/// 3072), 9.5 ms against 11.9 ms at K = 50257 (GPT-2's head). Single-threaded either way;
/// `BookKeeper` runs one per core. Entries below the diagonal of `c` are not written.
@inline(__always)
public func gramUpper(n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if n == 0 { return }
    if dpft_gram_upper(n, k, a, lda, c, ldc) != 0 { return }
    do { try BLAS.load() } catch { fatalError("\(error)") }
    dpft_ssyrk_upper(Int32(n), Int32(k), a, Int32(lda), c, Int32(ldc))
}

/// The naive triple loop with the same contract as `sgemm`: the test oracle for the fast
/// kernel. Accumulates in double.
public func sgemmNaive(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                       alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                       b: UnsafePointer<Float>, ldb: Int,
                       beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    for i in 0..<m {
        for j in 0..<n {
            var sum = 0.0
            for p in 0..<k {
                let x = transposeA ? a[p * lda + i] : a[i * lda + p]
                let y = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                sum += Double(x) * Double(y)
            }
            let previous = beta == 0 ? 0 : beta * c[i * ldc + j]
            c[i * ldc + j] = alpha * Float(sum) + previous
        }
    }
}

extension Tensor {
    /// The matrix product op(self) · op(other) as a new tensor (both must be matrices).
    public func matmul(_ other: Tensor, transposeSelf: Bool = false,
                       transposeOther: Bool = false) -> Tensor {
        precondition(rank == 2 && other.rank == 2, "matmul needs matrices: \(shape) \(other.shape)")
        let m = transposeSelf ? shape[1] : shape[0]
        let k = transposeSelf ? shape[0] : shape[1]
        let k2 = transposeOther ? other.shape[1] : other.shape[0]
        let n = transposeOther ? other.shape[0] : other.shape[1]
        precondition(k == k2, "inner sizes differ: \(shape) · \(other.shape)")
        let result = Tensor(zeros: [m, n])
        sgemm(transposeA: transposeSelf, transposeB: transposeOther, m: m, n: n, k: k,
              a: pointer, lda: shape[1], b: other.pointer, ldb: other.shape[1],
              c: result.pointer, ldc: n)
        return result
    }
}
