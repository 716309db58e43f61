import Foundation
import Testing
@testable import DPFT

/// Small models and their trainable-tensor lists, shared by the grouping tests.
enum GroupingFixtures {
    /// GPT-2 with a tied head, 3 blocks.
    static let gpt2 = #"{"model_type":"gpt2","vocab_size":50,"n_positions":16,"n_embd":8,"n_layer":3,"n_head":2}"#
    /// Llama with grouped-query attention (4 heads, 2 key/value heads) and an untied head, 3 blocks.
    static let llama = """
        {"model_type": "llama", "vocab_size": 40, "hidden_size": 8, "intermediate_size": 12,
         "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 32}
        """
    static let mixtral = """
        {"model_type": "mixtral", "vocab_size": 40, "hidden_size": 8, "intermediate_size": 12,
         "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 1,
         "num_local_experts": 3, "num_experts_per_tok": 2}
        """

    static func config(_ json: String) throws -> ModelConfig {
        try ModelConfig(json: Data(json.utf8), source: "test-config.json")
    }

    static func lora(for json: String) -> LoRAConfig {
        switch json {
        case gpt2: return LoRAConfig(rank: 2, alpha: 4, targets: ["c_attn", "c_fc"])
        case mixtral: return LoRAConfig(rank: 2, alpha: 4, targets: ["q_proj", "v_proj", "w2"])
        default: return LoRAConfig(rank: 2, alpha: 4, targets: ["q_proj", "v_proj", "down_proj"])
        }
    }

    /// Trainable tensors of a model: every model tensor (`lora` false) or LoRA adapters only.
    static func parameters(_ json: String, lora: Bool) throws -> [ParameterInfo] {
        try config(json).trainableParameterInfos(lora: lora ? Self.lora(for: json) : nil)
    }

    /// A model description for test names.
    static func label(_ json: String) -> String {
        json == gpt2 ? "gpt2" : json == llama ? "llama" : "mixtral"
    }

    static func resolve(_ strategy: String, _ options: GroupingOptions, _ parameters: [ParameterInfo],
                        threshold: Double = 1.0, registry: GroupingRegistry = .builtIn) throws -> Grouping {
        try registry.resolve(strategy: strategy, options: options, parameters: parameters, threshold: threshold)
    }

    static func resolve(_ strategy: String, _ parameters: [ParameterInfo], threshold: Double = 1.0) throws -> Grouping {
        try resolve(strategy, [:], parameters, threshold: threshold)
    }
}

/// A strategy that returns whatever it is given: for testing the checks on strategy output.
struct FixedGrouping: GroupingStrategy {
    var name = "fixed"
    var summary = "returns fixed drafts"
    var options: [GroupingOptionSpec] = []
    var drafts: [GroupDraft]
    func groups(for parameters: [ParameterInfo], options: GroupingOptions) throws -> [GroupDraft] { drafts }
}

@Suite struct GroupingStrategyTests {
    typealias F = GroupingFixtures

    static let models = [F.gpt2, F.llama, F.mixtral]
    static let structural = ["all-layer", "layer-wise", "param-wise", "per-block", "attn-mlp", "uniform"]

