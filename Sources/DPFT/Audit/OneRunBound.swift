import Foundation

/// The ε lower bound of a one-run privacy audit (Steinke, Nasr & Jagielski, "Privacy Auditing
/// with One (1) Training Run", NeurIPS 2023, Theorem 5.2 and the algorithm of its appendix).
///
/// m canaries are each put in the training set independently with probability 1/2. After
/// training, the auditor guesses "in" or "out" for r of them (abstaining on the rest) and is
/// right v times. If training is (ε, δ)-DP,
///
///     P[at least v correct] ≤ β + 2mδ·α,   β = P[Binomial(r, q) ≥ v],  q = e^ε / (1 + e^ε),
///                                          α = max_{1≤i≤v} P[v − i ≤ Binomial(r, q) < v] / i,
///
/// so every ε whose bound is below p is rejected at confidence 1 − p, and the largest such ε
/// is the empirical lower bound: a claim below it is contradicted by the experiment.
///
/// Written from the paper; checked against `tools/make_audit_fixtures.py` (scipy).
public enum OneRunBound {
    /// The probability bound above for ε (1 when it exceeds 1).
    public static func pValue(canaries m: Int, guesses r: Int, correct v: Int, epsilon: Double, delta: Double) -> Double {
        precondition(0 <= v && v <= r && r <= m, "need 0 ≤ correct ≤ guesses ≤ canaries")
        guard v > 0 else { return 1 }
        let logQ = -softplus(-epsilon), logNotQ = -softplus(epsilon)  // log q, log(1 − q)
        let pmf = { (k: Int) -> Double in exp(logBinomial(r, k) + Double(k) * logQ + Double(r - k) * logNotQ) }
        var beta = 0.0
        for k in v...r { beta += pmf(k) }
        var alpha = 0.0, below = 0.0
        for i in 1...v {
            below += pmf(v - i)
            alpha = max(alpha, below / Double(i))
        }
        return min(beta + 2 * Double(m) * delta * alpha, 1)
    }

    /// The largest ε rejected at confidence 1 − `p` (to 1e-9), or 0 when ε = 0 is not rejected.
    public static func epsilonLowerBound(canaries m: Int, guesses r: Int, correct v: Int, delta: Double,
                                         p: Double = 0.05) -> Double {
        func rejected(_ epsilon: Double) -> Bool {
            pValue(canaries: m, guesses: r, correct: v, epsilon: epsilon, delta: delta) < p
        }
        guard rejected(0) else { return 0 }
        var low = 0.0, high = 1.0
        while rejected(high) {
            low = high
            high *= 2
            if high > 1e4 { return low }  // only δ = 0 with every guess right gets here
        }
        while high - low > 1e-9 {
            let middle = (low + high) / 2
            if rejected(middle) { low = middle } else { high = middle }
        }
        return low
    }

    /// log C(n, k).
    static func logBinomial(_ n: Int, _ k: Int) -> Double {
        lgamma(Double(n) + 1) - lgamma(Double(k) + 1) - lgamma(Double(n - k) + 1)
    }

    /// log(1 + e^x) without overflow.
    static func softplus(_ x: Double) -> Double {
        x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))
    }
}
