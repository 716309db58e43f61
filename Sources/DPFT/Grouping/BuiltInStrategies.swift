// The built-in grouping strategies (DESIGN.md §4). Each proposes groups from the trainable
// tensors' ParameterInfo; GroupingRegistry.resolve checks, orders and thresholds them.

enum BuiltInGrouping {
    /// In the order `dpft plugins list` shows them.
    static let strategies: [any GroupingStrategy] = [
        AllLayerGrouping(), LayerWiseGrouping(), ParamWiseGrouping(), PerBlockGrouping(),
        AttentionMLPGrouping(), LoRAOnlyGrouping(), MixtureOfExpertsGrouping(), UniformBlocksGrouping(),
        RuleFileGrouping(),
    ]

    /// Groups tensors by `key`, groups in order of first appearance.
    static func groups(_ parameters: [ParameterInfo], by key: (ParameterInfo) -> String) -> [GroupDraft] {
        var drafts: [GroupDraft] = []
        var indexByName: [String: Int] = [:]
        for parameter in parameters {
            let name = key(parameter)
            if let index = indexByName[name] {
                drafts[index].parameters.append(parameter.name)
            } else {
                indexByName[name] = drafts.count
                drafts.append(GroupDraft(name: name, parameters: [parameter.name]))
            }
        }
        return drafts
    }

    /// `block.<i>` for a block's tensors, `embeddings` for token/position embeddings (a tied
    /// embedding included), `head` for the rest (final norm, untied LM head).
    static func blockGroupName(_ parameter: ParameterInfo) -> String {
        if let block = parameter.block { return "block.\(block)" }
        return parameter.role == .embedding ? "embeddings" : "head"
    }
}

/// One group, "all": every trainable tensor is clipped together (flat clipping).
public struct AllLayerGrouping: GroupingStrategy {
    public init() {}
    public let name = "all-layer"
    public let summary = "one group \"all\" holding every trainable tensor (flat clipping; most memory)"
    public func groups(for parameters: [ParameterInfo], options: GroupingOptions) throws -> [GroupDraft] {
        [GroupDraft(name: "all", parameters: parameters.map(\.name))]
    }
}

/// One group per module: a linear's weight and bias, a norm's weight and bias, an adapted
/// module's LoRA A and B. The group is named by the module, e.g. `model.layers.0.self_attn.q_proj`.
public struct LayerWiseGrouping: GroupingStrategy {
    public init() {}
    public let name = "layer-wise"
    public let summary = "one group per module (weight+bias, LoRA A+B), named by the module"
    public func groups(for parameters: [ParameterInfo], options: GroupingOptions) throws -> [GroupDraft] {
        BuiltInGrouping.groups(parameters, by: \.module)
    }
}

/// One group per tensor, named by the tensor.
public struct ParamWiseGrouping: GroupingStrategy {
    public init() {}
    public let name = "param-wise"
    public let summary = "one group per tensor, named by the tensor"
    public func groups(for parameters: [ParameterInfo], options: GroupingOptions) throws -> [GroupDraft] {
        parameters.map { GroupDraft(name: $0.name, parameters: [$0.name]) }
    }
}

/// `embeddings` (token and position embeddings; a tied embedding stays here), `block.<i>` per
/// transformer block (its norms, attention, MLP and their LoRA), `head` (final norm and an
/// untied LM head). Groups with no trainable tensor are left out.
public struct PerBlockGrouping: GroupingStrategy {
    public init() {}
    public let name = "per-block"
    public let summary = "\"embeddings\", one \"block.<i>\" per transformer block, \"head\" (final norm, untied lm_head)"
    public func groups(for parameters: [ParameterInfo], options: GroupingOptions) throws -> [GroupDraft] {
        BuiltInGrouping.groups(parameters, by: BuiltInGrouping.blockGroupName)
    }
}

/// `attention` (q/k/v/o or c_attn/c_proj of every block, with their LoRA), `mlp` (MLP
/// projections with their LoRA; in MoE models also the router and the experts) and `other`
/// (embeddings, norms, final norm, untied head). Groups with no trainable tensor are left out.
public struct AttentionMLPGrouping: GroupingStrategy {
    public init() {}
    public let name = "attn-mlp"
    public let summary = "\"attention\" projections, \"mlp\" projections (MoE router and experts too), \"other\" (embeddings, norms, head)"
    public func groups(for parameters: [ParameterInfo], options: GroupingOptions) throws -> [GroupDraft] {
        BuiltInGrouping.groups(parameters) { parameter in
            switch parameter.role {
            case .attention: return "attention"
            case .mlp, .router, .expert: return "mlp"
            case .embedding, .norm, .head: return "other"
            }
        }
    }
}

/// For LoRA fine-tuning: every trainable tensor must be a LoRA A or B (else an error naming the
/// first that is not). Option `per`: `module` (default) gives one group per adapted module
/// (A and B together), named by the module; `block` gives one `block.<i>` group per block.
public struct LoRAOnlyGrouping: GroupingStrategy {
    public init() {}
    public let name = "lora-only"
    public let summary = "LoRA tensors only: one group per adapted module (A+B) or per block"
    public let options = [
        GroupingOptionSpec(name: "per", type: .choice(["module", "block"]), defaultValue: "module",
                           description: "one group per adapted module (its A and B), or per transformer block"),
    ]
    public func groups(for parameters: [ParameterInfo], options: GroupingOptions) throws -> [GroupDraft] {
        if let other = parameters.first(where: { $0.kind != .loraA && $0.kind != .loraB }) {
            throw GroupingError.notLoRA(other.name)
        }
        switch try options.choice("per", among: ["module", "block"], default: "module") {
        case "block": return BuiltInGrouping.groups(parameters, by: BuiltInGrouping.blockGroupName)
        default: return BuiltInGrouping.groups(parameters, by: \.module)
        }
    }
}