    @Test func builtInsAreRegisteredOnceInOrder() {
        let registry = GroupingRegistry.builtIn
        #expect(registry.names == ["all-layer", "layer-wise", "param-wise", "per-block", "attn-mlp",
                                   "lora-only", "moe-expert", "uniform", "rules"])
        #expect(Set(registry.names).count == registry.names.count)
        #expect(registry.entries.allSatisfy { $0.origin == .builtIn && !$0.strategy.summary.isEmpty })
    }

    /// Every structural strategy partitions every model's tensors, full and LoRA, with groups in
    /// forward order of their first member, members in forward order and Σ R_k² = R².
    @Test(arguments: models, [false, true])
    func everyStrategyPartitionsTheTrainableTensors(model: String, lora: Bool) throws {
        let parameters = try F.parameters(model, lora: lora)
        let position = Dictionary(uniqueKeysWithValues: parameters.enumerated().map { ($1.name, $0) })
        var strategies = Self.structural
        if lora { strategies.append("lora-only") }
        for strategy in strategies {
            let options: GroupingOptions = strategy == "uniform" ? ["groups": 2] : [:]
            let grouping = try F.resolve(strategy, options, parameters, threshold: 2.0)
            let context = "\(strategy) on \(F.label(model)) lora=\(lora)"
            let members = grouping.groups.flatMap(\.parameters)
            #expect(members.count == parameters.count, "\(context)")
            #expect(Set(members) == Set(parameters.map(\.name)), "\(context)")
            #expect(grouping.groups.allSatisfy { !$0.parameters.isEmpty }, "\(context)")
            let firsts = grouping.groups.map { position[$0.parameters[0]]! }
            #expect(firsts == firsts.sorted(), "\(context): groups not in forward order")
            for group in grouping.groups {
                let positions = group.parameters.map { position[$0]! }
                #expect(positions == positions.sorted(), "\(context): \(group.name) members not in forward order")
            }
            for (k, group) in grouping.groups.enumerated() {
                for parameter in group.parameters { #expect(grouping.groupIndex(of: parameter) == k, "\(context)") }
            }
            #expect(abs(grouping.totalSensitivity - 2.0) < 1e-12, "\(context)")
            #expect(grouping.strategy == strategy)
            #expect(grouping.allocation == .uniform)
        }
    }

    @Test func allLayerIsOneGroup() throws {
        let parameters = try F.parameters(F.gpt2, lora: false)
        let grouping = try F.resolve("all-layer", parameters)
        #expect(grouping.groups == [ParameterGroup(name: "all", threshold: 1, parameters: parameters.map(\.name))])
        #expect(grouping.groupIndex(of: "lm_head.weight") == nil)
    }

    @Test func perBlockOnTiedGPT2KeepsTheTiedEmbeddingInEmbeddings() throws {
        let grouping = try F.resolve("per-block", try F.parameters(F.gpt2, lora: false))
        #expect(grouping.groups.map(\.name) == ["embeddings", "block.0", "block.1", "block.2", "head"])
        #expect(grouping.groups[0].parameters == ["transformer.wte.weight", "transformer.wpe.weight"])
        #expect(grouping.groups[4].parameters == ["transformer.ln_f.weight", "transformer.ln_f.bias"])
        #expect(grouping.groups[2].parameters.count == 12)
        #expect(grouping.groups[2].parameters.allSatisfy { $0.hasPrefix("transformer.h.1.") })
    }

    @Test func perBlockOnLlamaPutsFinalNormAndUntiedHeadInHead() throws {
        let grouping = try F.resolve("per-block", try F.parameters(F.llama, lora: false))
        #expect(grouping.groups.map(\.name) == ["embeddings", "block.0", "block.1", "block.2", "head"])
        #expect(grouping.groups[0].parameters == ["model.embed_tokens.weight"])
        #expect(grouping.groups[4].parameters == ["model.norm.weight", "lm_head.weight"])
        #expect(grouping.groups[1].parameters == [
            "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.weight",
            "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight",
            "model.layers.0.self_attn.o_proj.weight", "model.layers.0.post_attention_layernorm.weight",
            "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
            "model.layers.0.mlp.down_proj.weight",
        ])
    }

    @Test func perBlockWithLoRAHasOnlyBlocks() throws {
        let grouping = try F.resolve("per-block", try F.parameters(F.llama, lora: true))
        #expect(grouping.groups.map(\.name) == ["block.0", "block.1", "block.2"])
        #expect(grouping.groups[0].parameters.count == 6)
    }

    @Test func layerWisePairsWeightWithBiasAndAWithB() throws {
        let full = try F.resolve("layer-wise", try F.parameters(F.gpt2, lora: false))
        // wte, wpe, 6 modules per block (ln_1, c_attn, attn.c_proj, ln_2, c_fc, mlp.c_proj), ln_f.
        #expect(full.groups.count == 2 + 6 * 3 + 1)
        #expect(full.groups[0] == ParameterGroup(name: "transformer.wte", threshold: 1 / Double(21).squareRoot(),
                                                 parameters: ["transformer.wte.weight"]))
        let attention = try #require(full.groups.first { $0.name == "transformer.h.0.attn.c_attn" })
        #expect(attention.parameters == ["transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_attn.bias"])
        let norm = try #require(full.groups.first { $0.name == "transformer.ln_f" })
        #expect(norm.parameters == ["transformer.ln_f.weight", "transformer.ln_f.bias"])

        let lora = try F.resolve("layer-wise", try F.parameters(F.llama, lora: true))
        #expect(lora.groups.count == 3 * 3)
        #expect(lora.groups[0] == ParameterGroup(
            name: "model.layers.0.self_attn.q_proj", threshold: 1.0 / 3.0,
            parameters: ["model.layers.0.self_attn.q_proj.lora_A.weight", "model.layers.0.self_attn.q_proj.lora_B.weight"]))
    }

    @Test func paramWiseIsOneGroupPerTensor() throws {
        let parameters = try F.parameters(F.llama, lora: false)
        let grouping = try F.resolve("param-wise", parameters)
        #expect(grouping.groups.map(\.name) == parameters.map(\.name))
        #expect(grouping.groups.allSatisfy { $0.parameters == [$0.name] })
    }

    @Test func attnMLPSplitsAttentionMLPAndTheRest() throws {
        let grouping = try F.resolve("attn-mlp", try F.parameters(F.llama, lora: false))
        #expect(grouping.groups.map(\.name) == ["other", "attention", "mlp"])
        #expect(grouping.groups[0].parameters.first == "model.embed_tokens.weight")
        #expect(grouping.groups[0].parameters.last == "lm_head.weight")
        #expect(grouping.groups[0].parameters.count == 1 + 2 * 3 + 2)
        #expect(grouping.groups[1].parameters.count == 4 * 3)
        #expect(grouping.groups[1].parameters.allSatisfy { $0.contains(".self_attn.") })
        #expect(grouping.groups[2].parameters.count == 3 * 3)
        #expect(grouping.groups[2].parameters.allSatisfy { $0.contains(".mlp.") })

        let gpt2 = try F.resolve("attn-mlp", try F.parameters(F.gpt2, lora: true))
        #expect(gpt2.groups.map(\.name) == ["attention", "mlp"])
        #expect(gpt2.groups[0].parameters.allSatisfy { $0.contains(".attn.c_attn.lora_") })

        let mixtral = try F.resolve("attn-mlp", try F.parameters(F.mixtral, lora: false))
        let mlp = try #require(mixtral.groups.first { $0.name == "mlp" })
        #expect(mlp.parameters.contains("model.layers.0.block_sparse_moe.gate.weight"))
        #expect(mlp.parameters.contains("model.layers.1.block_sparse_moe.experts.2.w3.weight"))
        #expect(mlp.parameters.count == 2 * (1 + 3 * 3))
    }

    @Test func loraOnlyGroupsPerModuleOrPerBlock() throws {
        let parameters = try F.parameters(F.llama, lora: true)
        let perModule = try F.resolve("lora-only", parameters)
        #expect(perModule.groups.map(\.name).prefix(3) == ["model.layers.0.self_attn.q_proj",
                                                           "model.layers.0.self_attn.v_proj",
                                                           "model.layers.0.mlp.down_proj"])
        #expect(perModule.groups.allSatisfy { $0.parameters.count == 2 })
        #expect(try F.resolve("lora-only", ["per": "module"], parameters).groups == perModule.groups)

        let perBlock = try F.resolve("lora-only", ["per": "block"], parameters)
        #expect(perBlock.groups.map(\.name) == ["block.0", "block.1", "block.2"])
        #expect(perBlock.groups[2].parameters == [
            "model.layers.2.self_attn.q_proj.lora_A.weight", "model.layers.2.self_attn.q_proj.lora_B.weight",
            "model.layers.2.self_attn.v_proj.lora_A.weight", "model.layers.2.self_attn.v_proj.lora_B.weight",
            "model.layers.2.mlp.down_proj.lora_A.weight", "model.layers.2.mlp.down_proj.lora_B.weight",
        ])
    }

    @Test func loraOnlyRejectsTheFirstNonLoRATensor() throws {
        #expect(throws: GroupingError.notLoRA("transformer.wte.weight")) {
            try F.resolve("lora-only", try F.parameters(F.gpt2, lora: false))
        }
        // LoRA present but everything trainable: the first non-LoRA tensor in forward order.
        let all = try F.config(F.llama).trainableParameterInfos(lora: F.lora(for: F.llama), trainable: .all)
        #expect(throws: GroupingError.notLoRA("model.embed_tokens.weight")) { try F.resolve("lora-only", all) }
        #expect(throws: GroupingError.invalidOption(strategy: "lora-only", option: "per", value: "\"layer\"",
                                                    expected: "\"module\" | \"block\"")) {
            try F.resolve("lora-only", ["per": "layer"], try F.parameters(F.llama, lora: true))
        }
    }

    @Test func uniformSplitsConsecutiveBlocksEvenly() throws {
        let parameters = try F.parameters(F.llama, lora: false)
        let two = try F.resolve("uniform", ["groups": 2], parameters)
        #expect(two.groups.map(\.name) == ["blocks.0-1", "blocks.2"])
        #expect(two.groups[0].parameters.first == "model.embed_tokens.weight")
        #expect(two.groups[0].parameters.count == 1 + 9 * 2)
        #expect(two.groups[1].parameters.suffix(2) == ["model.norm.weight", "lm_head.weight"])
        #expect(two.groups[1].parameters.count == 9 + 2)

        let three = try F.resolve("uniform", ["groups": 3], parameters)
        #expect(three.groups.map(\.name) == ["blocks.0", "blocks.1", "blocks.2"])
        let one = try F.resolve("uniform", ["groups": 1], parameters)
        #expect(one.groups.map(\.name) == ["blocks.0-2"])
        #expect(one.groups[0].parameters == parameters.map(\.name))

        // 5 blocks in 3 groups: sizes 2, 2, 1.
        let five = try F.config(F.llama.replacingOccurrences(of: "\"num_hidden_layers\": 3", with: "\"num_hidden_layers\": 5"))
        let grouping = try F.resolve("uniform", ["groups": 3], try five.trainableParameterInfos(lora: nil))
        #expect(grouping.groups.map(\.name) == ["blocks.0-1", "blocks.2-3", "blocks.4"])
    }

    @Test func uniformChecksItsGroupCount() throws {
        let parameters = try F.parameters(F.gpt2, lora: false)
        #expect(throws: GroupingError.tooManyGroups(requested: 4, blocks: 3)) {
            try F.resolve("uniform", ["groups": 4], parameters)
        }
        #expect(throws: GroupingError.missingOption(strategy: "uniform", option: "groups")) {
            try F.resolve("uniform", parameters)
        }
        #expect(throws: GroupingError.invalidOption(strategy: "uniform", option: "groups", value: "0",
                                                    expected: "a whole number ≥ 1")) {
            try F.resolve("uniform", ["groups": 0], parameters)
        }
        #expect(throws: GroupingError.invalidOption(strategy: "uniform", option: "groups", value: "\"2\"",
                                                    expected: "integer")) {
            try F.resolve("uniform", ["groups": "2"], parameters)
        }
        #expect(throws: GroupingError.invalidOption(strategy: "uniform", option: "groups", value: "2.5",
                                                    expected: "integer")) {
            try F.resolve("uniform", ["groups": 2.5], parameters)
        }
    }

    @Test func transformerInfosMatchTheConfigsAndCarryRealShapes() throws {
        var checkpoint = Checkpoint.initialized(config: try F.config(F.llama), seed: 1)
        try checkpoint.addAdapters(F.lora(for: F.llama), seed: 2)
        let model = try Transformer(checkpoint: checkpoint, maxBatchSize: 1, maxSequenceLength: 4)
        let infos = model.trainableParameterInfos
        #expect(infos == (try F.parameters(F.llama, lora: true)))
        #expect(infos[0].name == "model.layers.0.self_attn.q_proj.lora_A.weight")
        #expect(infos[0].shape == [2, 8])
        #expect(infos[1].shape == [8, 2])
        #expect(infos.allSatisfy { $0.count > 0 })
        #expect(Set(infos.map(\.name)) == Set(model.trainableNames))

        let full = try Transformer(checkpoint: Checkpoint.initialized(config: try F.config(F.gpt2), seed: 1),
                                   maxBatchSize: 1, maxSequenceLength: 4)
        #expect(full.trainableParameterInfos == (try F.parameters(F.gpt2, lora: false)))
        #expect(full.trainableParameterInfos.first { $0.isTiedHead }?.name == "transformer.wte.weight")
    }
}

