import Foundation

// Privacy-loss distributions (PLDs) of one step of the Poisson-subsampled Gaussian mechanism,
// discretised on the grid of losses {k·h}. Sizes: n = grid points of one step's PLD.
//
// Remove direction (a neighbour without the example): P = (1−q)N(0,σ²) + qN(1,σ²) against
// Q = N(0,σ²); the privacy loss of an output x is
//     ℓ(x) = log(P(x)/Q(x)) = log(1 − q + q·e^{t}),   t = (2x − 1)/(2σ²),
// increasing in x, bounded below by log(1 − q). Add direction: P' = N(0,σ²) against
// Q' = the mixture, loss −ℓ(x), bounded above by −log(1 − q). Under add-or-remove neighbours the
// guarantee is the worse of the two (dp_accounting computes both; Opacus and prv_accountant
// only the remove one, which dominates in every case we have checked).
//
// The hockey-stick divergence δ(ε) = sup_S P(S) − e^ε Q(S) of one step has a closed form:
//     remove: δ(ε) = q·G(x_ε)                               for ε > log(1−q), else 1 − e^ε,
//     add:    δ(ε) = (1 − e^ε(1−q))·G(1 − x_{−ε})           for ε < −log(1−q), else 0,
// where x_ε = ℓ⁻¹(ε) = ½ + σ²·log(1 + (e^ε − 1)/q) and G(x) = Φ̄((x−1)/σ) − e^{t(x)} Φ̄(x/σ)
// is the Gaussian mechanism's hockey stick at its loss t(x) (Φ̄ = standard normal tail).

/// One step of the Poisson-subsampled Gaussian mechanism, as a pair of distributions.
struct SubsampledGaussian {
    let sigma: Double
    let sampleRate: Double

    enum Direction { case remove, add }

    /// ℓ(x) = log(1 − q + q·e^{(2x−1)/(2σ²)}), accurate both near 0 and for large x.
    func loss(_ x: Double) -> Double {
        let t = (2 * x - 1) / (2 * sigma * sigma)
        if sampleRate == 1 { return t }
        let increment = sampleRate * expm1(t)   // ℓ = log1p(q·(e^t − 1))
        if t < 1, increment.isFinite, increment > -0.5 { return log1p(increment) }
        return logAddExp(log1p(-sampleRate), log(sampleRate) + t)
    }

    /// x_ε = ℓ⁻¹(ε) = ½ + σ² log(1 + (e^ε − 1)/q), for ε > log(1 − q).
    func inverseLoss(_ epsilon: Double) -> Double {
        let t: Double
        if sampleRate == 1 {
            t = epsilon
        } else if epsilon > 1 {
            // log((e^ε − 1 + q)/q) = ε + log1p((q − 1)e^{−ε}) − log q, free of overflow.
            t = epsilon + log1p((sampleRate - 1) * exp(-epsilon)) - log(sampleRate)
        } else {
            t = log1p(expm1(epsilon) / sampleRate)
        }
        return 0.5 + sigma * sigma * t
    }

    /// log G(x), G(x) = Φ̄((x−1)/σ) − e^{t}Φ̄(x/σ) ≥ 0 with t = (2x−1)/(2σ²), computed as
    /// Φ̄((x−1)/σ)·(1 − e^{t + log Φ̄(x/σ) − log Φ̄((x−1)/σ)}) so that it keeps relative precision
    /// deep in the tails.
    func logGaussianHockeyStick(_ x: Double) -> Double {
        let logUpper = logNormalSurvival((x - 1) / sigma)
        let t = (2 * x - 1) / (2 * sigma * sigma)
        let exponent = t + logNormalSurvival(x / sigma) - logUpper
        guard exponent < 0 else { return -.infinity }
        return logUpper + (exponent > -0.693 ? log(-expm1(exponent)) : log1p(-exp(exponent)))
    }

    /// The hockey-stick divergence δ(ε) of one step in `direction`.
    func delta(_ epsilon: Double, _ direction: Direction) -> Double {
        let logOneMinusQ = log1p(-sampleRate)
        switch direction {
        case .remove:
            if epsilon <= logOneMinusQ { return -expm1(epsilon) }
            return min(1, sampleRate * exp(logGaussianHockeyStick(inverseLoss(epsilon))))
        case .add:
            if epsilon >= -logOneMinusQ { return 0 }
            let factor = -expm1(epsilon + logOneMinusQ)   // 1 − e^ε(1 − q) > 0
            return min(1, factor * exp(logGaussianHockeyStick(1 - inverseLoss(-epsilon))))
        }
    }

