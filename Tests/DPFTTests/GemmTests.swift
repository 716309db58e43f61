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
