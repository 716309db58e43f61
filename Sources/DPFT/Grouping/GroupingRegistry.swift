// R = total clipping threshold, K = number of groups, R_k = threshold of group k.

/// Where a registered strategy comes from, as `dpft plugins list` shows it.
public enum GroupingStrategyOrigin: Sendable, Equatable, CustomStringConvertible {
    /// Compiled into dpft.
    case builtIn
    /// Registered by a compiled plugin loaded from this path.
    case plugin(path: String)

    public var description: String {
        switch self {
        case .builtIn: return "built-in"
        case .plugin(let path): return "plugin \(path)"
        }
    }
}

/// The grouping strategies a run can choose from, by name (DESIGN.md §4). Start from
/// `builtIn` and `register` more (compiled plugins do); `resolve` turns a strategy name, its
/// options and the trainable tensors into a checked `Grouping` with thresholds.
public struct GroupingRegistry: Sendable {
    /// A registered strategy and where it came from.
    public struct Entry: Sendable {
        public let strategy: any GroupingStrategy
        public let origin: GroupingStrategyOrigin
    }

    /// Registered strategies in registration order.
    public private(set) var entries: [Entry] = []

    /// An empty registry.
    public init() {}

    /// Every built-in strategy: all-layer, layer-wise, param-wise, per-block, attn-mlp,
    /// lora-only, moe-expert, uniform and rules.
    public static var builtIn: GroupingRegistry {
        var registry = GroupingRegistry()
        registry.entries = BuiltInGrouping.strategies.map { Entry(strategy: $0, origin: .builtIn) }
        return registry
    }

    /// Strategy names in registration order.
    public var names: [String] { entries.map(\.strategy.name) }

    /// Adds a strategy. A name already taken, a name with spaces, or an option that shadows the
    /// common allocation options is an error.
    public mutating func register(_ strategy: any GroupingStrategy, origin: GroupingStrategyOrigin = .builtIn) throws {
        let name = strategy.name
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard !name.isEmpty, name.allSatisfy({ allowed.contains($0) }) else {
            throw GroupingError.invalidStrategyName(name)
        }
        if let existing = entries.first(where: { $0.strategy.name == name }) {
            throw GroupingError.duplicateStrategy(name, registeredBy: existing.origin.description)
        }
        let common = Set(ThresholdAllocation.commonOptions.map(\.name))
        if let clash = strategy.options.first(where: { common.contains($0.name) }) {
            throw GroupingError.reservedOptionName(strategy: name, option: clash.name)
        }
        entries.append(Entry(strategy: strategy, origin: origin))
    }

    /// The strategy called `name`; an unknown name is an error listing the available ones.
    public func strategy(named name: String) throws -> any GroupingStrategy {
        guard let entry = entries.first(where: { $0.strategy.name == name }) else {
            throw GroupingError.unknownStrategy(name, available: names)
        }
        return entry.strategy
    }

    /// Every option `strategy` accepts: its own, then the common allocation options.
    public func allowedOptions(of strategy: any GroupingStrategy) -> [GroupingOptionSpec] {
        strategy.options + ThresholdAllocation.commonOptions
    }

    /// Groups `parameters` (the trainable tensors, in forward order, with their real shapes)
    /// with strategy `name` and allocates thresholds from the total threshold R.
    ///
    /// Options are checked against the strategy's declared options (unknown, mistyped and missing
    /// ones are errors naming them); the strategy's groups are checked to be a partition of the
    /// tensors; groups are ordered by their first member in forward order and members in forward
    /// order. Allocation (option `allocation`) is `uniform` unless the strategy gives thresholds
    /// or `thresholds` is set, in which case it is `explicit`.
    public func resolve(strategy name: String, options: GroupingOptions, parameters: [ParameterInfo],
                        threshold total: Double) throws -> Grouping {
        let strategy = try self.strategy(named: name)
        var options = options
        options.strategy = name
        try check(options, against: allowedOptions(of: strategy), strategy: name)
        guard total.isFinite, total > 0 else { throw GroupingError.invalidTotalThreshold(total) }

        let commonNames = ThresholdAllocation.commonOptions.map(\.name)
        let drafts = try strategy.groups(for: parameters, options: options.removing(commonNames))
        let names = parameters.map(\.name)
        try Grouping.checkPartition(drafts.map { ($0.name, $0.parameters) }, of: names)
        for draft in drafts {
            if let threshold = draft.threshold, !(threshold.isFinite && threshold > 0) {
                throw GroupingError.invalidThreshold(group: draft.name, value: threshold)
            }
        }

        // Forward order: members by position, groups by their first member.
        let position = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        let ordered = drafts.map { draft -> GroupDraft in
            var draft = draft
            draft.parameters.sort { position[$0]! < position[$1]! }
            return draft
        }.sorted { position[$0.parameters[0]]! < position[$1.parameters[0]]! }
        let groupNames = ordered.map(\.name)

        // Allocation.
        let givenThresholds = try options.thresholds(ThresholdAllocation.thresholdsOption)
        let draftThresholds = Dictionary(uniqueKeysWithValues: ordered.compactMap { draft in
            draft.threshold.map { (draft.name, $0) }
        })
        let defaultAllocation: ThresholdAllocation =
            givenThresholds != nil || !draftThresholds.isEmpty ? .explicit : .uniform
        let allocation = ThresholdAllocation(rawValue: try options.choice(
            ThresholdAllocation.allocationOption, among: ThresholdAllocation.allCases.map(\.rawValue),
            default: defaultAllocation.rawValue))!
        if givenThresholds != nil && allocation != .explicit {
            throw options.invalid(ThresholdAllocation.thresholdsOption,
                                  expected: "no `thresholds` unless `allocation` is \"explicit\"")
        }
        var explicit = draftThresholds
        for (group, threshold) in givenThresholds ?? [:] {
            guard groupNames.contains(group) else { throw GroupingError.thresholdForUnknownGroup(group) }
            explicit[group] = threshold
        }
        var sizes: [Int] = []
        if allocation == .sqrtSize {
            let infoByName = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0) })
            for draft in ordered {
                var size = 0
                for member in draft.parameters {
                    let count = infoByName[member]!.count
                    guard count > 0 else { throw GroupingError.unknownSize(member) }
                    size += count
                }
                sizes.append(size)
            }
        }
        let thresholds = try allocation.thresholds(groups: groupNames, total: total, sizes: sizes,
                                                   explicit: explicit)
        let groups = zip(ordered, thresholds).map {
            ParameterGroup(name: $0.name, threshold: $1, parameters: $0.parameters)
        }
        return try Grouping(strategy: name, allocation: allocation, groups: groups, parameters: names)
    }

    /// Unknown options, values of the wrong type and absent required options are errors.
    private func check(_ options: GroupingOptions, against specs: [GroupingOptionSpec], strategy: String) throws {
        for name in options.names {
            guard let spec = specs.first(where: { $0.name == name }) else {
                throw GroupingError.unknownOption(strategy: strategy, option: name, allowed: specs.map(\.name))
            }
            guard spec.type.accepts(options[name]!) else {
                throw options.invalid(name, expected: spec.type == .thresholds
                    ? "an object of numbers {group: threshold}" : "\(spec.type)")
            }
        }
        if let missing = specs.first(where: { $0.isRequired && options[$0.name] == nil }) {
            throw options.missing(missing.name)
        }
    }
}
