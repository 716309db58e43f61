import Foundation

/// Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism.
///
/// One step at order α has RDP ε(α) = log(A_α)/(α − 1), with (Mironov, Talwar & Zhang 2019,
/// "Rényi Differential Privacy of the Sampled Gaussian Mechanism", §3)
///
///     A_α = E_{z ~ N(0, σ²)} [ (1 − q + q·exp((2z − 1)/(2σ²)))^α ],
///
/// the α-th moment of the likelihood ratio between the subsampled mixture
/// (1 − q)·N(0, σ²) + q·N(1, σ²) and N(0, σ²) — the quantity Opacus, TF Privacy and
/// dp_accounting account for add-or-remove neighbours.
/// RDP composes by addition, so a history costs Σ steps·ε_segment(α) — independent of the
/// number of steps. The (ε, δ) guarantee is the minimum over orders of Balle et al. 2020
/// ("Hypothesis testing interpretations and Rényi DP") Thm 21:
///
///     ε = rdp(α) + log((α − 1)/α) − (log δ + log α)/(α − 1),
///
/// the conversion Opacus and TF Privacy use (dp_accounting writes the same formula as Asoodeh
/// et al. Prop. 12). ε is also 0 when δ ≥ √(1 − e^{−rdp(α)}) (Bretagnolle–Huber bound on total
/// variation by KL ≤ rdp(α), as in dp_accounting), and never negative.
public struct RDPAccountant: Sendable {
    /// 1.1, 1.2, …, 10.9, then 12, 13, …, 64, then 80, 96, 128, 192, 256. The first two ranges
    /// are Opacus's and prv_accountant's defaults; the large orders serve small-ε runs
    /// (many-noise, few-step), where the best order would otherwise sit at 63.
    public static let defaultOrders: [Double] = {
        let fractional: [Double] = (11...109).map { (tenths: Int) -> Double in Double(tenths) / 10 }
        let whole: [Double] = (12...64).map { (order: Int) -> Double in Double(order) }
        let large: [Double] = [80, 96, 128, 192, 256]
        return fractional + whole + large
    }()

    /// The orders over which the conversion is minimised.
    public let orders: [Double]

    /// - Throws: `AccountingError.invalidOrders` for an empty list or an order ≤ 1 or not finite.
    public init(orders: [Double] = RDPAccountant.defaultOrders) throws {
        guard !orders.isEmpty else { throw AccountingError.invalidOrders("the list is empty") }
        if let bad = orders.first(where: { !($0 > 1) || !$0.isFinite }) {
            throw AccountingError.invalidOrders("order \(bad) is not a finite number > 1")
        }
        self.orders = orders
    }

    /// The accountant with `defaultOrders`.
    public init() { self.orders = RDPAccountant.defaultOrders }

    /// RDP of one step of the subsampled Gaussian mechanism at order `order` (> 1).
    ///
    /// Special cases: q = 0 or σ = ∞ → 0; q = 1 (no subsampling) → α/(2σ²), the Gaussian
    /// mechanism's RDP. Otherwise integer α use the exact finite sum and fractional α the
    /// convergent series of Mironov et al. §3.3; both in log space. Returns +∞ when the
    /// fractional series does not converge (the order is then skipped, which is conservative).
    public static func rdp(order alpha: Double, noiseMultiplier sigma: Double, sampleRate q: Double) -> Double {
        precondition(alpha > 1, "RDP order \(alpha) must be > 1")
        if q == 0 || sigma == .infinity { return 0 }
        if sigma == 0 { return .infinity }
        if q == 1 { return alpha / (2 * sigma * sigma) }
        if alpha == alpha.rounded() && alpha <= 1e6 {
            return rdpIntegerOrder(Int(alpha), sigma: sigma, q: q)
        }
        return rdpFractionalOrder(alpha, sigma: sigma, q: q)
    }

