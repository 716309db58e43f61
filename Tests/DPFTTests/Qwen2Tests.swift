import Foundation
import Testing
@testable import DPFT

/// Qwen2 (Qwen2ForCausalLM: the Llama decoder with q/k/v biases), added as one family file.
/// Fixtures from tools/make_qwen2_fixtures.py: tiny random models (tied and untied), forward and
/// backward references (full and PEFT LoRA) and torch.func per-example gradients. The checks are
/// the other families' (ReferenceModelTests, HuggingFaceTests, PerExampleReferenceTests) with the
/// same bounds, plus clipped sums for the layer-wise and per-block groupings.
@Suite struct Qwen2Tests {
    static let cases = ["qwen2-full", "qwen2-lora", "qwen2-tied-full"]
    static let models = ["qwen2-tiny", "qwen2-tiny-tied"]

    @Test(arguments: cases)
    func forwardAndBackwardMatchTransformers(name: String) throws {
        try ReferenceModelTests().forwardAndBackwardMatchPyTorch(name: name)
    }

    @Test(arguments: models)
    func importThenExportIsBitIdentical(model: String) throws {
        try HuggingFaceTests().importThenExportIsBitIdentical(model: model)
    }

    @Test(arguments: cases)
    func bookKeepingMatchesTorchFunc(name: String) throws {
        try PerExampleReferenceTests().matchesTorchFunc(name: name)
        try PerExampleReferenceTests().everyBuiltInStrategyMatchesTorchFuncNorms(name: name)
    }

    /// The built-in layer-wise and per-block strategies form the fixture's groups (made from the
    /// tensor names in Python), and book-keeping gives its per-example norms, abadi clip factors
    /// and clipped sums with the fixture's per-group thresholds.
    @Test(arguments: cases)
    func groupedClippedSumsMatchTorchFunc(name: String) throws {
        let reference = try ReferenceModelTests.Reference(name)
        let fixture = try PerExampleReferenceTests.Fixture(name)
        let batch = reference.batch
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: batch.batchSize,
                                    maxSequenceLength: batch.sequenceLength)
        for setup in ["layer-wise", "per-block"] {
            let groups = try Self.decode([[String]].self, fixture.file.attribute("groups", on: "/clipped/\(setup)"))
            let thresholds = try fixture.file.readTensor(at: "/clipped/\(setup)/thresholds").values
            let resolved = try GroupingRegistry.builtIn.resolve(strategy: setup, options: [:],
                                                               parameters: model.trainableParameterInfos, threshold: 1)
            try #require(Set(resolved.groups.map { Set($0.parameters) }) == Set(groups.map(Set.init)), "\(name)/\(setup) groups")
            // the strategy's groups in the fixture's order, with its thresholds
            let grouping = try Grouping(strategy: setup, groups: groups.enumerated().map { k, members in
                let group = resolved.groups.first { Set($0.parameters) == Set(members) }!
                return ParameterGroup(name: group.name, threshold: Double(thresholds[k]), parameters: group.parameters)
            }, parameters: model.trainableNames)
            try PerExampleReferenceTests().check(name, setup: setup, grouping: grouping, clipping: .abadi, model: model,
                                                 batch: batch, fixture: fixture)
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ attribute: HDF5AttributeValue?) throws -> T {
        let text = try #require(attribute?.stringValue)
        return try JSONDecoder().decode(type, from: Data(text.utf8))
    }

    /// q, k and v carry biases, o_proj and the MLP do not; the family's roles, LoRA targets and
    /// q|k|v column offsets follow from its declaration.
    @Test func declarationHasQueryKeyValueBiases() throws {
        let config = try ModelConfig(contentsOf: Fixtures.url("hf/qwen2-tiny/config.json"))
        #expect(config.modelType == .qwen2)
        #expect(config.headDimension == 4 && config.keyValueHeadCount == 2 && config.ropeTheta == 10000)
        let names = Set(config.parameterSpecs.map(\.name))
        for projection in ["q_proj", "k_proj", "v_proj"] {
            #expect(names.contains("model.layers.1.self_attn.\(projection).bias"))
        }
        #expect(!names.contains("model.layers.1.self_attn.o_proj.bias"))
        #expect(!names.contains { $0.hasPrefix("model.layers.0.mlp.") && $0.hasSuffix(".bias") })
        #expect(config.declaration.blocks[0].queryKeyValueColumns == [0, 16, 24])
        #expect(config.adaptableModuleNames == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        let roles = Dictionary(uniqueKeysWithValues: config.parameterInfos().map { ($0.name, $0.role) })
        #expect(roles["model.layers.0.self_attn.k_proj.bias"] == .attention)
        #expect(roles["model.layers.0.mlp.up_proj.weight"] == .mlp)
        #expect(roles["lm_head.weight"] == .head)
        #expect(roles["model.norm.weight"] == .norm)
    }

    /// HF defaults for absent keys; sliding-window attention is refused by name.
    @Test func configDefaultsAndSlidingWindow() throws {
        let defaults = try ModelConfig(json: Data(#"{"model_type": "qwen2"}"#.utf8), source: "qwen2.json")
        #expect(defaults.vocabularySize == 151936 && defaults.intermediateSize == 22016)
        #expect(defaults.keyValueHeadCount == 32 && defaults.maxPositions == 32768 && !defaults.tiedEmbeddings)
        let error = #expect(throws: ConfigError.self) {
            try ModelConfig(json: Data(#"{"model_type": "qwen2", "use_sliding_window": true}"#.utf8), source: "qwen2.json")
        }
        #expect(error?.description.contains("`use_sliding_window`") == true)
        #expect(error?.description.contains("qwen2.json") == true)
    }

    /// What `dpft init` does with a Qwen2 config: a checkpoint with zero q/k/v biases that a
    /// model can be built from and that reads back.
    @Test func initializedCheckpointRoundTrips() throws {
        let config = try ModelConfig(contentsOf: Fixtures.url("hf/qwen2-tiny-tied/config.json"))
        let checkpoint = Checkpoint.initialized(config: config, seed: 5)
        #expect(checkpoint.tensors["model.layers.0.self_attn.v_proj.bias"]?.values.allSatisfy { $0 == 0 } == true)
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("qwen2.h5")
        try checkpoint.write(to: url)
        let reread = try Checkpoint.read(from: url)
        #expect(reread.config == config)
        let model = try Transformer(checkpoint: reread, maxBatchSize: 1, maxSequenceLength: 4)
        let loss = try model.forward(TokenBatch(examples: [(ids: [1, 5, 9, 3], labels: [1, 5, 9, 3])], sequenceLength: 4))
        #expect(loss.isFinite)
    }
}