    /// F(t) = P(ℓ(X) ≤ t) and 1 − F(t) for X ~ P (remove direction): the CDF of the privacy
    /// random variable of Gopi et al. 2021.
    func lossDistribution(_ t: Double) -> (cdf: Double, survival: Double) {
        if t <= log1p(-sampleRate) { return (0, 1) }
        if t == .infinity { return (1, 0) }
        let x = inverseLoss(t)
        let q = sampleRate
        let cdf = (1 - q) * normalCDF(x / sigma) + q * normalCDF((x - 1) / sigma)
        let survival = (1 - q) * normalSurvival(x / sigma) + q * normalSurvival((x - 1) / sigma)
        return (cdf, survival)
    }

    /// E[ℓ(X); a ≤ ℓ(X) ≤ b] for X ~ P (remove direction), by composite Gauss–Legendre
    /// quadrature in x over [ℓ⁻¹(a), ℓ⁻¹(b)] ∩ [−40σ, 1 + 40σ] (the mixture has no mass beyond).
    /// Panels are min(σ, σ²)/2 wide: σ is the width of the Gaussians, σ² the scale on which ℓ
    /// turns from ≈ q(e^t − 1) to ≈ t + log q.
    func truncatedLossMoment(from a: Double, to b: Double) -> Double {
        let lowerX = a <= log1p(-sampleRate) ? -40 * sigma : max(-40 * sigma, inverseLoss(a))
        let upperX = b == .infinity ? 1 + 40 * sigma : min(1 + 40 * sigma, inverseLoss(b))
        guard upperX > lowerX else { return 0 }
        let panelWidth = min(sigma, sigma * sigma) / 2
        let panels = max(1, Int(((upperX - lowerX) / panelWidth).rounded(.up)))
        let width = (upperX - lowerX) / Double(panels)
        let rule = SubsampledGaussian.quadratureRule
        let q = sampleRate, normalisation = 1 / (sigma * (2 * Double.pi).squareRoot())
        var total = 0.0
        for panel in 0..<panels {
            let center = lowerX + (Double(panel) + 0.5) * width
            var panelSum = 0.0
            for (node, weight) in zip(rule.nodes, rule.weights) {
                let x = center + 0.5 * width * node
                let density = normalisation * ((1 - q) * exp(-x * x / (2 * sigma * sigma))
                                               + q * exp(-(x - 1) * (x - 1) / (2 * sigma * sigma)))
                panelSum += weight * density * loss(x)
            }
            total += 0.5 * width * panelSum
        }
        return total
    }

    static let quadratureRule = gaussLegendre(20)

    /// The range of ε over which connect-the-dots discretises δ(ε), as dp_accounting does: the
    /// losses at the points where either Gaussian of the pair has tail mass ½e^{−50}; beyond it
    /// δ is kept exactly as the mass at +∞ (upper end) and 1 − δ at the lower end (Doroshenko
    /// et al. 2022, Alg. 1).
    func connectTheDotsRange(_ direction: Direction) -> (lower: Double, upper: Double) {
        let z = SubsampledGaussian.truncationQuantile
        let low = loss(-sigma * z), high = loss(1 + sigma * z)
        switch direction {
        case .remove: return (low, high)
        case .add: return (-high, -low)
        }
    }

    /// z with P(Z > z) = ½e^{−50} (≈ 10.0), found by bisection on the log tail.
    static let truncationQuantile: Double = {
        let target = log(0.5) - 50
        var low = 0.0, high = 40.0
        for _ in 0..<200 {
            let middle = 0.5 * (low + high)
            if logNormalSurvival(middle) > target { low = middle } else { high = middle }
        }
        return high
    }()
}

/// A privacy-loss distribution on the grid {k·h}: mass `masses[i]` at loss (lowerIndex + i)·h,
/// plus `infinityMass` at +∞ (outputs only one side of the pair can produce).
struct DiscretePLD {
    var lowerIndex: Int
    var masses: [Double]
    var infinityMass: Double
    /// A constant added to every loss (Gopi et al.'s mean-matching shift); 0 for connect-the-dots.
    var lossShift: Double = 0

    var upperIndex: Int { lowerIndex + masses.count - 1 }
}

enum Discretisation {
    /// Largest number of grid points one step's PLD may have.
    static let maximumPoints = 1 << 22

    /// Grid indices `lower...upper` as integers, checked before conversion: a non-finite end
    /// (σ so small that losses overflow) or a span over `maximumPoints` is `gridTooLarge`,
    /// never a trap converting an out-of-range Double to Int.
    static func gridIndices(_ lower: Double, _ upper: Double) throws -> (Int, Int) {
        let span = upper - lower + 1
        guard lower.isFinite, upper.isFinite, span <= Double(maximumPoints) else {
            let points = span.isFinite ? Int(min(span, Double(Int.max / 2))) : Int.max / 2
            throw AccountingError.gridTooLarge(points: points, limit: maximumPoints)
        }
        return (Int(lower), Int(upper))
    }

