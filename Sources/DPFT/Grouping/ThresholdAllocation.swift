// R = total clipping threshold, K = number of groups, R_k = threshold of group k,
// n_k = number of scalars in group k.

/// How the total threshold R is split into per-group thresholds R_k (DESIGN.md §3, §4). The
/// noise scale follows the total sensitivity √(Σ_k R_k²), which the first two keep equal to R.
public enum ThresholdAllocation: String, Sendable, Codable, CaseIterable {
    /// R_k = R / √K.
    case uniform
    /// R_k = R · √(n_k / Σ_j n_j), so larger groups get larger thresholds and Σ_k R_k² = R².
    case sqrtSize = "sqrt-size"
    /// R_k as given, per group (the `thresholds` option or a rule file); R is not used.
    case explicit

    /// Option names every strategy accepts.
    static let allocationOption = "allocation"
    static let thresholdsOption = "thresholds"

    /// The options every strategy has, as `dpft plugins list` documents them.
    public static let commonOptions: [GroupingOptionSpec] = [
        GroupingOptionSpec(
            name: allocationOption, type: .choice(allCases.map(\.rawValue)), defaultValue: .string(uniform.rawValue),
            description: "how R is split: uniform R/√K, sqrt-size R·√(n_k/Σn), or explicit per group; "
                + "explicit is the default when the strategy gives thresholds (a rule file's `thresholds`)"),
        GroupingOptionSpec(
            name: thresholdsOption, type: .thresholds,
            description: "explicit thresholds per group name (with allocation explicit); they override "
                + "a rule file's thresholds for the groups they name"),
    ]

    /// The thresholds R_k for `groups`, in their order.
    ///
    /// - Parameters:
    ///   - total: R, used by `uniform` and `sqrtSize`.
    ///   - sizes: n_k per group, used by `sqrtSize`.
    ///   - explicit: R_k per group name, used by `explicit`; every group needs one.
    public func thresholds(groups: [String], total: Double, sizes: [Int] = [],
                           explicit: [String: Double] = [:]) throws -> [Double] {
        switch self {
        case .uniform:
            guard total.isFinite, total > 0 else { throw GroupingError.invalidTotalThreshold(total) }
            return Array(repeating: total / Double(groups.count).squareRoot(), count: groups.count)
        case .sqrtSize:
            guard total.isFinite, total > 0 else { throw GroupingError.invalidTotalThreshold(total) }
            precondition(sizes.count == groups.count, "one size per group")
            let sum = Double(sizes.reduce(0, +))
            return sizes.map { total * (Double($0) / sum).squareRoot() }
        case .explicit:
            return try groups.map { group in
                guard let threshold = explicit[group] else { throw GroupingError.missingThreshold(group: group) }
                return threshold
            }
        }
    }
}
