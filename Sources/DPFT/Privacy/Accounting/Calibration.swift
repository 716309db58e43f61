import Foundation

/// A noise multiplier found for a target ε, with the ε it actually spends.
public struct NoiseCalibration: Sendable, Equatable {
    /// σ: with it, the run spends `spent.epsilon` ≤ `targetEpsilon`.
    public var noiseMultiplier: Double
    /// The target that was asked for.
    public var targetEpsilon: Double
    /// ε (and accountant details) at `noiseMultiplier`.
    public var spent: PrivacySpent
}

extension Accountant {
    /// Smallest σ searched by calibration; a looser target returns this σ.
    public static let smallestNoiseMultiplier = 0.05
    /// Largest σ searched by calibration; a target it cannot reach is an error.
    public static let largestNoiseMultiplier = 1000.0

    /// The noise multiplier for which `steps` more steps at sample rate `sampleRate` (after
    /// `history`, e.g. a run's ledger so far) spend at most `targetEpsilon` at `delta`.
    ///
    /// ε(σ) is decreasing, so σ is bracketed and then narrowed in log σ by regula falsi (the
    /// Illinois variant, with bisection as fallback) until the bracket's upper end spends
    /// ε ∈ [target − tolerance, target], where the tolerance is `tolerance` or 10⁻⁴·target,
    /// whichever is larger (ε = 1000 needs no 0.01 precision, and each probe of a large ε
    /// composes a wide grid). The returned σ always satisfies ε(σ) ≤ target: the guarantee is
    /// never rounded the wrong way. σ is searched in
    /// [`smallestNoiseMultiplier`, `largestNoiseMultiplier`].
    /// - Throws: `AccountingError` for an invalid target, tolerance, δ, q or step count (< 1),
    ///   and `.unreachableEpsilon` when even the largest σ spends more than the target.
    public func noiseMultiplier(targetEpsilon: Double, delta: Double, sampleRate: Double, steps: Int,
                                history: [MechanismSegment] = [], tolerance: Double = 0.01) throws -> NoiseCalibration {
        guard targetEpsilon > 0, targetEpsilon.isFinite else { throw AccountingError.invalidEpsilon(targetEpsilon) }
        guard tolerance > 0, tolerance.isFinite else { throw AccountingError.invalidTolerance(tolerance) }
        guard delta > 0, delta < 1 else { throw AccountingError.invalidDelta(delta) }
        guard sampleRate > 0, sampleRate <= 1 else { throw AccountingError.invalidSampleRate(sampleRate) }
        guard steps >= 1, steps <= MechanismSegment.maximumSteps else { throw AccountingError.invalidSteps(steps) }
        for segment in history { try segment.validate() }

        let search = CalibrationSearch(accountant: self, targetEpsilon: targetEpsilon, delta: delta,
                                       sampleRate: sampleRate, steps: steps, history: history,
                                       tolerance: max(tolerance, 1e-4 * targetEpsilon))
        var start = 1.0
        if self == .prv, let rdp = try? Accountant.rdp.noiseMultiplier(
            targetEpsilon: targetEpsilon, delta: delta, sampleRate: sampleRate, steps: steps,
            history: history, tolerance: tolerance) {
            // The RDP answer is a good (and usually sufficient) starting σ for PRV. (RDP may not
            // reach a target that the tighter PRV reaches; then the search starts from 1.)
            start = rdp.noiseMultiplier
        }
        switch try search.bracket(from: start) {
        case .found(let sigma):
            return search.calibration(sigma)
        case .between(let lower, let upper):
            return search.calibration(try search.refine(lower: lower, upper: upper))
        }
    }

    /// The largest number of further steps at (σ, q) after `history` that keeps ε ≤
    /// `epsilonBudget` at `delta` (0 when the history alone exceeds it), capped at `limit`.
    /// ε grows with steps, so this is an exponential search followed by bisection; with the
    /// PRV accountant each probe composes a full history (seconds in all for 10⁵ steps), with
    /// RDP only the per-order sums change (milliseconds).
    /// - Throws: `AccountingError` for an invalid budget, δ, σ, q or history.
    public func maxSteps(epsilonBudget: Double, delta: Double, noiseMultiplier: Double, sampleRate: Double,
                         history: [MechanismSegment] = [], limit: Int = 100_000_000) throws -> Int {
        guard epsilonBudget > 0, epsilonBudget.isFinite else { throw AccountingError.invalidEpsilon(epsilonBudget) }
        guard delta > 0, delta < 1 else { throw AccountingError.invalidDelta(delta) }
        let limit = min(limit, MechanismSegment.maximumSteps)
        let probe = MechanismSegment(noiseMultiplier: noiseMultiplier, sampleRate: sampleRate, steps: 1)
        try probe.validate()
        for segment in history { try segment.validate() }

        let fits: (Int) throws -> Bool
        switch self {
        case .rdp:
            let accountant = RDPAccountant()
            let base = try accountant.rdp(history: history)
            let perStep = try accountant.rdp(history: [probe])
            fits = { steps in
                let total = zip(base, perStep).map { $0 + Double(steps) * $1 }
                return try accountant.epsilon(rdp: total, delta: delta).epsilon <= epsilonBudget
            }
        case .prv:
            fits = { steps in
                var segment = probe
                segment.steps = steps
                do {
                    return try epsilon(history: history + [segment], delta: delta).epsilon <= epsilonBudget
                } catch AccountingError.gridTooLarge {
                    return false
                }
            }
        }
        guard try fits(0) else { return 0 }
        var good = 0, bad = 1
        if self == .prv {
            // Start from the RDP answer, which PRV (tighter) almost always allows.
            let rdpSteps = try Accountant.rdp.maxSteps(epsilonBudget: epsilonBudget, delta: delta,
                                                       noiseMultiplier: noiseMultiplier, sampleRate: sampleRate,
                                                       history: history, limit: limit)
            if rdpSteps >= limit, try fits(limit) { return limit }
            if rdpSteps > 0, try fits(rdpSteps) { good = rdpSteps; bad = rdpSteps + 1 }
        }
        var step = max(1, good / 4)
        while try fits(bad) {
            good = bad
            if bad >= limit { return limit }
            bad = min(limit, bad + step)
            step *= 2
        }
        while bad - good > 1 {
            let middle = good + (bad - good) / 2
            if try fits(middle) { good = middle } else { bad = middle }
        }
        return good
    }
}

