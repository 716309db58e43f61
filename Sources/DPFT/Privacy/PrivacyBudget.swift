/// The privacy budget of one run (DESIGN.md §5): the accountant, the noise multiplier σ and
/// sample rate q of every step, the history of mechanism applications so far, and how many
/// steps the run may take without exceeding its target ε.
///
/// Every private step is one application of the Poisson-subsampled Gaussian mechanism at
/// (σ, q); `recordStep()` books it, `spent()` composes the history.
public struct PrivacyBudget: Sendable {
    public let accountant: Accountant
    public let delta: Double
    /// The ε the run must not exceed (nil when the recipe fixes σ instead).
    public let targetEpsilon: Double?
    /// σ of every step of this run.
    public let noiseMultiplier: Double
    /// q = expected batch / data set size.
    public let sampleRate: Double
    /// Steps the recipe asks for (from `steps`, or `epochs` at q).
    public let plannedSteps: Int
    /// Steps the run takes: `plannedSteps`, or fewer when the target ε allows fewer.
    public private(set) var totalSteps: Int
    /// The mechanism applications so far, one segment per run of constant (σ, q).
    public private(set) var history: [MechanismSegment]

    /// A budget at (σ, q) continuing `history` (empty for a fresh run).
    public init(accountant: Accountant, delta: Double, targetEpsilon: Double?, noiseMultiplier: Double,
                sampleRate: Double, plannedSteps: Int, totalSteps: Int? = nil, history: [MechanismSegment] = []) {
        self.accountant = accountant
        self.delta = delta
        self.targetEpsilon = targetEpsilon
        self.noiseMultiplier = noiseMultiplier
        self.sampleRate = sampleRate
        self.plannedSteps = plannedSteps
        self.totalSteps = totalSteps ?? plannedSteps
        self.history = history
    }

    /// Steps accounted so far.
    public var stepsTaken: Int { history.reduce(0) { $0 + $1.steps } }

    /// ε spent by the history at δ; nil when σ = 0 (no noise: ε is unbounded).
    public func spent() throws -> PrivacySpent? {
        guard noiseMultiplier > 0 else { return nil }
        return try accountant.epsilon(history: history, delta: delta)
    }

    /// Books one more step at (σ, q).
    public mutating func recordStep() {
        if let last = history.last, last.noiseMultiplier == noiseMultiplier, last.sampleRate == sampleRate {
            history[history.count - 1].steps += 1
        } else {
            history.append(MechanismSegment(noiseMultiplier: noiseMultiplier, sampleRate: sampleRate, steps: 1))
        }
    }

    /// Stops the run before the target ε would be exceeded: when fewer than the steps from
    /// `step` (the run's current step) to `totalSteps` fit on top of the history, lowers
    /// `totalSteps` to `step` plus those that fit and returns how many fit (nil when all do, or
    /// when there is no target or no noise). The history may hold more steps than `step` (a
    /// resumed history that spent more than its run's steps); what fits is counted on top of
    /// all of it.
    public mutating func stopBeforeExceedingTarget(atStep step: Int) throws -> Int? {
        guard let targetEpsilon, noiseMultiplier > 0 else { return nil }
        let remaining = max(totalSteps - step, 0)
        let fits = try accountant.maxSteps(epsilonBudget: targetEpsilon, delta: delta, noiseMultiplier: noiseMultiplier,
                                           sampleRate: sampleRate, history: history, limit: remaining + 1)
        guard fits < remaining else { return nil }
        totalSteps = step + fits
        return fits
    }
}