    /// Pessimistic connect-the-dots PLD (Doroshenko, Ghazi, Kamath, Kumar & Manurangsi 2022,
    /// "Connect the Dots", Alg. 1 with equal gaps, as dp_accounting's
    /// `create_pmf_pessimistic_connect_dots_fixed_gap`). With δᵢ = δ(εᵢ) on εᵢ = i·h, i = 1…n:
    ///
    ///     mass(ε₁) = (1 − δ₁) + (δ₂ − δ₁)/(e^h − 1)
    ///     mass(εᵢ) = ((δᵢ₊₁ − δᵢ) − e^h(δᵢ − δᵢ₋₁))/(e^h − 1)          1 < i < n
    ///     mass(εₙ) = (δₙ − δₙ₋₁)/(e^{−h} − 1),    mass(+∞) = δₙ.
    ///
    /// Its δ-curve, a function of e^ε, interpolates the true convex one linearly through the
    /// points (0, 1), (e^{εᵢ}, δᵢ) and stays at δₙ beyond: it lies above the true curve for every
    /// ε, so the discrete pair dominates the mechanism and so does its composition (the reported
    /// ε is an upper bound).
    static func connectTheDots(_ mechanism: SubsampledGaussian, _ direction: SubsampledGaussian.Direction,
                               h: Double) throws -> DiscretePLD {
        let range = mechanism.connectTheDotsRange(direction)
        let (lower, upper) = try gridIndices((range.lower / h).rounded(.down), (range.upper / h).rounded(.up))
        let count = upper - lower + 1
        var deltas = [Double](repeating: 0, count: count)
        var running = 1.0
        for i in 0..<count {
            // δ is non-increasing; the running minimum removes rounding wiggles.
            running = min(running, mechanism.delta(Double(lower + i) * h, direction))
            deltas[i] = running
        }
        if count == 1 {
            return DiscretePLD(lowerIndex: lower, masses: [1 - deltas[0]], infinityMass: deltas[0])
        }
        let expm1H = expm1(h), expH = exp(h)
        var masses = [Double](repeating: 0, count: count)
        masses[0] = (1 - deltas[0]) + (deltas[1] - deltas[0]) / expm1H
        for i in 1..<(count - 1) {
            masses[i] = ((deltas[i + 1] - deltas[i]) - expH * (deltas[i] - deltas[i - 1])) / expm1H
        }
        masses[count - 1] = (deltas[count - 1] - deltas[count - 2]) / expm1(-h)
        for i in 0..<count where masses[i] < 0 { masses[i] = 0 }
        return DiscretePLD(lowerIndex: lower, masses: masses, infinityMass: deltas[count - 1])
    }

    /// The mean-preserving discretisation of Gopi, Lee & Wutschitz 2021 (§5, as prv_accountant's
    /// `CellCentred`): the remove-direction privacy random variable truncated to
    /// [`lowerTruncation`, `upperTruncation`] and renormalised, with the mass of each cell
    /// [kh − h/2, kh + h/2] at kh, then every loss shifted by the constant that makes the
    /// discrete mean equal the continuous truncated mean.
    static func meanPreserving(_ mechanism: SubsampledGaussian, h: Double,
                               lowerTruncation: Double, upperTruncation: Double) throws -> DiscretePLD {
        let support = max(lowerTruncation, log1p(-mechanism.sampleRate))
        // Above ℓ(1 + 40σ) the mixture has no mass in double precision.
        let top = min(upperTruncation, mechanism.loss(1 + 40 * mechanism.sigma))
        let (lower, upper) = try gridIndices((support / h + 0.5).rounded(.down), (top / h - 0.5).rounded(.up))
        let count = max(1, upper - lower + 1)
        let bottomEdge = mechanism.lossDistribution(lowerTruncation)
        let topEdge = mechanism.lossDistribution(upperTruncation)
        // Mass inside the truncation; from whichever side of the median is more precise.
        let kept = bottomEdge.cdf < 0.5 ? (topEdge.cdf - bottomEdge.cdf) : (bottomEdge.survival - topEdge.survival)
        var masses = [Double](repeating: 0, count: count)
        var left = mechanism.lossDistribution(max(lowerTruncation, (Double(lower) - 0.5) * h))
        var discreteMean = 0.0
        for i in 0..<count {
            let edge = min(upperTruncation, (Double(lower + i) + 0.5) * h)
            let right = i == count - 1 ? topEdge : mechanism.lossDistribution(edge)
            let mass = left.cdf < 0.5 ? right.cdf - left.cdf : left.survival - right.survival
            masses[i] = max(0, mass) / kept
            discreteMean += masses[i] * Double(lower + i) * h
            left = right
        }
        let continuousMean = mechanism.truncatedLossMoment(from: lowerTruncation, to: upperTruncation) / kept
        return DiscretePLD(lowerIndex: lower, masses: masses, infinityMass: 0,
                           lossShift: continuousMean - discreteMean)
    }
}
