/// Errors of the privacy accountants and of noise calibration. Every case names the value that
/// was rejected and why, so that the command line can show the message as it is.
public enum AccountingError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The sample rate q (expected batch size / data set size) is not in (0, 1].
    case invalidSampleRate(Double)
    /// The noise multiplier σ is not a positive number (NaN, zero or negative).
    case invalidNoiseMultiplier(Double)
    /// A step count is negative, above `MechanismSegment.maximumSteps`, or 0 where a step is
    /// needed (noise calibration).
    case invalidSteps(Int)
    /// δ is not in (0, 1).
    case invalidDelta(Double)
    /// A target or budget ε is not a positive finite number.
    case invalidEpsilon(Double)
    /// A calibration tolerance in ε is not a positive finite number.
    case invalidTolerance(Double)
    /// A batch size, data set size or epoch count that cannot describe a run.
    case invalidSampling(String)
    /// An RDP order list that is empty or has an order ≤ 1.
    case invalidOrders(String)
    /// The PRV accountant's loss grid spacing is not a positive number (or is too coarse).
    case invalidDiscretization(Double)
    /// No noise multiplier up to `largestNoiseMultiplier` reaches the target ε.
    case unreachableEpsilon(target: Double, delta: Double, smallestReachable: Double,
                            largestNoiseMultiplier: Double)
    /// The PRV accountant would need a privacy-loss grid larger than it allows.
    case gridTooLarge(points: Int, limit: Int)
    /// δ is below what floating-point sums over the PRV accountant's grid can resolve.
    case deltaTooSmallForGrid(delta: Double, smallestDelta: Double, gridPoints: Int)

    public var description: String {
        switch self {
        case .invalidSampleRate(let q):
            return "sample rate \(q) is not in (0, 1]: it is the expected batch size divided by the data set size."
        case .invalidNoiseMultiplier(let sigma):
            return "noise multiplier \(sigma) is not a positive number: it is the noise standard deviation divided by the clipping norm."
        case .invalidSteps(let steps):
            if steps < 0 { return "step count \(steps) is negative." }
            if steps == 0 { return "step count 0: calibrating the noise needs at least one step." }
            return "step count \(steps) is more than dpft accounts for (\(MechanismSegment.maximumSteps))."
        case .invalidDelta(let delta):
            return "delta \(delta) is not in (0, 1); choose δ well below 1/(data set size), e.g. 1e-5."
        case .invalidEpsilon(let epsilon):
            return "epsilon \(epsilon) is not a positive finite number."
        case .invalidTolerance(let tolerance):
            return "epsilon tolerance \(tolerance) is not a positive finite number."
        case .invalidSampling(let reason):
            return reason
        case .invalidOrders(let reason):
            return "invalid RDP orders: \(reason)"
        case .invalidDiscretization(let h):
            return "PRV discretization \(h) is not in (0, 0.1]: it is the spacing of the privacy-loss grid (default 1e-4)."
        case .unreachableEpsilon(let target, let delta, let smallest, let sigmaMax):
            return "target epsilon \(target) at delta \(delta) is unreachable: even noise multiplier \(sigmaMax) gives epsilon \(smallest). Raise the target, raise delta, or take fewer steps or a smaller sample rate."
        case .gridTooLarge(let points, let limit):
            return "the PRV accountant would need \(points) privacy-loss grid points (limit \(limit)); the noise multiplier is too small or epsilon too large for it. Use --accountant rdp, or a coarser --discretization."
        case .deltaTooSmallForGrid(let delta, let smallest, let points):
            return "delta \(delta) is below what the PRV accountant resolves on \(points) grid points (smallest \(smallest)). Use a larger delta or --accountant rdp."
        }
    }
}
