import Foundation

/// Measures sgemm throughput on square matrices.
public enum GemmBenchmark {
    /// One measured size.
    public struct Result: Codable, Sendable {
        public var size: Int
        public var seconds: Double
        public var gflops: Double

        public init(size: Int, seconds: Double, gflops: Double) {
            self.size = size
            self.seconds = seconds
            self.gflops = gflops
        }
    }

    /// Times C = A·B for each size (n×n), best of `repeats` after one warm-up, in GFLOP/s.
    public static func run(sizes: [Int], repeats: Int = 3) throws -> [Result] {
        try BLAS.load()
        var generator = SeededGenerator(seed: 1)
        return sizes.map { n in
            let a = Tensor(zeros: [n, n]), b = Tensor(zeros: [n, n]), c = Tensor(zeros: [n, n])
            a.fillNormal(std: 1, using: &generator)
            b.fillNormal(std: 1, using: &generator)
            func once() -> Double {
                let start = DispatchTime.now().uptimeNanoseconds
                sgemm(transposeA: false, transposeB: false, m: n, n: n, k: n,
                      a: a.pointer, lda: n, b: b.pointer, ldb: n, c: c.pointer, ldc: n)
                return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            }
            _ = once()
            let best = (0..<max(repeats, 1)).map { _ in once() }.min()!
            return Result(size: n, seconds: best, gflops: 2 * Double(n * n * n) / best / 1e9)
        }
    }
}