/// For mixture-of-experts (Mixtral) models: per-expert clipping.
///
/// - one group per (layer, expert), named `block.<l>.expert.<e>`: the expert's w1, w2 and w3
///   and any LoRA A/B on them. An expert only sees the tokens routed to it, so its per-example
///   norm is small for examples that barely use it (0 for one that does not) and a group per
///   expert keeps a heavily used expert from crowding out the others' signal.
/// - the routers, option `router`: `per-layer` (default) gives one group `block.<l>.router`
///   per layer; `shared` puts every layer's router into one group `routers`. The router is an
///   ordinary linear over all tokens.
/// - every other trainable tensor (embeddings, attention, norms, head: the dense parts) is
///   grouped by the strategy named in option `dense` (default `per-block`: `embeddings`,
///   `block.<l>` for a block's attention and norms, `head`); `all-layer` names its single
///   group `dense`.
///
/// Every group of an expert closes as soon as the backward pass has visited that expert's three
/// matrices, so its books are freed at once. A model without trainable expert or router tensors
/// is an error (pick a dense strategy instead).
public struct MixtureOfExpertsGrouping: GroupingStrategy {
    public init() {}
    public let name = "moe-expert"
    public let summary = "MoE: one group per (layer, expert) with its w1/w2/w3 (+LoRA), routers per layer or shared, dense parts by a sub-strategy"
    /// The strategies the dense parts can be grouped by (option `dense`).
    public static let denseStrategies = ["per-block", "all-layer", "layer-wise", "param-wise", "attn-mlp"]
    public let options = [
        GroupingOptionSpec(name: "dense", type: .choice(MixtureOfExpertsGrouping.denseStrategies),
                           defaultValue: "per-block",
                           description: "how the non-expert, non-router tensors (embeddings, attention, norms, head) are grouped"),
        GroupingOptionSpec(name: "router", type: .choice(["per-layer", "shared"]), defaultValue: "per-layer",
                           description: "one group per layer's router (block.<l>.router), or all routers in one group (routers)"),
    ]
    public func groups(for parameters: [ParameterInfo], options: GroupingOptions) throws -> [GroupDraft] {
        let dense = try options.choice("dense", among: Self.denseStrategies, default: "per-block")
        let router = try options.choice("router", among: ["per-layer", "shared"], default: "per-layer")
        guard parameters.contains(where: { $0.role == .expert || $0.role == .router }) else {
            throw GroupingError.noExperts(strategy: name)
        }
        var drafts = BuiltInGrouping.groups(parameters.filter { $0.role == .expert || $0.role == .router }) { parameter in
            let block = parameter.block.map(String.init) ?? "?"
            if parameter.role == .router { return router == "shared" ? "routers" : "block.\(block).router" }
            return "block.\(block).expert.\(parameter.expert.map(String.init) ?? "?")"
        }
        let denseParameters = parameters.filter { $0.role != .expert && $0.role != .router }
        guard !denseParameters.isEmpty else { return drafts }
        let strategy: any GroupingStrategy
        switch dense {
        case "all-layer": strategy = AllLayerGrouping()
        case "layer-wise": strategy = LayerWiseGrouping()
        case "param-wise": strategy = ParamWiseGrouping()
        case "attn-mlp": strategy = AttentionMLPGrouping()
        default: strategy = PerBlockGrouping()
        }
        var denseDrafts = try strategy.groups(for: denseParameters, options: GroupingOptions())
        if dense == "all-layer" { denseDrafts = denseDrafts.map { GroupDraft(name: "dense", parameters: $0.parameters) } }
        drafts += denseDrafts
        return drafts
    }
}

/// M groups of consecutive transformer blocks, as even as possible (the first `B mod M` groups
/// get one block more), named `blocks.<first>-<last>` (or `blocks.<i>` for one block). Only
/// blocks with a trainable tensor count. Embeddings join the first group; the final norm and an
/// untied head join the last.
public struct UniformBlocksGrouping: GroupingStrategy {
    public init() {}
    public let name = "uniform"
    public let summary = "M groups of consecutive blocks (embeddings join the first, final norm and head the last)"
    public let options = [
        GroupingOptionSpec(name: "groups", type: .integer, isRequired: true,
                           description: "M ≥ 1, at most the number of blocks"),
    ]
    public func groups(for parameters: [ParameterInfo], options: GroupingOptions) throws -> [GroupDraft] {
        guard let groupCount = try options.integer("groups") else { throw options.missing("groups") }
        guard groupCount >= 1 else { throw options.invalid("groups", expected: "a whole number ≥ 1") }
        let blocks = Set(parameters.compactMap(\.block)).sorted()
        guard groupCount <= blocks.count else {
            throw GroupingError.tooManyGroups(requested: groupCount, blocks: blocks.count)
        }
        // Group g takes blocks[start ..< start + size], size = ⌊B/M⌋ + (g < B mod M ? 1 : 0).
        var groupOfBlock: [Int: Int] = [:]
        var names: [String] = []
        var start = 0
        for g in 0..<groupCount {
            let size = blocks.count / groupCount + (g < blocks.count % groupCount ? 1 : 0)
            let members = blocks[start..<(start + size)]
            for block in members { groupOfBlock[block] = g }
            names.append(size == 1 ? "blocks.\(members.first!)" : "blocks.\(members.first!)-\(members.last!)")
            start += size
        }
        var drafts = names.map { GroupDraft(name: $0, parameters: []) }
        for parameter in parameters {
            let g = parameter.block.map { groupOfBlock[$0]! } ?? (parameter.role == .embedding ? 0 : groupCount - 1)
            drafts[g].parameters.append(parameter.name)
        }
        return drafts
    }
}