    /// Integer α (Mironov et al. 2019 §3.3, the sum Opacus and dp_accounting evaluate):
    ///     A_α = Σ_{k=0}^{α} C(α,k) (1−q)^{α−k} q^k exp((k² − k)/(2σ²)).
    /// Since Σ_k C(α,k)(1−q)^{α−k} q^k = 1 and the k = 0, 1 exponents vanish,
    ///     A_α − 1 = Σ_{k=2}^{α} C(α,k) (1−q)^{α−k} q^k expm1((k² − k)/(2σ²)),
    /// a sum of positive terms: it keeps full relative precision when A_α is within 1e-16 of 1
    /// (tiny q or huge σ), where log of the plain sum would round to 0.
    static func rdpIntegerOrder(_ alpha: Int, sigma: Double, q: Double) -> Double {
        let logQ = log(q), logOneMinusQ = log1p(-q), twoSigmaSquared = 2 * sigma * sigma
        var logBinomial = log(Double(alpha) * Double(alpha - 1) / 2)   // log C(α, 2)
        var logAMinusOne = -Double.infinity
        for k in 2...alpha {
            if k > 2 { logBinomial += log(Double(alpha - k + 1)) - log(Double(k)) }
            let exponent = Double(k * k - k) / twoSigmaSquared
            let term = logBinomial + Double(k) * logQ + Double(alpha - k) * logOneMinusQ + logExpm1(exponent)
            logAMinusOne = logAddExp(logAMinusOne, term)
        }
        return softplus(logAMinusOne) / Double(alpha - 1)   // log(1 + (A − 1)) / (α − 1)
    }

    /// Fractional α (Mironov et al. 2019 §3.3). Splitting the integral at
    /// z₀ = σ² log(1/q − 1) + ½, where q·e^{(2z−1)/(2σ²)} = 1 − q, and expanding each side by
    /// the binomial series (signed coefficients C(α,i) for i > α):
    ///
    ///     A_α = Σ_i C(α,i) (1−q)^{α−i} q^i     e^{(i²−i)/(2σ²)} Φ((z₀ − i)/σ)         (z ≤ z₀)
    ///         + Σ_i C(α,i) q^{α−i}     (1−q)^i e^{(j²−j)/(2σ²)} Φ((j − z₀)/σ), j = α − i (z > z₀).
    ///
    /// For q < ½ the first series' coefficients alone sum to (1−q)^α (1 + q/(1−q))^α = 1, so
    /// A_α − 1 is summed directly with factors e^{(i²−i)/(2σ²)}Φ(…) − 1 (via expm1), which keeps
    /// relative precision when A_α is near 1, as for integer orders; the terms then shrink
    /// geometrically and are added until they fall below e^{−40} of the running total. For
    /// q ≥ ½ the plain sum is used; its terms alternate and shrink slowly, and the mean of two
    /// consecutive partial sums is taken once it is exact to e^{−40}.
    static func rdpFractionalOrder(_ alpha: Double, sigma: Double, q: Double) -> Double {
        let logQ = log(q), logOneMinusQ = log1p(-q)
        let twoSigmaSquared = 2 * sigma * sigma
        let z0 = sigma * sigma * (logOneMinusQ - logQ) + 0.5
        let subtractOne = q < 0.5
        var sum = SignedLogSum()
        var logAbsBinomial = 0.0, binomialNegative = false   // C(α, 0) = 1
        var previousLeft = Double.infinity, previousRight = Double.infinity
        let maximumTerms = 200_000
        for i in 0..<maximumTerms {
            let di = Double(i), j = alpha - di
            // Left series (z ≤ z₀).
            let logCoefficientLeft = logAbsBinomial + di * logQ + j * logOneMinusQ
            let logFactor = (di * di - di) / twoSigmaSquared + logNormalCDF((z0 - di) / sigma)
            var logLeft: Double, leftNegative = binomialNegative
            if subtractOne {
                // factor − 1 = expm1(logFactor), of either sign.
                if logFactor > 0 {
                    logLeft = logCoefficientLeft + logExpm1(logFactor)
                } else if logFactor < 0 {
                    logLeft = logCoefficientLeft + log(-expm1(logFactor))
                    leftNegative.toggle()
                } else {
                    logLeft = -.infinity
                }
            } else {
                logLeft = logCoefficientLeft + logFactor
            }
            // Right series (z > z₀).
            let logRight = logAbsBinomial + j * logQ + di * logOneMinusQ
                + (j * j - j) / twoSigmaSquared + logNormalCDF((j - z0) / sigma)
            sum.add(logMagnitude: logLeft, negative: leftNegative)
            sum.add(logMagnitude: logRight, negative: binomialNegative)
            if di > alpha + 1 {
                if subtractOne {
                    // Geometric convergence (ratio ≤ q/(1−q) < 1): stop when the terms are negligible.
                    if logLeft <= previousLeft, logRight <= previousRight,
                       max(logLeft, logRight) < sum.logScale - 40 {
                        guard let logValue = sum.logValue else { return .infinity }
                        return softplus(logValue) / (alpha - 1)
                    }
                } else {
                    // q ≥ ½: past i > α + 1 the terms alternate in sign (with C(α, i)) and shrink
                    // only like i^{−α−2}. The mean of two consecutive partial sums, S_i − t_i/2,
                    // is then off by about |t_{i−1}| − |t_i|; stop when that is negligible.
                    let logTerm = logAddExp(logLeft, logRight)
                    let logPrevious = logAddExp(previousLeft, previousRight)
                    if logTerm <= logPrevious, logSubExp(logPrevious, logTerm) < sum.logScale - 40 {
                        sum.add(logMagnitude: logTerm - log(2.0), negative: !binomialNegative)
                        guard let logValue = sum.logValue else { return .infinity }
                        return logValue / (alpha - 1)
                    }
                }
            }
            previousLeft = logLeft; previousRight = logRight
            // C(α, i+1) = C(α, i)·(α − i)/(i + 1).
            logAbsBinomial += log(abs(alpha - di)) - log(di + 1)
            if alpha - di < 0 { binomialNegative.toggle() }
        }
        return .infinity
    }