/// One noise calibration's search over σ, with the ε of every σ it probed.
private final class CalibrationSearch {
    let accountant: Accountant
    let targetEpsilon: Double, delta: Double, sampleRate: Double, steps: Int, tolerance: Double
    let history: [MechanismSegment]
    private var evaluations: [Double: PrivacySpent] = [:]

    init(accountant: Accountant, targetEpsilon: Double, delta: Double, sampleRate: Double, steps: Int,
         history: [MechanismSegment], tolerance: Double) {
        (self.accountant, self.targetEpsilon, self.delta, self.sampleRate, self.steps, self.history,
         self.tolerance) = (accountant, targetEpsilon, delta, sampleRate, steps, history, tolerance)
    }

    enum Bracket { case found(Double), between(lower: Double, upper: Double) }

    /// ε at σ; a σ too small for the PRV grid counts as spending too much.
    func spent(_ sigma: Double) throws -> Double {
        if let known = evaluations[sigma] { return known.epsilon }
        let segment = MechanismSegment(noiseMultiplier: sigma, sampleRate: sampleRate, steps: steps)
        do {
            let result = try accountant.epsilon(history: history + [segment], delta: delta)
            evaluations[sigma] = result
            return result.epsilon
        } catch AccountingError.gridTooLarge {
            return .infinity
        }
    }

    func calibration(_ sigma: Double) -> NoiseCalibration {
        NoiseCalibration(noiseMultiplier: sigma, targetEpsilon: targetEpsilon, spent: evaluations[sigma]!)
    }

    /// A bracket [lower, upper] with ε(lower) > target ≥ ε(upper), grown from `start` by factors
    /// 1.5 (down) or 2 (up); or the smallest σ when even it meets the target.
    func bracket(from start: Double) throws -> Bracket {
        var lower = start, upper = start
        if try spent(start) <= targetEpsilon {
            while true {
                lower = max(Accountant.smallestNoiseMultiplier, upper / 1.5)
                if try spent(lower) > targetEpsilon { return .between(lower: lower, upper: upper) }
                if lower == Accountant.smallestNoiseMultiplier { return .found(lower) }
                upper = lower
            }
        }
        while true {
            upper = min(Accountant.largestNoiseMultiplier, lower * 2)
            if try spent(upper) <= targetEpsilon { return .between(lower: lower, upper: upper) }
            if upper == Accountant.largestNoiseMultiplier {
                throw AccountingError.unreachableEpsilon(
                    target: targetEpsilon, delta: delta, smallestReachable: try spent(upper),
                    largestNoiseMultiplier: upper)
            }
            lower = upper
        }
    }

    /// Illinois regula falsi on g(x) = ε(eˣ) − target, x = log σ: g > 0 at x₀, g ≤ 0 at x₁.
    /// The secant uses weights w; the end kept twice in a row has its weight halved. Returns
    /// the final upper end, which spends at most the target.
    func refine(lower: Double, upper: Double) throws -> Double {
        var sigma0 = lower, sigma1 = upper
        let g0 = try spent(sigma0) - targetEpsilon, g1Start = try spent(sigma1) - targetEpsilon
        var g1 = g1Start, w0 = g0, w1 = g1Start, lastMoved = 0   // +1: x₀ moved last, −1: x₁ moved last
        var iterations = 0
        while -g1 > tolerance && log(sigma1) - log(sigma0) > 1e-12 && iterations < 100 {
            iterations += 1
            let x0 = log(sigma0), x1 = log(sigma1)
            var x = 0.5 * (x0 + x1)
            if w0.isFinite {
                let secant = x1 - w1 * (x1 - x0) / (w1 - w0)
                if secant > x0 && secant < x1 { x = secant }
            }
            let sigma = exp(x)
            let g = try spent(sigma) - targetEpsilon
            if g > 0 {
                (sigma0, w0) = (sigma, g)
                if lastMoved == 1 { w1 /= 2 }
                lastMoved = 1
            } else {
                (sigma1, g1, w1) = (sigma, g, g)
                if lastMoved == -1 { w0 /= 2 }
                lastMoved = -1
            }
        }
        return sigma1
    }
}