@Suite struct GroupingAllocationTests {
    typealias F = GroupingFixtures

    @Test func uniformGivesEachGroupRoverRootK() throws {
        let grouping = try F.resolve("per-block", try F.parameters(F.llama, lora: false), threshold: 3.0)
        #expect(grouping.groups.count == 5)
        for group in grouping.groups { #expect(abs(group.threshold - 3.0 / Double(5).squareRoot()) < 1e-12) }
        #expect(abs(grouping.totalSensitivity - 3.0) < 1e-12)
        #expect(try F.resolve("per-block", ["allocation": "uniform"], try F.parameters(F.llama, lora: false),
                              threshold: 3.0) == grouping)
    }

    @Test(arguments: [false, true])
    func sqrtSizeFollowsGroupSizesAndKeepsTotalSensitivity(lora: Bool) throws {
        let parameters = try F.parameters(F.llama, lora: lora)
        let grouping = try F.resolve("layer-wise", ["allocation": "sqrt-size"], parameters, threshold: 2.0)
        #expect(grouping.allocation == .sqrtSize)
        let count = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0.count) })
        let sizes = grouping.groups.map { $0.parameters.reduce(0) { $0 + count[$1]! } }
        let total = Double(sizes.reduce(0, +))
        for (group, size) in zip(grouping.groups, sizes) {
            #expect(abs(group.threshold - 2.0 * (Double(size) / total).squareRoot()) < 1e-12, "\(group.name)")
        }
        let sumOfSquares = grouping.thresholds.reduce(0) { $0 + $1 * $1 }
        #expect(abs(sumOfSquares - 4.0) < 1e-12)
        #expect(abs(grouping.totalSensitivity - 2.0) < 1e-12)
    }

    @Test func sqrtSizeByHand() throws {
        // gpt2 per-block: embeddings 50·8 + 16·8 = 528; a block 872 (ln_1 and ln_2 2·16, c_attn 24·8 + 24,
        // attn.c_proj 8·8 + 8, c_fc 32·8 + 32, mlp.c_proj 8·32 + 8); head (ln_f) 16.
        let grouping = try F.resolve("per-block", ["allocation": "sqrt-size"], try F.parameters(F.gpt2, lora: false))
        let sizes = [528.0, 872, 872, 872, 16]
        let total = sizes.reduce(0, +)
        #expect(grouping.thresholds.count == 5)
        for (threshold, size) in zip(grouping.thresholds, sizes) {
            #expect(abs(threshold - (size / total).squareRoot()) < 1e-12)
        }
    }

    @Test func sqrtSizeNeedsKnownSizes() throws {
        // parameterInfos' adapter shapes carry a 0 placeholder for the rank.
        let config = try F.config(F.llama)
        let placeholders = config.parameterInfos(adapters: try config.adapterSpecs(for: F.lora(for: F.llama)))
            .filter { $0.kind == .loraA || $0.kind == .loraB }
        #expect(throws: GroupingError.unknownSize("model.layers.0.self_attn.q_proj.lora_A.weight")) {
            try F.resolve("lora-only", ["allocation": "sqrt-size"], placeholders)
        }
        // Uniform does not need sizes.
        #expect(try F.resolve("lora-only", placeholders).groups.count == 9)
    }

    @Test func explicitUsesTheGivenThresholds() throws {
        let parameters = try F.parameters(F.llama, lora: false)
        let thresholds: GroupingOptionValue = ["attention": 0.5, "mlp": 2, "other": 0.25]
        let grouping = try F.resolve("attn-mlp", ["allocation": "explicit", "thresholds": thresholds], parameters)
        #expect(grouping.allocation == .explicit)
        #expect(grouping.groups.map(\.name) == ["other", "attention", "mlp"])
        #expect(grouping.thresholds == [0.25, 0.5, 2])
        #expect(abs(grouping.totalSensitivity - (0.0625 + 0.25 + 4).squareRoot()) < 1e-12)
        // `thresholds` alone implies explicit.
        #expect(try F.resolve("attn-mlp", ["thresholds": thresholds], parameters) == grouping)
    }

    @Test func explicitErrorsNameTheGroup() throws {
        let parameters = try F.parameters(F.llama, lora: false)
        #expect(throws: GroupingError.missingThreshold(group: "mlp")) {
            try F.resolve("attn-mlp", ["allocation": "explicit", "thresholds": ["attention": 0.5, "other": 1]], parameters)
        }
        #expect(throws: GroupingError.missingThreshold(group: "other")) {
            try F.resolve("attn-mlp", ["allocation": "explicit"], parameters)
        }
        #expect(throws: GroupingError.thresholdForUnknownGroup("attn")) {
            try F.resolve("attn-mlp", ["thresholds": ["attn": 0.5, "mlp": 1, "other": 1]], parameters)
        }
        #expect(throws: GroupingError.invalidThreshold(group: "mlp", value: 0)) {
            try F.resolve("attn-mlp", ["thresholds": ["attention": 0.5, "mlp": 0, "other": 1]], parameters)
        }
        #expect(throws: GroupingError.invalidThreshold(group: "attention", value: -1)) {
            try F.resolve("attn-mlp", ["thresholds": ["attention": -1, "mlp": 1, "other": 1]], parameters)
        }
        #expect(throws: GroupingError.invalidOption(strategy: "attn-mlp", option: "thresholds",
                                                    value: "{\"attention\": 1, \"mlp\": 1, \"other\": 1}",
                                                    expected: "no `thresholds` unless `allocation` is \"explicit\"")) {
            try F.resolve("attn-mlp", ["allocation": "sqrt-size", "thresholds": ["attention": 1, "mlp": 1, "other": 1]],
                          parameters)
        }
        #expect(throws: GroupingError.invalidOption(strategy: "attn-mlp", option: "thresholds",
                                                    value: "{\"mlp\": \"big\"}",
                                                    expected: "an object of numbers {group: threshold}")) {
            try F.resolve("attn-mlp", ["thresholds": ["mlp": "big"]], parameters)
        }
    }

    @Test(arguments: [0.0, -1.0, Double.nan, Double.infinity])
    func totalThresholdMustBePositiveAndFinite(threshold: Double) throws {
        let parameters = try F.parameters(F.gpt2, lora: false)
        #expect {
            try F.resolve("all-layer", parameters, threshold: threshold)
        } throws: { error in
            guard case GroupingError.invalidTotalThreshold(let value) = error else { return false }
            return value.isNaN ? threshold.isNaN : value == threshold
        }
    }

    @Test func allocationFunctionByHand() throws {
        let uniform = try ThresholdAllocation.uniform.thresholds(groups: ["a", "b", "c", "d"], total: 2)
        #expect(uniform == [1, 1, 1, 1])
        let sqrtSize = try ThresholdAllocation.sqrtSize.thresholds(groups: ["a", "b"], total: 5, sizes: [9, 16])
        #expect(abs(sqrtSize[0] - 3) < 1e-12 && abs(sqrtSize[1] - 4) < 1e-12)
        let explicit = try ThresholdAllocation.explicit.thresholds(groups: ["a", "b"], total: 1, explicit: ["b": 2, "a": 3])
        #expect(explicit == [3, 2])
    }
}

