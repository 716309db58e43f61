import Foundation

// K = number of groups, R_k = clipping threshold of group k.

/// One clipping group: its tensors are clipped together to norm `threshold` (R_k).
public struct ParameterGroup: Codable, Sendable, Equatable {
    public var name: String
    /// R_k.
    public var threshold: Double
    /// Member tensor names, in forward order.
    public var parameters: [String]

    public init(name: String, threshold: Double, parameters: [String]) {
        self.name = name
        self.threshold = threshold
        self.parameters = parameters
    }
}

/// A checked partition of the trainable tensors into clipping groups with thresholds: what the
/// DP engine clips by (DESIGN.md §3). Made by `GroupingRegistry.resolve`, or directly by
/// `init(strategy:allocation:groups:parameters:)`, which checks it the same way.
public struct Grouping: Sendable, Equatable, Codable {
    /// The strategy that produced it.
    public var strategy: String
    /// How the thresholds were chosen.
    public var allocation: ThresholdAllocation
    /// Groups in forward order of their first member.
    public var groups: [ParameterGroup] {
        didSet { groupIndexByParameter = Self.index(groups) }
    }
    private var groupIndexByParameter: [String: Int]

    /// Checks that `groups` partition `parameters` (each tensor in exactly one group, no unknown
    /// tensors, no empty or duplicate groups) and that every threshold is positive and finite.
    public init(strategy: String, allocation: ThresholdAllocation = .explicit, groups: [ParameterGroup],
                parameters: [String]) throws {
        try Self.checkPartition(groups.map { ($0.name, $0.parameters) }, of: parameters)
        for group in groups where !(group.threshold.isFinite && group.threshold > 0) {
            throw GroupingError.invalidThreshold(group: group.name, value: group.threshold)
        }
        self.strategy = strategy
        self.allocation = allocation
        self.groups = groups
        groupIndexByParameter = Self.index(groups)
    }

    /// The index in `groups` of the group holding `parameter`, or nil when it is not trainable.
    public func groupIndex(of parameter: String) -> Int? { groupIndexByParameter[parameter] }

    /// R_k per group, in group order.
    public var thresholds: [Double] { groups.map(\.threshold) }

    /// √(Σ_k R_k²): the L2 sensitivity of the clipped sum, which the noise is scaled by.
    public var totalSensitivity: Double {
        groups.reduce(0) { $0 + $1.threshold * $1.threshold }.squareRoot()
    }

    enum CodingKeys: String, CodingKey { case strategy, allocation, groups }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        strategy = try container.decode(String.self, forKey: .strategy)
        allocation = try container.decode(ThresholdAllocation.self, forKey: .allocation)
        groups = try container.decode([ParameterGroup].self, forKey: .groups)
        groupIndexByParameter = Self.index(groups)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(strategy, forKey: .strategy)
        try container.encode(allocation, forKey: .allocation)
        try container.encode(groups, forKey: .groups)
    }

    private static func index(_ groups: [ParameterGroup]) -> [String: Int] {
        var index: [String: Int] = [:]
        for (k, group) in groups.enumerated() {
            for parameter in group.parameters { index[parameter] = k }
        }
        return index
    }

    /// Throws the first violation of "`groups` is a partition of `parameters` into non-empty,
    /// uniquely and non-emptily named groups", naming the group or tensor.
    static func checkPartition(_ groups: [(name: String, parameters: [String])], of parameters: [String]) throws {
        guard !parameters.isEmpty else { throw GroupingError.noParameters }
        var known = Set<String>()
        for parameter in parameters where !known.insert(parameter).inserted {
            throw GroupingError.duplicateParameter(parameter)
        }
        var groupNames = Set<String>()
        var owner: [String: String] = [:]
        for group in groups {
            guard !group.name.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw GroupingError.invalidGroupName(group.name)
            }
            guard groupNames.insert(group.name).inserted else { throw GroupingError.duplicateGroup(group.name) }
            guard !group.parameters.isEmpty else { throw GroupingError.emptyGroup(group.name) }
            for parameter in group.parameters {
                guard known.contains(parameter) else {
                    throw GroupingError.unknownParameter(parameter, group: group.name)
                }
                if let first = owner[parameter] {
                    throw GroupingError.parameterInTwoGroups(parameter, first: first, second: group.name)
                }
                owner[parameter] = group.name
            }
        }
        if let missing = parameters.first(where: { owner[$0] == nil }) {
            throw GroupingError.parameterNotGrouped(missing)
        }
    }
}
