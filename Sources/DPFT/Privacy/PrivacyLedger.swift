import Foundation

/// What a private run has spent, written into every checkpoint's `/privacy` (DESIGN.md §5–6).
public struct PrivacyLedger: Codable, Sendable, Equatable {
    /// "prv" or "rdp".
    public var accountant: String
    /// ε spent so far at `delta` (the accountant's upper bound).
    public var epsilon: Double
    public var delta: Double
    /// The budget the run may not exceed (nil when σ was given instead of a target).
    public var targetEpsilon: Double?
    public var noiseMultiplier: Double
    public var sampleRate: Double
    /// Steps taken (= the sum of the history's steps).
    public var steps: Int
    /// Segments of constant (σ, q); a resumed run with changed settings appends one.
    public var history: [MechanismSegment]
    public var clipping: String
    public var gamma: Double?
    /// Total clipping threshold R and the groups with their thresholds R_k.
    public var threshold: Double
    public var groupingStrategy: String
    public var groups: [ParameterGroup]
    /// √(Σ R_k²): the noise standard deviation is σ times this.
    public var totalSensitivity: Double
    public var datasetSize: Int
    public var expectedBatchSize: Double
    /// SHA-256 of the resolved recipe.
    public var recipeHash: String
    /// "secure" (operating-system randomness) or "seeded" — a seeded run's noise is
    /// reproducible from `noiseSeed`, which weakens the guarantee if the seed leaks.
    public var noise: String
    public var noiseSeed: UInt64?
    public var createdBy: String

    enum CodingKeys: String, CodingKey {
        case accountant, epsilon, delta, steps, history, clipping, gamma, threshold, groups, noise
        case targetEpsilon = "target_epsilon", noiseMultiplier = "noise_multiplier", sampleRate = "sample_rate"
        case groupingStrategy = "grouping", totalSensitivity = "total_sensitivity", datasetSize = "dataset_size"
        case expectedBatchSize = "expected_batch_size", recipeHash = "recipe_hash", noiseSeed = "noise_seed"
        case createdBy = "created_by"
    }

    /// The ledger as pretty JSON (sorted keys).
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// Reads a ledger from its JSON text (e.g. a checkpoint's `privacyLedger`).
    public init(json: String) throws {
        self = try JSONDecoder().decode(PrivacyLedger.self, from: Data(json.utf8))
    }

    public init(accountant: String, epsilon: Double, delta: Double, targetEpsilon: Double?, noiseMultiplier: Double,
                sampleRate: Double, steps: Int, history: [MechanismSegment], clipping: ClippingFunction,
                threshold: Double, grouping: Grouping, datasetSize: Int, expectedBatchSize: Double,
                recipeHash: String, noiseSeed: UInt64?) {
        self.accountant = accountant
        self.epsilon = epsilon
        self.delta = delta
        self.targetEpsilon = targetEpsilon
        self.noiseMultiplier = noiseMultiplier
        self.sampleRate = sampleRate
        self.steps = steps
        self.history = history
        self.clipping = clipping.name
        if case .automatic(let gamma) = clipping { self.gamma = gamma }
        self.threshold = threshold
        groupingStrategy = grouping.strategy
        groups = grouping.groups
        totalSensitivity = grouping.totalSensitivity
        self.datasetSize = datasetSize
        self.expectedBatchSize = expectedBatchSize
        self.recipeHash = recipeHash
        noise = noiseSeed == nil ? "secure" : "seeded"
        self.noiseSeed = noiseSeed
        createdBy = "dpft"
    }
}