@Suite struct GroupingRegistryTests {
    typealias F = GroupingFixtures

    @Test func unknownStrategyListsTheAvailableOnes() throws {
        #expect(throws: GroupingError.unknownStrategy("per-layer", available: GroupingRegistry.builtIn.names)) {
            try F.resolve("per-layer", try F.parameters(F.gpt2, lora: false))
        }
    }

    @Test func registeringADuplicateNameIsAnError() throws {
        var registry = GroupingRegistry.builtIn
        #expect(throws: GroupingError.duplicateStrategy("per-block", registeredBy: "built-in")) {
            try registry.register(FixedGrouping(name: "per-block", drafts: []), origin: .plugin(path: "/tmp/p.so"))
        }
        try registry.register(FixedGrouping(name: "mine", drafts: []), origin: .plugin(path: "/tmp/p.so"))
        #expect(throws: GroupingError.duplicateStrategy("mine", registeredBy: "plugin /tmp/p.so")) {
            try registry.register(FixedGrouping(name: "mine", drafts: []))
        }
        #expect(throws: GroupingError.invalidStrategyName("my strategy")) {
            try registry.register(FixedGrouping(name: "my strategy", drafts: []))
        }
        #expect(throws: GroupingError.invalidStrategyName("")) {
            try registry.register(FixedGrouping(name: "", drafts: []))
        }
        let shadowing = FixedGrouping(name: "shadow", options: [GroupingOptionSpec(name: "allocation", type: .string,
                                                                                   description: "")], drafts: [])
        #expect(throws: GroupingError.reservedOptionName(strategy: "shadow", option: "allocation")) {
            try registry.register(shadowing)
        }
    }

    @Test func aRegisteredStrategyResolvesLikeABuiltIn() throws {
        let parameters = try F.parameters(F.gpt2, lora: true)
        let names = parameters.map(\.name)
        // Out of order on purpose: resolve orders groups and members forward.
        let plugin = FixedGrouping(name: "halves", options: [
            GroupingOptionSpec(name: "flavour", type: .string, description: "ignored"),
        ], drafts: [
            GroupDraft(name: "second", parameters: Array(names[6...]).reversed()),
            GroupDraft(name: "first", parameters: Array(names[..<6])),
        ])
        var registry = GroupingRegistry.builtIn
        try registry.register(plugin, origin: .plugin(path: "libhalves.so"))
        let grouping = try F.resolve("halves", ["flavour": "x", "allocation": "sqrt-size"], parameters,
                                     registry: registry)
        #expect(grouping.groups.map(\.name) == ["first", "second"])
        #expect(grouping.groups[1].parameters == Array(names[6...]))
        #expect(abs(grouping.totalSensitivity - 1) < 1e-12)
    }

    @Test func unknownOptionsListTheAllowedOnes() throws {
        let parameters = try F.parameters(F.llama, lora: true)
        #expect(throws: GroupingError.unknownOption(strategy: "lora-only", option: "pre",
                                                    allowed: ["per", "allocation", "thresholds"])) {
            try F.resolve("lora-only", ["pre": "block"], parameters)
        }
        #expect(throws: GroupingError.unknownOption(strategy: "per-block", option: "per",
                                                    allowed: ["allocation", "thresholds"])) {
            try F.resolve("per-block", ["per": "block"], parameters)
        }
        #expect(throws: GroupingError.invalidOption(strategy: "per-block", option: "allocation", value: "\"sqrt\"",
                                                    expected: "\"uniform\" | \"sqrt-size\" | \"explicit\"")) {
            try F.resolve("per-block", ["allocation": "sqrt"], parameters)
        }
    }

    @Test func optionsParseFromJSON() throws {
        let options = try GroupingOptions(json: #"{"per": "block", "groups": 3, "thresholds": {"a": 0.5}, "flag": true}"#)
        #expect(try options.string("per") == "block")
        #expect(try options.integer("groups") == 3)
        #expect(try options.thresholds("thresholds") == ["a": 0.5])
        #expect(try options.boolean("flag") == true)
        #expect(try options.string("absent") == nil)
        #expect(throws: GroupingError.invalidOption(strategy: "", option: "per", value: "\"block\"", expected: "a number")) {
            try options.number("per")
        }
        #expect(try GroupingOptions(json: "") == GroupingOptions())
        #expect(try GroupingOptions(json: " {} ") == GroupingOptions())
        #expect(throws: GroupingError.optionsNotJSON(reason: "{per: block} is not valid JSON")) {
            try GroupingOptions(json: "{per: block}")
        }
        #expect(throws: GroupingError.optionsNotJSON(reason: "[1] is not an object")) {
            try GroupingOptions(json: "[1]")
        }
        let decoded = try JSONDecoder().decode(GroupingOptions.self, from: Data(#"{"per": "block"}"#.utf8))
        #expect(decoded == ["per": "block"])
    }
}

