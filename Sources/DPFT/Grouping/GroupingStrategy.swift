/// One group as a strategy proposes it: a name, its member tensors and, optionally, its own
/// clipping threshold (rule files can give one; otherwise the allocation option decides).
public struct GroupDraft: Sendable, Equatable {
    public var name: String
    /// Member tensor names.
    public var parameters: [String]
    /// An explicit threshold R_k, or nil to let the allocation choose.
    public var threshold: Double?

    public init(name: String, parameters: [String], threshold: Double? = nil) {
        self.name = name
        self.parameters = parameters
        self.threshold = threshold
    }
}

/// A way to partition the trainable tensors into clipping groups (DESIGN.md §3, §4).
///
/// A strategy only proposes groups. `GroupingRegistry.resolve` checks its options against
/// `options` first, then checks that the proposal is a partition of the trainable tensors into
/// non-empty, uniquely named groups, orders it, and allocates thresholds. So a strategy (built in
/// or from a plugin) may assume its options are known and well typed, and need not re-check the
/// partition.
public protocol GroupingStrategy: Sendable {
    /// The name users select it by, e.g. `per-block`.
    var name: String { get }
    /// One line for `dpft plugins list`.
    var summary: String { get }
    /// Its own options (the allocation options every strategy has are added by the registry).
    var options: [GroupingOptionSpec] { get }
    /// The groups for `parameters`: the trainable tensors, in forward order.
    func groups(for parameters: [ParameterInfo], options: GroupingOptions) throws -> [GroupDraft]
}

extension GroupingStrategy {
    public var options: [GroupingOptionSpec] { [] }
}
