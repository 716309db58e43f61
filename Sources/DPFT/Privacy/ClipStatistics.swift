import Foundation

/// How hard clipping bit in one logical batch, per group: the clip rate (the fraction of the
/// batch's examples whose group norm n_ik exceeded the threshold R_k, so that Abadi clipping
/// scaled them down) and the median n_ik. A run logs both to metrics.jsonl each private step
/// (`clip_rate`, `median_norm`, objects keyed by group name) for `dpft report`.
///
/// Like the logged loss, these are computed on private data and are not privatized: they are
/// for watching and tuning a run, not for release with the model.
public struct ClipStatistics: Sendable, Equatable {
    /// The groups' names and thresholds R_k, in grouping order.
    public let groupNames: [String]
    public let thresholds: [Double]
    /// n_ik of the batch's examples so far, by group: [K][examples].
    private var norms: [[Double]]

    /// Statistics of an empty batch of `groups`.
    public init(groups: [ParameterGroup]) {
        groupNames = groups.map(\.name)
        thresholds = groups.map(\.threshold)
        norms = Array(repeating: [], count: groups.count)
    }

    /// Statistics of an empty batch of groups with these names and thresholds.
    init(groupNames: [String], thresholds: [Double]) {
        self.groupNames = groupNames
        self.thresholds = thresholds
        norms = Array(repeating: [], count: groupNames.count)
    }

    /// n_ik of group k's examples so far, in the order added.
    func norms(ofGroup k: Int) -> [Double] { norms[k] }

    /// Adds one micro-batch's per-sample group norms, [B][K] (`PrivateGradient.perSampleNorms`).
    public mutating func add(_ perSampleNorms: [[Double]]) {
        for example in perSampleNorms {
            for k in example.indices where k < norms.count { norms[k].append(example[k]) }
        }
    }

    /// Examples seen.
    public var examples: Int { norms.first?.count ?? 0 }

    /// Per group, the fraction of examples with n_ik > R_k (a non-finite norm counts as
    /// clipped: its example contributes nothing to the group); nil for an empty batch.
    public var clipRates: [Double]? {
        guard examples > 0 else { return nil }
        return norms.indices.map { k in
            Double(norms[k].filter { !($0 <= thresholds[k]) }.count) / Double(examples)
        }
    }

    /// Per group, the median n_ik (the mean of the middle two for an even count); nil for an
    /// empty batch.
    public var medianNorms: [Double]? {
        guard examples > 0 else { return nil }
        return norms.map { values in
            let sorted = values.map { $0.isNaN ? .infinity : $0 }.sorted(), middle = sorted.count / 2
            return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
        }
    }

    /// The `clip_rate` and `median_norm` members of a metrics.jsonl line (a non-finite median
    /// as null); empty for an empty batch.
    public var metrics: [String: Any] {
        guard let clipRates, let medianNorms else { return [:] }
        func byGroup(_ values: [Any]) -> [String: Any] {
            Dictionary(zip(groupNames, values), uniquingKeysWith: { first, _ in first })
        }
        return ["clip_rate": byGroup(clipRates), "median_norm": byGroup(medianNorms.map { $0.isFinite ? $0 as Any : NSNull() })]
    }
}