/// Each check on a strategy's output, with a strategy that returns bad drafts.
@Suite struct GroupingValidationTests {
    typealias F = GroupingFixtures

    static func resolveFixed(_ drafts: [GroupDraft]) throws -> Grouping {
        var registry = GroupingRegistry()
        try registry.register(FixedGrouping(drafts: drafts), origin: .plugin(path: "test"))
        let parameters = try F.parameters(F.gpt2, lora: true)  // c_attn and c_fc of 3 blocks: 12 tensors
        return try registry.resolve(strategy: "fixed", options: [:], parameters: parameters, threshold: 1)
    }

    static let names = try! F.parameters(F.gpt2, lora: true).map(\.name)
    static let a = Array(names[..<6]), b = Array(names[6...])

    @Test func aValidPartitionPasses() throws {
        let grouping = try Self.resolveFixed([GroupDraft(name: "a", parameters: Self.a),
                                              GroupDraft(name: "b", parameters: Self.b)])
        #expect(grouping.groups.count == 2)
    }

    @Test func emptyGroup() {
        #expect(throws: GroupingError.emptyGroup("nothing")) {
            try Self.resolveFixed([GroupDraft(name: "a", parameters: Self.names), GroupDraft(name: "nothing", parameters: [])])
        }
    }

    @Test func tensorInTwoGroups() {
        #expect(throws: GroupingError.parameterInTwoGroups(Self.names[6], first: "a", second: "b")) {
            try Self.resolveFixed([GroupDraft(name: "a", parameters: Self.a + [Self.names[6]]),
                                   GroupDraft(name: "b", parameters: Self.b)])
        }
    }

    @Test func tensorLeftOut() {
        #expect(throws: GroupingError.parameterNotGrouped(Self.names[11])) {
            try Self.resolveFixed([GroupDraft(name: "a", parameters: Self.a),
                                   GroupDraft(name: "b", parameters: Array(Self.b.dropLast()))])
        }
    }

    @Test func unknownTensor() {
        #expect(throws: GroupingError.unknownParameter("transformer.wte.weight", group: "b")) {
            try Self.resolveFixed([GroupDraft(name: "a", parameters: Self.a),
                                   GroupDraft(name: "b", parameters: Self.b + ["transformer.wte.weight"])])
        }
    }

    @Test func duplicateGroupNames() {
        #expect(throws: GroupingError.duplicateGroup("a")) {
            try Self.resolveFixed([GroupDraft(name: "a", parameters: Self.a), GroupDraft(name: "a", parameters: Self.b)])
        }
    }

    @Test func blankGroupName() {
        #expect(throws: GroupingError.invalidGroupName(" ")) {
            try Self.resolveFixed([GroupDraft(name: "a", parameters: Self.a), GroupDraft(name: " ", parameters: Self.b)])
        }
    }

    @Test(arguments: [0.0, -0.5, Double.infinity, -Double.infinity])
    func nonPositiveOrNonFiniteThreshold(threshold: Double) {
        #expect(throws: GroupingError.invalidThreshold(group: "b", value: threshold)) {
            try Self.resolveFixed([GroupDraft(name: "a", parameters: Self.a, threshold: 1),
                                   GroupDraft(name: "b", parameters: Self.b, threshold: threshold)])
        }
    }

    @Test func nanThreshold() {
        #expect {
            try Self.resolveFixed([GroupDraft(name: "a", parameters: Self.a),
                                   GroupDraft(name: "b", parameters: Self.b, threshold: .nan)])
        } throws: { error in
            guard case GroupingError.invalidThreshold(let group, let value) = error else { return false }
            return group == "b" && value.isNaN
        }
    }

    @Test func draftThresholdsMakeAllocationExplicit() throws {
        let grouping = try Self.resolveFixed([GroupDraft(name: "a", parameters: Self.a, threshold: 3),
                                              GroupDraft(name: "b", parameters: Self.b, threshold: 4)])
        #expect(grouping.allocation == .explicit)
        #expect(grouping.thresholds == [3, 4])
        #expect(grouping.totalSensitivity == 5)
    }

    @Test func noTrainableTensors() {
        #expect(throws: GroupingError.noParameters) {
            try GroupingRegistry.builtIn.resolve(strategy: "all-layer", options: [:], parameters: [], threshold: 1)
        }
    }

    @Test func directlyBuiltGroupingsAreCheckedToo() throws {
        #expect(throws: GroupingError.parameterNotGrouped("y")) {
            try Grouping(strategy: "hand", groups: [ParameterGroup(name: "g", threshold: 1, parameters: ["x"])],
                         parameters: ["x", "y"])
        }
        #expect(throws: GroupingError.invalidThreshold(group: "g", value: 0)) {
            try Grouping(strategy: "hand", groups: [ParameterGroup(name: "g", threshold: 0, parameters: ["x"])],
                         parameters: ["x"])
        }
        #expect(throws: GroupingError.duplicateParameter("x")) {
            try Grouping(strategy: "hand", groups: [ParameterGroup(name: "g", threshold: 1, parameters: ["x"])],
                         parameters: ["x", "x"])
        }
        var grouping = try Grouping(strategy: "hand", groups: [
            ParameterGroup(name: "g", threshold: 3, parameters: ["x"]),
            ParameterGroup(name: "h", threshold: 4, parameters: ["y", "z"]),
        ], parameters: ["x", "y", "z"])
        #expect(grouping.groupIndex(of: "z") == 1)
        #expect(grouping.totalSensitivity == 5)
        let decoded = try JSONDecoder().decode(Grouping.self, from: try JSONEncoder().encode(grouping))
        #expect(decoded == grouping)
        #expect(decoded.groupIndex(of: "y") == 1)
        grouping.groups.swapAt(0, 1)
        #expect(grouping.groupIndex(of: "z") == 0 && grouping.groupIndex(of: "x") == 1)
    }
}

