import Foundation

/// What a private run has spent, written into every checkpoint's `/privacy` (DESIGN.md §5–6).
public struct PrivacyLedger: Codable, Sendable, Equatable {
    /// "prv" or "rdp".
    public var accountant: String
    /// ε spent so far at `delta` (the accountant's upper bound); +∞ when no finite ε holds
    /// (written as the string "Infinity", never dropped).
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
    /// SHA-256 of the resolved recipe. (The training file's SHA-256 is deliberately not in the
    /// ledger: it is an un-noised function of the private data, and whoever knows every record
    /// but one could hash each candidate for the last and learn which was used. The run
    /// directory's resume state keeps it; README, "What a run releases".)
    public var recipeHash: String
    /// "secure" (operating-system randomness) or "seeded". A seeded run's batches and noise
    /// can be rebuilt by whoever knows the seed, so the seed's value is never written here
    /// (nor anything computed from it): only that there was one.
    public var noise: String
    /// False when the noise was seeded: such a checkpoint or export is not a private release
    /// (the guarantee assumes the noise is secret). Ledgers written before this field existed
    /// read it from `noise`.
    public var privateRelease: Bool
    /// Processes that trained the steps since the last start or resume (`mpirun -np N`; 1
    /// without mpirun). The guarantee does not depend on it: every logical batch is one
    /// Poisson sample with one noise draw whatever the number of processes.
    public var worldSize: Int
    public var createdBy: String

    enum CodingKeys: String, CodingKey {
        case accountant, epsilon, delta, steps, history, clipping, gamma, threshold, groups, noise
        case targetEpsilon = "target_epsilon", noiseMultiplier = "noise_multiplier", sampleRate = "sample_rate"
        case groupingStrategy = "grouping", totalSensitivity = "total_sensitivity", datasetSize = "dataset_size"
        case expectedBatchSize = "expected_batch_size", recipeHash = "recipe_hash", privateRelease = "private_release"
        case createdBy = "created_by", worldSize = "world_size"
    }

    /// Non-finite numbers (ε = ∞ when the accountant finds no finite ε) as JSON strings, both
    /// ways, so that encoding cannot fail on them.
    private static let nonFinite = (positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")

    /// The ledger as pretty JSON (sorted keys). Encoding cannot fail: every field is a string,
    /// an integer or a number, and non-finite numbers are written as strings.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: Self.nonFinite.positiveInfinity, negativeInfinity: Self.nonFinite.negativeInfinity,
            nan: Self.nonFinite.nan)
        do {
            return String(decoding: try encoder.encode(self), as: UTF8.self)
        } catch {
            preconditionFailure("a privacy ledger could not be encoded: \(error)")
        }
    }

    /// Reads a ledger from its JSON text (e.g. a checkpoint's `privacyLedger`).
    public init(json: String) throws {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: Self.nonFinite.positiveInfinity, negativeInfinity: Self.nonFinite.negativeInfinity,
            nan: Self.nonFinite.nan)
        self = try decoder.decode(PrivacyLedger.self, from: Data(json.utf8))
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        accountant = try container.decode(String.self, forKey: .accountant)
        epsilon = try container.decode(Double.self, forKey: .epsilon)
        delta = try container.decode(Double.self, forKey: .delta)
        targetEpsilon = try container.decodeIfPresent(Double.self, forKey: .targetEpsilon)
        noiseMultiplier = try container.decode(Double.self, forKey: .noiseMultiplier)
        sampleRate = try container.decode(Double.self, forKey: .sampleRate)
        steps = try container.decode(Int.self, forKey: .steps)
        history = try container.decode([MechanismSegment].self, forKey: .history)
        clipping = try container.decode(String.self, forKey: .clipping)
        gamma = try container.decodeIfPresent(Double.self, forKey: .gamma)
        threshold = try container.decode(Double.self, forKey: .threshold)
        groupingStrategy = try container.decode(String.self, forKey: .groupingStrategy)
        groups = try container.decode([ParameterGroup].self, forKey: .groups)
        totalSensitivity = try container.decode(Double.self, forKey: .totalSensitivity)
        datasetSize = try container.decode(Int.self, forKey: .datasetSize)
        expectedBatchSize = try container.decode(Double.self, forKey: .expectedBatchSize)
        recipeHash = try container.decode(String.self, forKey: .recipeHash)
        noise = try container.decode(String.self, forKey: .noise)
        privateRelease = try container.decodeIfPresent(Bool.self, forKey: .privateRelease) ?? (noise == "secure")
        worldSize = try container.decodeIfPresent(Int.self, forKey: .worldSize) ?? 1
        createdBy = try container.decode(String.self, forKey: .createdBy)
    }

    public init(accountant: String, epsilon: Double, delta: Double, targetEpsilon: Double?, noiseMultiplier: Double,
                sampleRate: Double, steps: Int, history: [MechanismSegment], clipping: ClippingFunction,
                threshold: Double, grouping: Grouping, datasetSize: Int, expectedBatchSize: Double,
                recipeHash: String, noiseSeed: UInt64?, worldSize: Int = 1) {
        // `noiseSeed` is read only for whether there is one; its value is not kept.
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
        privateRelease = noiseSeed == nil
        self.worldSize = worldSize
        createdBy = "dpft"
    }
}
