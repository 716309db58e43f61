import Foundation
import Testing
@testable import DPFT

/// The array tanh and exp (libmvec's AVX2 variants where the CPU has them) against glibc's
/// scalar functions, computed in Double as the reference: within glibc's documented 4 ulp, the
/// special values kept, and each element's result independent of how the array is split.
@Suite struct VectorMathTests {
    /// Points across the range that matters (GELU arguments, shifted logits) plus edges.
    static let inputs: [Float] = {
        var values: [Float] = (-4000...4000).map { Float($0) / 400 }  // −10 … 10 in steps of 1/400
        values += [0, -0, 1e-30, -1e-30, 1e-7, -88, -87.3, 88.7, -104, 1e10, -1e10, .infinity, -.infinity]
        return values
    }()

    /// |y − reference| in units in the last place of the reference (Float).
    static func ulps(_ y: Float, _ reference: Double) -> Double {
        let r = Float(reference)
        if r == y { return 0 }
        return abs(Double(y) - reference) / Double(max(r.magnitude.ulp, Float.leastNormalMagnitude.ulp))
    }

    @Test func tanhIsWithinFourUlpsOfTheExactValue() {
        var y = [Float](repeating: .nan, count: Self.inputs.count)
        VectorMath.tanh(Self.inputs, into: &y, count: Self.inputs.count)
        var worst = 0.0
        for (x, value) in zip(Self.inputs, y) { worst = max(worst, Self.ulps(value, Foundation.tanh(Double(x)))) }
        #expect(worst <= 4, "worst error \(worst) ulp (vectorised: \(VectorMath.isVectorised))")
        #expect(y[Self.inputs.firstIndex(of: .infinity)!] == 1 && y[Self.inputs.firstIndex(of: -.infinity)!] == -1)
        var nan: [Float] = [.nan]
        VectorMath.tanh(nan, into: &nan, count: 1)
        #expect(nan[0].isNaN)
    }

    @Test func expIsWithinFourUlpsOfTheExactValue() {
        var y = [Float](repeating: .nan, count: Self.inputs.count)
        VectorMath.exp(Self.inputs, into: &y, count: Self.inputs.count)
        var worst = 0.0
        for (x, value) in zip(Self.inputs, y) where Foundation.exp(Double(x)) < Double(Float.greatestFiniteMagnitude) {
            worst = max(worst, Self.ulps(value, Foundation.exp(Double(x))))
        }
        #expect(worst <= 4, "worst error \(worst) ulp (vectorised: \(VectorMath.isVectorised))")
        #expect(y[Self.inputs.firstIndex(of: .infinity)!] == .infinity && y[Self.inputs.firstIndex(of: -.infinity)!] == 0)
        #expect(y[Self.inputs.firstIndex(of: 1e10)!] == .infinity)
    }

    /// Split into calls of 1…17 elements (every tail length), the results equal one call's.
    @Test func resultsDoNotDependOnHowTheArrayIsSplit() {
        let x = Array(Self.inputs.prefix(1000))
        var whole = [Float](repeating: 0, count: x.count)
        VectorMath.tanh(x, into: &whole, count: x.count)
        for size in 1...17 {
            var pieces = [Float](repeating: 0, count: x.count)
            x.withUnsafeBufferPointer { input in
                pieces.withUnsafeMutableBufferPointer { output in
                    for start in stride(from: 0, to: x.count, by: size) {
                        VectorMath.tanh(input.baseAddress! + start, into: output.baseAddress! + start,
                                        count: min(size, x.count - start))
                    }
                }
            }
            #expect(pieces == whole, "calls of \(size)")
        }
    }

    /// Sums and maxima of every length 0…40 (all tails) against a Double sum and a plain loop.
    @Test func sumAndMaximumMatchPlainLoops() {
        var generator = SeededGenerator(seed: 9)
        let x = (0..<40).map { _ in Float(Double(generator.next() % 2001) / 100 - 10) }
        for count in 0...x.count {
            let exact = x.prefix(count).reduce(0.0) { $0 + Double($1) }
            let magnitude = x.prefix(count).reduce(0.0) { $0 + Double(abs($1)) }
            #expect(abs(Double(VectorMath.sum(x, count: count)) - exact) <= magnitude * 4e-7, "sum of \(count)")
            #expect(VectorMath.maximum(x, count: count) == (x.prefix(count).max() ?? -.infinity), "max of \(count)")
        }
        var poisoned = x
        poisoned[33] = .nan
        #expect(VectorMath.maximum(poisoned, count: 40).isNaN && VectorMath.maximum(poisoned, count: 33) == x.prefix(33).max())
    }
}
