import Foundation

/// Errors configuring private training.
public enum PrivacyError: Error, CustomStringConvertible, Equatable {
    case unknownParameter(group: String, parameter: String)
    case parameterNotGrouped(String)
    case parameterInTwoGroups(String)
    case invalidThreshold(group: String, value: Double)
    case invalidNoiseMultiplier(Double)
    case invalidExpectedBatchSize(Double)
    case noiseBeyondTheGrid(noiseMultiplier: Double, coordinates: Int)

    public var description: String {
        switch self {
        case .unknownParameter(let group, let parameter):
            return "group \"\(group)\" names `\(parameter)`, which is not a trainable tensor."
        case .parameterNotGrouped(let parameter):
            return "trainable tensor `\(parameter)` belongs to no group; every trainable tensor must be clipped."
        case .parameterInTwoGroups(let parameter):
            return "trainable tensor `\(parameter)` is in two groups."
        case .invalidThreshold(let group, let value):
            return "group \"\(group)\" has clipping threshold \(value); thresholds must be positive and finite."
        case .invalidNoiseMultiplier(let value):
            return "noise multiplier \(value) is invalid; it must be ≥ 0 and finite."
        case .invalidExpectedBatchSize(let value):
            return "expected batch size \(value) is invalid; it must be positive."
        case .noiseBeyondTheGrid(let sigma, let d):
            let largest = NoiseGrid.largestNoiseMultiplier(coordinates: d)
            return "noise multiplier \(sigma) over \(d) trainable values is beyond the noise sampler's grid, which "
                + "takes σ·√d ≤ 2²⁴ (here σ ≤ \(String(format: "%.4g", largest))); noise that large would drown "
                + "the gradient anyway. Lower noise_multiplier, or train fewer values (LoRA)."
        }
    }
}

/// DP-SGD gradients with book-keeping and group-wise clipping (DESIGN.md §3).
///
/// `accumulate(_:)` runs one physical micro-batch — one forward, one backward — and adds
/// `Σ_i Σ_k C_ik g_i|k` into `model.gradients`. `finishLogicalBatch` then adds
/// `N(0, σ² Σ_k R_k²)` to every coordinate once and divides by the expected batch size.
public final class PrivateGradient {
    public let model: Transformer
    public let grouping: Grouping
    public var groups: [ParameterGroup] { grouping.groups }
    public let clipping: ClippingFunction
    private let keeper: BookKeeper

    /// Per-sample group norms `n_ik` and clip factors `C_ik` of the last micro-batch, [B][K].
    public private(set) var perSampleNorms: [[Double]] = []
    public private(set) var clipFactors: [[Double]] = []
    /// Examples accumulated since the last `finishLogicalBatch`.
    public private(set) var examplesAccumulated = 0
    /// Seconds the last `finishLogicalBatch` spent drawing and adding the noise, with the division
    /// by the expected batch size fused into the same pass (benchmarks).
    public private(set) var lastNoiseSeconds = 0.0

    /// `grouping` must partition `model.trainableNames` exactly.
    public init(model: Transformer, grouping: Grouping, clipping: ClippingFunction) throws {
        let groups = grouping.groups
        let names = model.trainableNames
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        var groupOfTensor = [Int](repeating: -1, count: names.count)
        for (g, group) in groups.enumerated() {
            guard group.threshold > 0 && group.threshold.isFinite else {
                throw PrivacyError.invalidThreshold(group: group.name, value: group.threshold)
            }
            for parameter in group.parameters {
                guard let tensor = index[parameter] else {
                    throw PrivacyError.unknownParameter(group: group.name, parameter: parameter)
                }
                guard groupOfTensor[tensor] < 0 else { throw PrivacyError.parameterInTwoGroups(parameter) }
                groupOfTensor[tensor] = g
            }
        }
        if let missing = groupOfTensor.firstIndex(of: -1) { throw PrivacyError.parameterNotGrouped(names[missing]) }
        let tied = model.config.tiedEmbeddings ? index[model.config.embeddingName] : nil
        keeper = BookKeeper(clipping: clipping, thresholds: groups.map(\.threshold), groupOfTensor: groupOfTensor,
                            targets: names.map { model.gradients[$0]!.pointer }, tiedTensor: tied)
        self.model = model
        self.grouping = grouping
        self.clipping = clipping
    }