    /// Composed RDP of `history` at each of `orders`: Σ_segments steps · rdp(α).
    /// - Throws: `AccountingError` for an invalid segment.
    public func rdp(history: [MechanismSegment]) throws -> [Double] {
        var total = [Double](repeating: 0, count: orders.count)
        for segment in history {
            try segment.validate()
            if segment.isFree { continue }
            for (index, alpha) in orders.enumerated() {
                let perStep = RDPAccountant.rdp(order: alpha, noiseMultiplier: segment.noiseMultiplier,
                                                sampleRate: segment.sampleRate)
                total[index] += Double(segment.steps) * perStep
            }
        }
        return total
    }

    /// (ε, δ) from composed RDP values `rdp` (one per order): the minimum over orders of Balle
    /// et al. 2020 Thm 21 (see the type's documentation), the minimising order, and warnings.
    /// - Throws: `AccountingError.invalidDelta` for δ ∉ (0, 1).
    public func epsilon(rdp: [Double], delta: Double) throws -> PrivacySpent {
        guard delta > 0, delta < 1 else { throw AccountingError.invalidDelta(delta) }
        precondition(rdp.count == orders.count, "\(rdp.count) RDP values for \(orders.count) orders")
        var best = Double.infinity, bestIndex: Int? = nil
        for (index, alpha) in orders.enumerated() {
            let value = rdp[index]
            guard value.isFinite, value >= 0 else { continue }
            if value == 0 { best = 0; bestIndex = nil; break }
            var epsilon = value + log1p(-1 / alpha) - (log(delta) + log(alpha)) / (alpha - 1)
            // Bretagnolle–Huber: TV ≤ √(1 − e^{−KL}) and KL ≤ rdp(α), so δ above that gives ε = 0.
            if delta * delta + expm1(-value) > 0 { epsilon = 0 }
            if epsilon < best { best = epsilon; bestIndex = index }
        }
        var warnings: [String] = []
        if let bestIndex, best > 0, bestIndex == 0 || bestIndex == orders.count - 1 {
            let end = bestIndex == 0 ? "smallest" : "largest"
            warnings.append("the best RDP order \(orders[bestIndex]) is the \(end) order tried; ε may be tighter beyond it (or use --accountant prv).")
        }
        return PrivacySpent(epsilon: max(0, best), delta: delta, accountant: .rdp,
                            rdpOrder: bestIndex.map { orders[$0] }, warnings: warnings)
    }

    /// ε spent by `history` at `delta`.
    /// - Throws: `AccountingError` for an invalid segment or δ.
    public func epsilon(history: [MechanismSegment], delta: Double) throws -> PrivacySpent {
        try validate(history: history, delta: delta)
        return try epsilon(rdp: rdp(history: history), delta: delta)
    }
}
