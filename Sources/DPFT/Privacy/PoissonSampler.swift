/// Poisson sampling (DESIGN.md §5): each of the N examples joins a step's logical batch
/// independently with probability q, so batch sizes vary (and may be 0) around q·N. This is
/// the sampling the accountants assume; fixed-size shuffled batches would not match them.
public struct PoissonSampler: Sendable {
    public let datasetSize: Int
    public let sampleRate: Double

    public init(datasetSize: Int, sampleRate: Double) {
        precondition(datasetSize > 0 && sampleRate > 0 && sampleRate <= 1, "invalid Poisson sampler")
        self.datasetSize = datasetSize
        self.sampleRate = sampleRate
    }

    /// Expected logical batch size q·N (what the private gradient is divided by).
    public var expectedBatchSize: Double { sampleRate * Double(datasetSize) }

    /// One logical batch: the indices drawn, in increasing order, from a secure (or explicitly
    /// seeded) generator.
    public func sample(using source: inout NoiseSource) -> [Int] {
        var batch: [Int] = []
        batch.reserveCapacity(Int(expectedBatchSize * 1.5) + 8)
        for index in 0..<datasetSize where source.nextUniform() < sampleRate { batch.append(index) }
        return batch
    }
}