    /// Which linear layers keep per-example gradients (`BookKeeper.ExampleGradientPolicy`);
    /// by cost unless a test forces one path.
    var exampleGradientPolicy: BookKeeper.ExampleGradientPolicy {
        get { keeper.exampleGradientPolicy }
        set { keeper.exampleGradientPolicy = newValue }
    }

    /// Bytes of books that keeping per-example gradients may bring the held total to
    /// (`BookKeeper.keptGradientBudget`); tests lower it to mix kept and ghost layers.
    var keptGradientBudget: Int {
        get { keeper.keptGradientBudget }
        set { keeper.keptGradientBudget = newValue }
    }

    /// √(Σ_k R_k²): the sensitivity of the clipped sum to one example.
    public var totalSensitivity: Double { grouping.totalSensitivity }

    /// Bytes of copied books held now / at most since the last `resetPeakBookBytes()`.
    public var bookBytesHeld: Int { keeper.bytesHeld }
    public var peakBookBytes: Int { keeper.peakBytesHeld }
    public func resetPeakBookBytes() { keeper.resetPeak() }

    /// Forward and private backward over one micro-batch: adds the clipped per-example
    /// gradients to `model.gradients`. Returns the mean per-example loss (for logging only).
    @discardableResult
    public func accumulate(_ batch: TokenBatch) throws -> Float {
        guard batch.batchSize > 0 else { return 0 }
        model.sumsPerExampleLosses = true
        model.bookKeeper = keeper
        defer {
            model.bookKeeper = nil
            model.sumsPerExampleLosses = false
        }
        let loss = try model.forward(batch)
        model.backward()
        precondition(keeper.isComplete, "book-keeping left a group open")
        let K = groups.count
        perSampleNorms = (0..<batch.batchSize).map { i in (0..<K).map { keeper.normSquared[i * K + $0].squareRoot() } }
        clipFactors = (0..<batch.batchSize).map { i in (0..<K).map { keeper.clipFactors[i * K + $0] } }
        examplesAccumulated += batch.batchSize
        return loss
    }

    /// Ends a logical batch: adds Gaussian noise of standard deviation σ·√(Σ R_k²) to every
    /// gradient coordinate (once, even when the batch was empty; a hair more, σ·λ√d, for the
    /// snapping to the noise grid, see `GaussianSampler`), then divides by the expected batch
    /// size q·N. After this `model.gradients` holds the private gradient.
    public func finishLogicalBatch(noiseMultiplier: Double, expectedBatchSize: Double, noise: inout NoiseSource) throws {
        guard noiseMultiplier >= 0 && noiseMultiplier.isFinite else {
            throw PrivacyError.invalidNoiseMultiplier(noiseMultiplier)
        }
        guard expectedBatchSize > 0 && expectedBatchSize.isFinite else {
            throw PrivacyError.invalidExpectedBatchSize(expectedBatchSize)
        }
        try checkNoiseMultiplier(noiseMultiplier)
        let buffer = UnsafeMutableBufferPointer(start: model.gradients.storage.base, count: model.gradients.count)
        let start = DispatchTime.now().uptimeNanoseconds
        noise.addGaussian(to: buffer, noiseMultiplier: noiseMultiplier, sensitivity: totalSensitivity,
                          thenScaleBy: Float(1 / expectedBatchSize))
        lastNoiseSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        examplesAccumulated = 0
    }

    /// Throws `noiseBeyondTheGrid` when σ·√d passes what the noise sampler's grid takes for this
    /// model's d trainable values (`NoiseGrid.largestNoiseMultiplier`); a run checks its σ
    /// before its first step.
    public func checkNoiseMultiplier(_ noiseMultiplier: Double) throws {
        guard noiseMultiplier <= NoiseGrid.largestNoiseMultiplier(coordinates: model.gradients.count) else {
            throw PrivacyError.noiseBeyondTheGrid(noiseMultiplier: noiseMultiplier, coordinates: model.gradients.count)
        }
    }

    /// Ends a logical batch whose noised gradient another rank finishes (data-parallel runs:
    /// this rank's clipped sum went to rank 0, and `model.gradients` is overwritten by the
    /// broadcast of the finished gradient).
    public func discardLogicalBatch() {
        examplesAccumulated = 0
    }
}
