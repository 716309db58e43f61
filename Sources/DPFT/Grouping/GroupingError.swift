/// A grouping that cannot be built (DESIGN.md §4): a bad strategy name or option, a rule file
/// that does not parse or leaves a tensor out, or a strategy's output that is not a partition of
/// the trainable tensors with positive thresholds. Every case names the strategy, option, file,
/// group or tensor at fault.
public enum GroupingError: Error, CustomStringConvertible, Equatable {
    // Registry
    case unknownStrategy(String, available: [String])
    case duplicateStrategy(String, registeredBy: String)
    case invalidStrategyName(String)
    case reservedOptionName(strategy: String, option: String)

    // Options
    case optionsNotJSON(reason: String)
    case unknownOption(strategy: String, option: String, allowed: [String])
    case missingOption(strategy: String, option: String)
    case invalidOption(strategy: String, option: String, value: String, expected: String)

    // Inputs and strategy output
    case noParameters
    case duplicateParameter(String)
    case invalidGroupName(String)
    case duplicateGroup(String)
    case emptyGroup(String)
    case unknownParameter(String, group: String)
    case parameterInTwoGroups(String, first: String, second: String)
    case parameterNotGrouped(String)

    // Built-in strategies
    case notLoRA(String)
    case noExperts(strategy: String)
    case tooManyGroups(requested: Int, blocks: Int)

    // Thresholds
    case invalidTotalThreshold(Double)
    case invalidThreshold(group: String, value: Double)
    case missingThreshold(group: String)
    case thresholdForUnknownGroup(String)
    case unknownSize(String)

    // Rule files
    case ruleFileUnreadable(source: String, reason: String)
    case ruleFileInvalid(source: String, rule: Int?, reason: String)
    case unmatchedParameter(source: String, parameter: String)
    case thresholdGroupWithoutMembers(source: String, group: String)

    public var description: String {
        switch self {
        case .unknownStrategy(let name, let available):
            return "no grouping strategy is called `\(name)`; available: \(available.joined(separator: ", ")) (see `dpft plugins list`)."
        case .duplicateStrategy(let name, let registeredBy):
            return "a grouping strategy called `\(name)` is already registered (\(registeredBy)); give the new one another name."
        case .invalidStrategyName(let name):
            return "grouping strategy name \"\(name)\" is invalid: use letters, digits, `-`, `_` or `.`, and no spaces."
        case .reservedOptionName(let strategy, let option):
            return "grouping strategy `\(strategy)` declares option `\(option)`, which every strategy already has (threshold allocation); rename it."
        case .optionsNotJSON(let reason):
            return "grouping options must be a JSON object such as '{\"per\": \"block\"}': \(reason)."
        case .unknownOption(let strategy, let option, let allowed):
            return "grouping strategy `\(strategy)` has no option `\(option)`; allowed: \(allowed.joined(separator: ", "))."
        case .missingOption(let strategy, let option):
            let owner = strategy.isEmpty ? "this grouping strategy" : "grouping strategy `\(strategy)`"
            return "\(owner) needs option `\(option)` (see `dpft plugins list`)."
        case .invalidOption(let strategy, let option, let value, let expected):
            let owner = strategy.isEmpty ? "" : " of `\(strategy)`"
            return "grouping option `\(option)`\(owner) is \(value); expected \(expected)."
        case .noParameters:
            return "there are no trainable tensors to group."
        case .duplicateParameter(let name):
            return "trainable tensor `\(name)` is listed twice."
        case .invalidGroupName(let name):
            return "group name \"\(name)\" is invalid: a group needs a non-empty name."
        case .duplicateGroup(let name):
            return "two groups are called `\(name)`; group names must be unique."
        case .emptyGroup(let name):
            return "group `\(name)` has no tensors; every group needs at least one."
        case .unknownParameter(let name, let group):
            return "group `\(group)` lists `\(name)`, which is not a trainable tensor."
        case .parameterInTwoGroups(let name, let first, let second):
            return "tensor `\(name)` is in two groups, `\(first)` and `\(second)`; each tensor belongs to exactly one group."
        case .parameterNotGrouped(let name):
            return "trainable tensor `\(name)` is in no group; each tensor belongs to exactly one group."
        case .notLoRA(let name):
            return "strategy `lora-only` needs only LoRA tensors trainable, but `\(name)` is trainable; train only the adapters or pick another strategy."
        case .noExperts(let strategy):
            return "strategy `\(strategy)` groups the experts and routers of a mixture-of-experts model, but no expert or router tensor is trainable; train the experts (full, or LoRA on w1/w2/w3) or pick another strategy."
        case .tooManyGroups(let requested, let blocks):
            return "strategy `uniform` was asked for \(requested) groups but the trainable tensors span only \(blocks) blocks; use at most \(blocks)."
        case .invalidTotalThreshold(let value):
            return "the clipping threshold R = \(value) is invalid; use a positive finite number (e.g. 1.0)."
        case .invalidThreshold(let group, let value):
            return "group `\(group)` has threshold \(value); thresholds must be positive and finite."
        case .missingThreshold(let group):
            return "allocation `explicit` needs a threshold for every group, but group `\(group)` has none; add it to `thresholds`."
        case .thresholdForUnknownGroup(let group):
            return "`thresholds` names group `\(group)`, which this strategy does not produce (see `dpft plugins show`)."
        case .unknownSize(let name):
            return "allocation `sqrt-size` needs tensor sizes, but `\(name)` has an unknown (zero) size; build the parameter list from the model (Transformer.trainableParameterInfos)."
        case .ruleFileUnreadable(let source, let reason):
            return "\(source): cannot read the rule file (\(reason))."
        case .ruleFileInvalid(let source, let rule, let reason):
            return "\(source): \(rule.map { "rules[\($0)]: " } ?? "")\(reason)."
        case .unmatchedParameter(let source, let parameter):
            return "\(source): no rule matches trainable tensor `\(parameter)`; add a rule for it (a last rule {\"match\": \"*\", \"group\": \"rest\"} catches everything)."
        case .thresholdGroupWithoutMembers(let source, let group):
            return "\(source): `thresholds` names group `\(group)`, but no trainable tensor falls into it."
        }
    }
}
