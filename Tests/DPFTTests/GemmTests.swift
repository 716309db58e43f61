import CBLAS
import CVectorMath
import Testing
@testable import DPFT

@Suite struct GemmTests {
    static let cases: [(Bool, Bool)] = [(false, false), (true, false), (false, true), (true, true)]

    @Test(arguments: cases, [(1, 1, 1), (3, 5, 7), (17, 1, 33), (64, 31, 9), (129, 67, 250)])
    func sgemmMatchesNaiveKernel(transposes: (Bool, Bool), sizes: (Int, Int, Int)) throws {
        try BLAS.load()
        let (transposeA, transposeB) = transposes
        let (m, n, k) = sizes
        var generator = SeededGenerator(seed: UInt64(m * 1000 + n * 10 + k))
        let a = Tensor(zeros: transposeA ? [k, m] : [m, k])
        let b = Tensor(zeros: transposeB ? [n, k] : [k, n])
        a.fillNormal(std: 1, using: &generator)
        b.fillNormal(std: 1, using: &generator)
        let fast = Tensor(zeros: [m, n]), naive = Tensor(zeros: [m, n])
        fast.fillNormal(std: 1, using: &generator)
        naive.pointer.update(from: fast.pointer, count: fast.count)
        // alpha and beta both exercised: C = 0.5 op(A) op(B) + 2 C
        sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.5,
              a: a.pointer, lda: a.shape[1], b: b.pointer, ldb: b.shape[1],
              beta: 2, c: fast.pointer, ldc: n)
        sgemmNaive(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.5,
                   a: a.pointer, lda: a.shape[1], b: b.pointer, ldb: b.shape[1],
                   beta: 2, c: naive.pointer, ldc: n)
        var worst: Float = 0
        for i in 0..<fast.count {
            worst = max(worst, abs(fast.pointer[i] - naive.pointer[i]) / (1 + abs(naive.pointer[i])))
        }
        #expect(worst < 1e-4, "largest difference \(worst) for \(m)×\(n)×\(k) tA=\(transposeA) tB=\(transposeB)")
    }

    /// Every Gram path this CPU has (dpft's AVX2 and AVX-512 kernels, OpenBLAS's ssyrk) against
    /// the Gram in double: sizes that leave partial tiles (n mod 4, mod 3) and partial vectors
    /// (k mod 16, mod 8), several chunks along k (k > 1024), padded rows (lda > k) and a row
    /// stride of 4 KiB; the entries below the diagonal are left as they were.
    @Test(arguments: [(1, 1, 1), (5, 7, 9), (13, 300, 300), (128, 1024, 1024), (37, 2085, 2100), (130, 40, 56)])
    func gramUpperMatchesTheGramInDouble(sizes: (Int, Int, Int)) throws {
        try BLAS.load()
        let (n, k, lda) = sizes
        var generator = SeededGenerator(seed: UInt64(n * 100_000 + k))
        let a = Tensor(zeros: [n, lda])
        a.fillNormal(std: 1, using: &generator)
        var paths: [Int32?] = [nil]  // nil: ssyrk
        // A stride, not 1...best: a CPU without AVX2 has best path 0, and 1...0 traps.
        for path in stride(from: Int32(1), through: dpft_gram_best_path(), by: 1) { paths.append(path) }
        for path in paths {
            let c = Tensor(zeros: [n, n])
            c.pointer.update(repeating: -7, count: n * n)
            if let path {
                #expect(dpft_gram_upper_path(path, n, k, a.pointer, lda, c.pointer, n) == 1)
            } else {
                dpft_ssyrk_upper(Int32(n), Int32(k), a.pointer, Int32(lda), c.pointer, Int32(n))
            }
            var worst = 0.0
            for i in 0..<n {
                for j in 0..<n {
                    guard j >= i else {
                        #expect(c.pointer[i * n + j] == -7, "path \(String(describing: path)) wrote below the diagonal")
                        continue
                    }
                    var exact = 0.0, scale = 0.0
                    for p in 0..<k {
                        let x = Double(a.pointer[i * lda + p]), y = Double(a.pointer[j * lda + p])
                        exact += x * y
                        scale += abs(x * y)
                    }
                    worst = max(worst, abs(Double(c.pointer[i * n + j]) - exact) / scale)
                }
            }
            // float sums of k products: error ≤ k·2⁻²⁴ of Σ|x·y| in the worst case; a few ulps here
            #expect(worst < 1e-5, "path \(String(describing: path)): relative error \(worst) for n=\(n) k=\(k)")
        }
    }

    /// A path the CPU lacks is refused without touching C, and the default path is the best one.
    @Test func gramUpperRefusesAPathTheCPULacks() {
        var a: [Float] = [1, 2, 3], c: [Float] = [5]
        #expect(dpft_gram_upper_path(dpft_gram_best_path() + 1, 1, 3, &a, 3, &c, 1) == 0)
        #expect(c == [5])
        #expect(dpft_gram_upper_path(0, 1, 3, &a, 3, &c, 1) == 0)
        let expected: Int32 = dpft_gram_best_path() > 0 ? 1 : 0
        #expect(dpft_gram_upper(1, 3, &a, 3, &c, 1) == expected)
        if expected == 1 { #expect(c == [14]) }
    }

    @Test func matmulOfTensorsUsesTransposeFlags() throws {
        let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [2, 3], values: [1, 0, 1, 0, 1, 0])
        // a · bᵀ = [[4, 2], [10, 5]]
        #expect(a.matmul(b, transposeOther: true).values == [4, 2, 10, 5])
        // aᵀ · b = 3×3
        #expect(a.matmul(b, transposeSelf: true).values == [1, 4, 1, 2, 5, 2, 3, 6, 3])
    }

    @Test func preferredCoreMatchesCPUFlags() throws {
        try BLAS.load()
        // When dpft chose the core, OpenBLAS must report exactly that core.
        if BLAS.coreTypeChosenByDPFT, let preferred = BLAS.preferredCoreType {
            #expect(BLAS.coreName == preferred)
        }
    }
}