/// `moe-expert`: the groups its documentation promises, on the small Mixtral (2 layers,
/// 3 experts), full and LoRA, with its options; bad options and non-MoE models are clear errors.
@Suite struct MixtureOfExpertsGroupingTests {
    typealias F = GroupingFixtures

    static func names(_ grouping: Grouping) -> [String: [String]] {
        Dictionary(uniqueKeysWithValues: grouping.groups.map { ($0.name, $0.parameters) })
    }

    @Test func fullModelGroupsPerExpertRouterAndBlock() throws {
        let grouping = try F.resolve("moe-expert", try F.parameters(F.mixtral, lora: false))
        var expected: [(String, [String])] = [("embeddings", ["model.embed_tokens.weight"])]
        for l in 0..<2 {
            let p = "model.layers.\(l)."
            expected.append(("block.\(l)", [p + "input_layernorm.weight", p + "self_attn.q_proj.weight",
                                             p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight",
                                             p + "self_attn.o_proj.weight", p + "post_attention_layernorm.weight"]))
            expected.append(("block.\(l).router", [p + "block_sparse_moe.gate.weight"]))
            for e in 0..<3 {
                expected.append(("block.\(l).expert.\(e)", ["w1", "w2", "w3"].map { p + "block_sparse_moe.experts.\(e).\($0).weight" }))
            }
        }
        expected.append(("head", ["model.norm.weight", "lm_head.weight"]))
        #expect(grouping.groups.map(\.name) == expected.map(\.0))
        #expect(grouping.groups.map(\.parameters) == expected.map(\.1))
        #expect(grouping.strategy == "moe-expert")
        let K = Double(expected.count)
        #expect(grouping.groups.allSatisfy { abs($0.threshold - 1 / K.squareRoot()) < 1e-12 })
    }

