import Foundation

/// What `dpft norms` computes: per-sample group norms, clip factors and the clipped sum for
/// the first examples of a data file, without noise (DESIGN.md §7).
public struct PerSampleNormsReport {
    public var grouping: Grouping
    public var clipping: ClippingFunction
    /// n_ik, [N][K].
    public var perSampleNorms: [[Double]]
    /// C_ik, [N][K].
    public var clipFactors: [[Double]]
    /// Σ_i Σ_k C_ik g_i|k per trainable tensor (dpft shapes: linear weights [out, in]).
    public var clippedGradient: [(name: String, tensor: Tensor)]

    /// Runs `examples` through `model` in micro-batches of `batchSize` with book-keeping.
    public static func compute(model: Transformer, grouping: Grouping, clipping: ClippingFunction,
                               examples: [TokenizedExample], batchSize: Int) throws -> PerSampleNormsReport {
        let engine = try PrivateGradient(model: model, grouping: grouping, clipping: clipping)
        model.zeroGradients()
        var norms: [[Double]] = [], factors: [[Double]] = []
        for micro in MicroBatches(examples, size: batchSize) {
            try engine.accumulate(micro.batch)
            norms += engine.perSampleNorms
            factors += engine.clipFactors
        }
        let gradient = model.trainableNames.map { (name: $0, tensor: model.gradients[$0]!.copy()) }
        return PerSampleNormsReport(grouping: grouping, clipping: clipping, perSampleNorms: norms,
                                    clipFactors: factors, clippedGradient: gradient)
    }

    /// Writes the DESIGN.md §7 layout atomically: /per_sample_norms [N, K], /clip_factors
    /// [N, K], root attribute `groups` (JSON [{"name","threshold","parameters"}]) plus
    /// `clipping` and `strategy`, and /clipped_gradient/<name>.
    public func write(to url: URL) throws {
        let N = perSampleNorms.count, K = grouping.groups.count
        let norms = Tensor(shape: [N, K], values: perSampleNorms.flatMap { $0.map(Float.init) })
        let factors = Tensor(shape: [N, K], values: clipFactors.flatMap { $0.map(Float.init) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let groupsJSON = String(decoding: try encoder.encode(grouping.groups), as: UTF8.self)
        try writeAtomically(to: url) { temporary in
            let file = try HDF5File.create(temporary.path)
            try file.setAttribute("groups", .string(groupsJSON))
            try file.setAttribute("strategy", .string(grouping.strategy))
            try file.setAttribute("clipping", .string(clipping.name))
            if case .automatic(let gamma) = clipping { try file.setAttribute("gamma", .double(gamma)) }
            try file.writeTensor(norms, at: "/per_sample_norms")
            try file.writeTensor(factors, at: "/clip_factors")
            try file.createGroup("/clipped_gradient")
            for (name, tensor) in clippedGradient { try file.writeTensor(tensor, at: "/clipped_gradient/\(name)") }
            try file.flush()
        }
    }

    /// Median and 90th percentile of each group's per-sample norms (what users pick R from).
    public var summary: [(group: String, median: Double, p90: Double)] {
        grouping.groups.enumerated().map { k, group in
            let sorted = perSampleNorms.map { $0[k] }.sorted()
            func quantile(_ q: Double) -> Double {
                guard !sorted.isEmpty else { return 0 }
                return sorted[min(sorted.count - 1, Int((q * Double(sorted.count - 1)).rounded()))]
            }
            return (group.name, quantile(0.5), quantile(0.9))
        }
    }
}
