import Foundation

// Log-space helpers for the accountants. Probabilities in accounting span hundreds of orders of
// magnitude (tails of Gaussians at 30σ, e^{α(α-1)/2σ²} moments), so they are carried as logs.

/// log(e^a + e^b) without overflow; −∞ stands for 0.
@inline(__always)
func logAddExp(_ a: Double, _ b: Double) -> Double {
    let (low, high) = a < b ? (a, b) : (b, a)
    if low == -.infinity { return high }
    return high + log1p(exp(low - high))
}

/// log(e^a − e^b) for a ≥ b; returns −∞ when a == b.
@inline(__always)
func logSubExp(_ a: Double, _ b: Double) -> Double {
    if b == -.infinity { return a }
    if a <= b { return -.infinity }
    let d = b - a   // < 0
    // log(1 − e^d): for d near 0 use log(−expm1(d)), otherwise log1p(−e^d) (both accurate there).
    return a + (d > -0.693 ? log(-expm1(d)) : log1p(-exp(d)))
}

/// log(e^x − 1) for x > 0.
@inline(__always)
func logExpm1(_ x: Double) -> Double {
    x > 30 ? x + log1p(-exp(-x)) : log(expm1(x))
}

/// log(1 + e^x).
@inline(__always)
func softplus(_ x: Double) -> Double {
    x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))
}

/// log(½ erfc(x)), accurate for all x: direct for x < 26, where erfc is a normal double, and
/// the asymptotic series of log erfc beyond (Abramowitz & Stegun 7.1.23; the terms below are
/// its expansion in the log, with error O(x⁻¹⁰) < 1e-13 at x ≥ 26).
func logHalfErfc(_ x: Double) -> Double {
    if x < 0 {
        // erfc(x) = 2 − erfc(−x): keep the small part exact.
        return log1p(-0.5 * erfc(-x))
    }
    if x < 26 { return log(0.5 * erfc(x)) }
    let inverseSquare = 1 / (x * x)
    let series = inverseSquare * (-0.5 + inverseSquare * (0.625 + inverseSquare
        * (-37.0 / 24.0 + inverseSquare * (353.0 / 64.0))))
    return -x * x - log(x) - 0.5 * log(Double.pi) + series - log(2.0)
}

/// log P(Z > z) for a standard normal Z.
@inline(__always)
func logNormalSurvival(_ z: Double) -> Double { logHalfErfc(z / 2.0.squareRoot()) }

/// log P(Z ≤ z) for a standard normal Z.
@inline(__always)
func logNormalCDF(_ z: Double) -> Double { logHalfErfc(-z / 2.0.squareRoot()) }

/// P(Z > z) for a standard normal Z.
@inline(__always)
func normalSurvival(_ z: Double) -> Double { 0.5 * erfc(z / 2.0.squareRoot()) }

/// P(Z ≤ z) for a standard normal Z.
@inline(__always)
func normalCDF(_ z: Double) -> Double { 0.5 * erfc(-z / 2.0.squareRoot()) }

/// A signed sum of terms given as (sign, log |term|), kept as two log-sum-exp accumulators so
/// that terms spanning hundreds of orders of magnitude add without overflow or underflow.
struct SignedLogSum {
    private(set) var logPositive = -Double.infinity
    private(set) var logNegative = -Double.infinity

    mutating func add(logMagnitude: Double, negative: Bool) {
        if negative { logNegative = logAddExp(logNegative, logMagnitude) }
        else { logPositive = logAddExp(logPositive, logMagnitude) }
    }

    /// log of the sum, or nil when the sum is not positive.
    var logValue: Double? {
        guard logPositive > logNegative else { return nil }
        return logSubExp(logPositive, logNegative)
    }

    /// The larger of the two accumulators: the scale against which new terms are judged.
    var logScale: Double { max(logPositive, logNegative) }
}

/// Nodes and weights of the n-point Gauss–Legendre rule on [−1, 1] (Newton on Pₙ from the
/// Chebyshev-like initial guesses; accurate to a few ulps for n ≤ 64).
func gaussLegendre(_ n: Int) -> (nodes: [Double], weights: [Double]) {
    var nodes = [Double](repeating: 0, count: n), weights = [Double](repeating: 0, count: n)
    for i in 0..<(n + 1) / 2 {
        var x = cos(Double.pi * (Double(i) + 0.75) / (Double(n) + 0.5))
        var derivative = 0.0
        for _ in 0..<100 {
            // Recurrence: (k+1) P_{k+1} = (2k+1) x P_k − k P_{k−1}.
            var p0 = 1.0, p1 = x
            for k in 1..<n {
                let p2 = (Double(2 * k + 1) * x * p1 - Double(k) * p0) / Double(k + 1)
                p0 = p1; p1 = p2
            }
            derivative = Double(n) * (x * p1 - p0) / (x * x - 1)
            let step = p1 / derivative
            x -= step
            if abs(step) < 1e-16 { break }
        }
        nodes[i] = -x; nodes[n - 1 - i] = x
        let weight = 2 / ((1 - x * x) * derivative * derivative)
        weights[i] = weight; weights[n - 1 - i] = weight
    }
    return (nodes, weights)
}