    @Test func loraOnExpertsGroupsTheAdaptersWithTheirExpert() throws {
        // LoRA on q_proj, v_proj and w2
        let grouping = try F.resolve("moe-expert", try F.parameters(F.mixtral, lora: true))
        let groups = Self.names(grouping)
        let m = "model.layers.1.block_sparse_moe.experts.2.w2"
        #expect(groups["block.1.expert.2"] == [m + ".lora_A.weight", m + ".lora_B.weight"])
        let q = "model.layers.0.self_attn.q_proj", v = "model.layers.0.self_attn.v_proj"
        #expect(groups["block.0"] == [q + ".lora_A.weight", q + ".lora_B.weight", v + ".lora_A.weight", v + ".lora_B.weight"])
        #expect(groups["block.0.router"] == nil, "the router is frozen under LoRA")
        #expect(grouping.groups.count == 2 + 2 * 3)
    }

    @Test func optionsChooseRouterAndDenseGrouping() throws {
        let parameters = try F.parameters(F.mixtral, lora: false)
        let shared = Self.names(try F.resolve("moe-expert", ["router": "shared", "dense": "all-layer"], parameters))
        #expect(shared["routers"] == ["model.layers.0.block_sparse_moe.gate.weight", "model.layers.1.block_sparse_moe.gate.weight"])
        #expect(shared["dense"]?.count == 1 + 2 * 6 + 2)
        #expect(shared.count == 1 + 1 + 2 * 3)
        let layerWise = Self.names(try F.resolve("moe-expert", ["dense": "layer-wise"], parameters))
        #expect(layerWise["model.layers.0.self_attn.q_proj"] == ["model.layers.0.self_attn.q_proj.weight"])
        #expect(layerWise["block.0.expert.1"]?.count == 3)
        let attnMLP = Self.names(try F.resolve("moe-expert", ["dense": "attn-mlp"], parameters))
        #expect(Set(attnMLP.keys) == Set(["attention", "other", "block.0.router", "block.1.router"]
            + (0..<2).flatMap { l in (0..<3).map { "block.\(l).expert.\($0)" } }))
    }

    @Test func badOptionsAndDenseModelsAreClearErrors() throws {
        let parameters = try F.parameters(F.mixtral, lora: false)
        do {
            _ = try F.resolve("moe-expert", ["dense": "per-layer"], parameters)
            Issue.record("a bad sub-strategy was accepted")
        } catch let error as GroupingError {
            guard case .invalidOption(let strategy, let option, let value, let expected) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(strategy == "moe-expert" && option == "dense" && value == "\"per-layer\"")
            for name in MixtureOfExpertsGrouping.denseStrategies { #expect(expected.contains(name)) }
            #expect(error.description.contains("per-layer"))
        }
        #expect(throws: GroupingError.unknownOption(strategy: "moe-expert", option: "experts",
                                                   allowed: ["dense", "router", "allocation", "thresholds"])) {
            try F.resolve("moe-expert", ["experts": "all"], parameters)
        }
        #expect(throws: GroupingError.noExperts(strategy: "moe-expert")) {
            try F.resolve("moe-expert", try F.parameters(F.llama, lora: false))
        }
        #expect(GroupingError.noExperts(strategy: "moe-expert").description.contains("pick another strategy"))
    }
}
