import Foundation
import Testing
@testable import DPFT

@Suite struct CheckpointTests {
    static let tinyGPT2 = """
        {"model_type": "gpt2", "vocab_size": 50, "n_positions": 16, "n_embd": 8, "n_layer": 2, "n_head": 2}
        """
    static let tinyLlama = """
        {"model_type": "llama", "vocab_size": 40, "hidden_size": 8, "intermediate_size": 12,
         "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 32}
        """
    static let tinyMixtral = """
        {"model_type": "mixtral", "vocab_size": 40, "hidden_size": 8, "intermediate_size": 12,
         "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
         "num_local_experts": 3, "num_experts_per_tok": 2}
        """

    static func config(_ json: String) throws -> ModelConfig {
        try ModelConfig(json: Data(json.utf8), source: "test-config.json")
    }

    @Test(arguments: [tinyGPT2, tinyLlama, tinyMixtral])
    func roundTripKeepsEveryTensorBitExact(json: String) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var checkpoint = Checkpoint.initialized(config: try Self.config(json), seed: 7)
        checkpoint.privacyLedger = #"{"epsilon": 1.5, "delta": 1e-05}"#
        checkpoint.tokenizerModel = [0, 1, 2, 255]
        let lora = LoRAConfig(rank: 2, alpha: 4, targets: [checkpoint.config.adaptableModuleNames[0]])
        try checkpoint.addAdapters(lora, seed: 5)
        checkpoint.optimizerState["exp_avg/model.lora_A.weight"] = Tensor(shape: [2, 3], values: [6, 5, 4, 3, 2, 1])
        checkpoint.optimizerState["step_scalar"] = Tensor(shape: [], values: [3])
        checkpoint.trainingState = #"{"step": 12}"#
        let url = directory.appendingPathComponent("model.h5")
        try checkpoint.write(to: url)
        let loaded = try Checkpoint.read(from: url)
        #expect(loaded.config == checkpoint.config)
        #expect(Set(loaded.tensors.keys) == Set(checkpoint.tensors.keys))
        for (name, tensor) in checkpoint.tensors {
            #expect(loaded.tensors[name]?.shape == tensor.shape, "\(name)")
            #expect(loaded.tensors[name]?.values.map(\.bitPattern) == tensor.values.map(\.bitPattern), "\(name)")
        }
        #expect(loaded.privacyLedger == checkpoint.privacyLedger)
        #expect(loaded.tokenizerModel == [0, 1, 2, 255])
        #expect(Set(loaded.adapters.keys) == Set(checkpoint.adapters.keys) && !loaded.adapters.isEmpty)
        for (name, tensor) in checkpoint.adapters {
            #expect(loaded.adapters[name]?.values.map(\.bitPattern) == tensor.values.map(\.bitPattern), "\(name)")
        }
        #expect(loaded.adapterConfig == lora.peftJSON)
        #expect(loaded.optimizerState["exp_avg/model.lora_A.weight"]?.values == [6, 5, 4, 3, 2, 1])
        #expect(loaded.optimizerState["step_scalar"]?.values == [3])
        #expect(loaded.trainingState == #"{"step": 12}"#)
        // Atomic write leaves nothing but the checkpoint behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.h5"])
    }

    @Test func initialisationFollowsTheRules() throws {
        let checkpoint = Checkpoint.initialized(config: try Self.config(Self.tinyGPT2), seed: 3)
        let again = Checkpoint.initialized(config: try Self.config(Self.tinyGPT2), seed: 3)
        let embedding = checkpoint.tensors["transformer.wte.weight"]!.values
        let mean = embedding.reduce(0, +) / Float(embedding.count)
        let std = (embedding.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(embedding.count)).squareRoot()
        #expect(abs(std - 0.02) < 0.003, "embedding std \(std)")
        #expect(checkpoint.tensors["transformer.h.0.ln_1.weight"]!.values.allSatisfy { $0 == 1 })
        #expect(checkpoint.tensors["transformer.h.1.mlp.c_fc.bias"]!.values.allSatisfy { $0 == 0 })
        #expect(checkpoint.tensors["transformer.h.1.mlp.c_fc.weight"]!.shape == [32, 8])
        #expect(embedding == again.tensors["transformer.wte.weight"]!.values)
        #expect(checkpoint.tensors["lm_head.weight"] == nil, "tied head is the embedding")
    }

    @Test func llamaShapesFollowGroupedQueryAttention() throws {
        let specs = Dictionary(uniqueKeysWithValues: try Self.config(Self.tinyLlama).parameterSpecs.map { ($0.name, $0.shape) })
        #expect(specs["model.layers.0.self_attn.q_proj.weight"] == [8, 8])
        #expect(specs["model.layers.0.self_attn.k_proj.weight"] == [4, 8])
        #expect(specs["model.layers.1.mlp.down_proj.weight"] == [8, 12])
        #expect(specs["lm_head.weight"] == [40, 8])
        let mixtral = Dictionary(uniqueKeysWithValues: try Self.config(Self.tinyMixtral).parameterSpecs.map { ($0.name, $0.shape) })
        #expect(mixtral["model.layers.0.block_sparse_moe.gate.weight"] == [3, 8])
        #expect(mixtral["model.layers.0.block_sparse_moe.experts.2.w2.weight"] == [8, 12])
    }

    @Test func ropeThetaIsReadFromTransformers5RopeParameters() throws {
        let nested = try Self.config(#"{"model_type": "llama", "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}}"#)
        #expect(nested.ropeTheta == 500000)
        let legacy = try Self.config(#"{"model_type": "llama", "rope_theta": 250000.0}"#)
        #expect(legacy.ropeTheta == 250000)
        #expect(try Self.config(#"{"model_type": "mixtral"}"#).ropeTheta == 1e6)
    }

    // MARK: Typed errors, each naming the file and the object

    @Test func missingFileIsNamed() throws {
        let error = #expect(throws: CheckpointError.self) { try Checkpoint.read(from: URL(fileURLWithPath: "/nonexistent/x.h5")) }
        #expect(error == .fileNotFound(path: "/nonexistent/x.h5"))
        #expect(error?.description.contains("/nonexistent/x.h5") == true)
    }

    @Test func nonHDF5FileIsRejected() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("notes.h5")
        try Data("hello, not hdf5".utf8).write(to: url)
        let error = #expect(throws: CheckpointError.self) { try Checkpoint.read(from: url) }
        #expect(error == .notHDF5(path: url.path))
    }

    @Test func foreignHDF5FileHasWrongFormat() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("other.h5")
        do {
            let file = try HDF5File.create(url.path)
            try file.setAttribute("format", .string("keras"))
        }
        let error = #expect(throws: CheckpointError.self) { try Checkpoint.read(from: url) }
        #expect(error == .wrongFormat(path: url.path, found: "keras"))
    }

    /// Writes a valid checkpoint, then rewrites one tensor through the raw HDF5 layer.
    func corrupted(_ edit: (HDF5File) throws -> Void) throws -> (URL, URL) {
        let directory = try makeTemporaryDirectory()
        let url = directory.appendingPathComponent("model.h5")
        let checkpoint = Checkpoint.initialized(config: try Self.config(Self.tinyLlama), seed: 1)
        // Rebuild the file by hand so that one tensor can be left out or mis-shaped.
        let file = try HDF5File.create(url.path)
        try file.setAttribute("format", .string("dpft"))
        try file.setAttribute("format_version", .integer(1))
        try file.setAttribute("config", .string(checkpoint.config.json))
        try file.createGroup("/tensors")
        for (name, tensor) in checkpoint.tensors where name != "model.layers.1.mlp.up_proj.weight" {
            try file.writeTensor(tensor, at: "/tensors/\(name)")
        }
        try edit(file)
        try file.flush()
        return (directory, url)
    }

    @Test func missingTensorIsNamed() throws {
        let (directory, url) = try corrupted { _ in }
        defer { try? FileManager.default.removeItem(at: directory) }
        let error = #expect(throws: CheckpointError.self) { try Checkpoint.read(from: url) }
        #expect(error == .missingTensor(path: url.path, name: "model.layers.1.mlp.up_proj.weight"))
    }

    @Test func misShapedTensorIsNamed() throws {
        let (directory, url) = try corrupted { file in
            try file.writeTensor(Tensor(zeros: [12, 7]), at: "/tensors/model.layers.1.mlp.up_proj.weight")
        }
        defer { try? FileManager.default.removeItem(at: directory) }
        let error = #expect(throws: CheckpointError.self) { try Checkpoint.read(from: url) }
        #expect(error == .shapeMismatch(path: url.path, name: "model.layers.1.mlp.up_proj.weight",
                                        expected: [12, 8], found: [12, 7]))
        #expect(error?.description.contains("model.layers.1.mlp.up_proj.weight") == true)
    }

    @Test func extraTensorIsNamed() throws {
        let (directory, url) = try corrupted { file in
            try file.writeTensor(Tensor(zeros: [12, 8]), at: "/tensors/model.layers.1.mlp.up_proj.weight")
            try file.writeTensor(Tensor(zeros: [3]), at: "/tensors/model.layers.9.extra")
        }
        defer { try? FileManager.default.removeItem(at: directory) }
        let error = #expect(throws: CheckpointError.self) { try Checkpoint.read(from: url) }
        #expect(error == .unexpectedTensor(path: url.path, name: "model.layers.9.extra"))
    }

    @Test func attributesRoundTripAsStringsNumbersAndJSON() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("attrs.h5")
        do {
            let file = try HDF5File.create(url.path)
            try file.createGroup("/state")
            try file.setAttribute("note", .string("héllo ✓"), on: "/state")
            try file.setAttribute("json", .string(#"{"a": [1, 2]}"#), on: "/state")
            try file.setAttribute("lr", .double(3e-4), on: "/state")
            try file.setAttribute("step", .integer(1234), on: "/state")
            try file.writeTensor(Tensor(shape: [], values: [2.5]), at: "/state/scalar")
        }
        let file = try HDF5File.openForReading(url.path)
        #expect(try file.attribute("note", on: "/state") == .string("héllo ✓"))
        #expect(try file.attribute("json", on: "/state") == .string(#"{"a": [1, 2]}"#))
        #expect(try file.attribute("lr", on: "/state") == .double(3e-4))
        #expect(try file.attribute("step", on: "/state") == .integer(1234))
        #expect(try file.attribute("absent", on: "/state") == nil)
        #expect(try file.attributeNames(on: "/state").sorted() == ["json", "lr", "note", "step"])
        #expect(try file.readTensor(at: "/state/scalar").values == [2.5])
        #expect(try file.children(of: "/") == ["state"])
    }

    @Test(arguments: [
        (#"{"model_type": "bert"}"#, "model_type"),
        (#"{"model_type": "gpt2", "n_embd": -3}"#, "n_embd"),
        (#"{"model_type": "gpt2", "n_embd": 10, "n_head": 3}"#, "n_head"),
        (#"{"model_type": "llama", "num_attention_heads": 6, "num_key_value_heads": 4, "hidden_size": 12}"#, "num_key_value_heads"),
        (#"{"model_type": "llama", "vocab_size": "many"}"#, "vocab_size"),
        (#"{"model_type": "llama", "tie_word_embeddings": 1}"#, "tie_word_embeddings"),
        (#"{"model_type": "llama", "rope_scaling": {"type": "linear", "factor": 2}}"#, "rope_scaling"),
        (#"{"model_type": "mixtral", "num_local_experts": 2, "num_experts_per_tok": 3}"#, "num_experts_per_tok"),
        (#"{"n_embd": 8}"#, "model_type"),
        (#"{"model_type": "llama", "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}}"#, "rope_parameters.rope_type"),
        (#"{"model_type": "llama", "rope_parameters": {"rope_theta": -1}}"#, "rope_parameters.rope_theta"),
    ])
    func badConfigValuesNameTheKey(json: String, key: String) throws {
        let error = #expect(throws: ConfigError.self) { try Self.config(json) }
        #expect(error?.description.contains("`\(key)`") == true, "\(error.map(String.init(describing:)) ?? "no error")")
        #expect(error?.description.contains("test-config.json") == true)
    }

    /// A checkpoint's LoRA adapters are checked against their adapter_config when it is read:
    /// an adapter_config that does not decode names the file and the key (it used to print
    /// Swift's DecodingError), and a mis-shaped adapter names its shape and the one expected
    /// (it used to be reported as missing) — at load, in the model and in a merge.
    @Test func adaptersAreCheckedAgainstTheirConfig() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("lora.h5")
        var checkpoint = Checkpoint.initialized(config: try Self.config(Self.tinyLlama), seed: 1)
        try checkpoint.addAdapters(LoRAConfig(rank: 2, alpha: 4, targets: ["q_proj"]), seed: 2)
        let good = checkpoint

        for (config, key, reason) in [
            (#"{"r": "two", "lora_alpha": 4, "target_modules": ["q_proj"]}"#, "r", #"expected a number, found "two""#),
            (#"{"r": 2, "lora_alpha": 4}"#, "target_modules", "is required but missing"),
            (#"{"r": 2, "lora_alpha": 4, "target_modules": [1]}"#, "target_modules[0]", "expected a string, found 1"),
        ] {
            checkpoint.adapterConfig = config
            try checkpoint.write(to: url)
            #expect(throws: LoRAError.badAdapterConfig(source: url.path, key: key, reason: reason)) {
                try Checkpoint.read(from: url)
            }
        }

        checkpoint = good
        let name = "model.layers.1.self_attn.q_proj.lora_A.weight"
        checkpoint.adapters[name] = Tensor(zeros: [3, 8])
        try checkpoint.write(to: url)
        #expect(throws: LoRAError.adapterShapeMismatch(name: name, found: [3, 8], expected: [2, 8], source: url.path)) {
            try Checkpoint.read(from: url)
        }
        let inMemory = LoRAError.adapterShapeMismatch(name: name, found: [3, 8], expected: [2, 8], source: "the checkpoint")
        #expect(throws: inMemory) { try Transformer(checkpoint: checkpoint, maxBatchSize: 1, maxSequenceLength: 4) }
        #expect(throws: inMemory) { try checkpoint.mergeAdapters() }
        checkpoint.adapters[name] = nil
        #expect(throws: LoRAError.missingAdapter(name: name, source: "the checkpoint")) { try checkpoint.mergeAdapters() }

        try good.write(to: url)
        #expect(try Checkpoint.read(from: url).adapters.count == good.adapters.count)
    }
}
