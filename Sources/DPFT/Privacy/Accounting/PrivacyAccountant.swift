import Foundation

// Privacy accounting for DP-SGD (DESIGN.md §5): each step releases a noisy clipped gradient sum,
// the Poisson-subsampled Gaussian mechanism with sample rate q (each example joins the batch
// independently with probability q) and noise multiplier σ (noise std / clipping norm). A run is
// a history of segments with constant (σ, q); the accountants bound the (ε, δ) of the whole
// composition under add-or-remove-one neighbouring data sets.

/// `steps` steps of the Poisson-subsampled Gaussian mechanism with constant noise multiplier σ
/// and sample rate q. A run's privacy ledger is a list of these (σ or q may change part way).
public struct MechanismSegment: Sendable, Hashable, Codable {
    /// σ: noise standard deviation divided by the clipping norm. `.infinity` means no privacy
    /// loss (the segment is skipped).
    public var noiseMultiplier: Double
    /// q: the probability that an example is in a step's batch (expected batch / data set size).
    public var sampleRate: Double
    /// Number of steps, ≥ 0.
    public var steps: Int

    public init(noiseMultiplier: Double, sampleRate: Double, steps: Int) {
        self.noiseMultiplier = noiseMultiplier
        self.sampleRate = sampleRate
        self.steps = steps
    }

    /// The segment of `epochs` passes over `datasetSize` examples with expected batch
    /// `batchSize`: q = B/N and steps = ⌈E·N/B⌉ (rounded up, so that no step goes unaccounted).
    /// - Throws: `AccountingError.invalidSampling` when B, N or E cannot describe a run.
    public init(noiseMultiplier: Double, batchSize: Int, datasetSize: Int, epochs: Double) throws {
        guard datasetSize > 0 else {
            throw AccountingError.invalidSampling("dataset size \(datasetSize) is not a positive number of examples.")
        }
        guard batchSize > 0, batchSize <= datasetSize else {
            throw AccountingError.invalidSampling("batch size \(batchSize) is not between 1 and the dataset size \(datasetSize).")
        }
        guard epochs.isFinite, epochs >= 0 else {
            throw AccountingError.invalidSampling("epochs \(epochs) is not a non-negative number.")
        }
        let sampleRate = Double(batchSize) / Double(datasetSize)
        let exactSteps = epochs * Double(datasetSize) / Double(batchSize)
        guard exactSteps <= Double(Int32.max) else {
            throw AccountingError.invalidSampling("\(epochs) epochs of \(datasetSize) examples in batches of \(batchSize) is \(exactSteps) steps, more than dpft accounts for.")
        }
        var steps = Int(exactSteps.rounded(.up))
        if epochs == epochs.rounded() {
            // Whole epochs: ⌈E·N/B⌉ in integers, free of rounding (when E·N fits in an Int).
            let (product, overflow) = Int(epochs).multipliedReportingOverflow(by: datasetSize)
            if !overflow { steps = product / batchSize + (product % batchSize == 0 ? 0 : 1) }
        }
        self.init(noiseMultiplier: noiseMultiplier, sampleRate: sampleRate, steps: steps)
    }

    /// Most steps one segment may have (far beyond any training run; keeps sums of grid
    /// indices × steps inside Int).
    public static let maximumSteps = 1_000_000_000_000

    /// Checks σ > 0 (∞ allowed), q ∈ (0, 1] and 0 ≤ steps ≤ `maximumSteps`.
    /// - Throws: `AccountingError` naming the first bad value.
    public func validate() throws {
        guard noiseMultiplier > 0 else { throw AccountingError.invalidNoiseMultiplier(noiseMultiplier) }
        guard sampleRate > 0, sampleRate <= 1 else { throw AccountingError.invalidSampleRate(sampleRate) }
        guard steps >= 0, steps <= MechanismSegment.maximumSteps else { throw AccountingError.invalidSteps(steps) }
    }

    /// True when the segment cannot leak anything (no steps, or infinite noise).
    var isFree: Bool { steps == 0 || noiseMultiplier == .infinity }
}

/// The accountants dpft offers.
public enum Accountant: String, Sendable, CaseIterable, Codable {
    /// Rényi DP (Mironov, Talwar & Zhang 2019) with the Balle et al. 2020 Thm 21 conversion;
    /// fast, a valid but loose upper bound.
    case rdp
    /// Privacy-loss distributions composed numerically (Gopi, Lee & Wutschitz 2021; Doroshenko
    /// et al. 2022): tight to about 1e-3 in ε, the bound users compare against today.
    case prv
}

/// The (ε, δ) spent by a history, with what the accountant knows about it.
public struct PrivacySpent: Sendable, Equatable {
    /// ε such that the history is (ε, δ)-DP: always an upper bound (the guarantee).
    public var epsilon: Double
    public var delta: Double
    public var accountant: Accountant
    /// RDP: the order α at which the conversion was minimised (nil for PRV, or when ε is 0 for
    /// a history without privacy loss).
    public var rdpOrder: Double?
    /// PRV: a certified lower bound on the true ε (Gopi et al. 2021 Thm 5.5), so the true ε lies
    /// in [`epsilonLower`, `epsilon`].
    public var epsilonLower: Double?
    /// PRV: the Gopi et al. estimate of the true ε (no guarantee either way).
    public var epsilonEstimate: Double?
    /// Notes for the user (e.g. the best RDP order at an end of the list).
    public var warnings: [String]

    public init(epsilon: Double, delta: Double, accountant: Accountant, rdpOrder: Double? = nil,
                epsilonLower: Double? = nil, epsilonEstimate: Double? = nil, warnings: [String] = []) {
        self.epsilon = epsilon
        self.delta = delta
        self.accountant = accountant
        self.rdpOrder = rdpOrder
        self.epsilonLower = epsilonLower
        self.epsilonEstimate = epsilonEstimate
        self.warnings = warnings
    }
}

extension Accountant {
    /// ε spent by `history` at `delta` with this accountant's default settings.
    /// - Throws: `AccountingError` for an invalid segment or δ ∉ (0, 1), and (PRV) when the
    ///   loss grid would be too large or δ too small for it.
    public func epsilon(history: [MechanismSegment], delta: Double) throws -> PrivacySpent {
        switch self {
        case .rdp: return try RDPAccountant().epsilon(history: history, delta: delta)
        case .prv: return try PRVAccountant().epsilon(history: history, delta: delta)
        }
    }
}

func validate(history: [MechanismSegment], delta: Double) throws {
    guard delta > 0, delta < 1 else { throw AccountingError.invalidDelta(delta) }
    for segment in history { try segment.validate() }
}
