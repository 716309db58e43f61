import DPFT

/// `param-budget`: consecutive trainable tensors (in forward order) packed into groups of at
/// most `budget` parameters; a tensor larger than the budget gets a group of its own.
///
/// Groups of consecutive tensors close early in the backward pass, so the book-keeping engine
/// holds few books at a time (DESIGN.md §3, "Memory follows grouping"), while the budget keeps
/// the groups of similar size, so that a uniform threshold split treats them alike.
struct ParameterBudgetStrategy: GroupingStrategy {
    let name = "param-budget"
    let summary = "consecutive tensors packed into groups of at most `budget` parameters (\"part.<i>\")"
    let options = [
        GroupingOptionSpec(name: "budget", type: .integer, isRequired: true,
                           description: "the most parameters in one group (≥ 1); a larger tensor is a group of its own"),
    ]

    func groups(for parameters: [ParameterInfo], options: GroupingOptions) throws -> [GroupDraft] {
        let budget = try options.integer("budget")!  // required: the registry checked it is there
        guard budget >= 1 else { throw options.invalid("budget", expected: "a whole number ≥ 1") }
        var groups: [GroupDraft] = []
        var members: [String] = []
        var size = 0
        func close() {
            guard !members.isEmpty else { return }
            groups.append(GroupDraft(name: "part.\(groups.count)", parameters: members))
            members = []
            size = 0
        }
        for parameter in parameters {
            guard parameter.count > 0 else { throw ParameterBudgetError.unknownSize(parameter.name) }
            if size + parameter.count > budget { close() }
            members.append(parameter.name)
            size += parameter.count
        }
        close()
        return groups
    }
}

enum ParameterBudgetError: Error, CustomStringConvertible {
    case unknownSize(String)

    var description: String {
        switch self {
        case .unknownSize(let name):
            return "tensor `\(name)` has an unknown (zero) size, so it cannot be packed by parameter count"
        }
    }
}
