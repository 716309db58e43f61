import Foundation
import Testing
@testable import DPFT

/// Import → checkpoint file → export must give back the HF tensors bit for bit
/// (fixtures from tools/make_model_fixtures.py, made with transformers from configs).
@Suite struct HuggingFaceTests {
    static let models = ["gpt2-tiny", "llama-tiny-gqa", "llama-tiny-tied"]

    /// Every tensor of every safetensors file in an HF folder, by name.
    static func hfTensors(_ directory: URL) throws -> [String: Tensor] {
        var result: [String: Tensor] = [:]
        for file in try HuggingFace.weightFiles(in: directory) {
            for name in file.tensorNames { result[name] = try file.tensor(name) }
        }
        return result
    }

    @Test(arguments: models)
    func importThenExportIsBitIdentical(model: String) throws {
        let source = Fixtures.url("hf/\(model)")
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let checkpointURL = directory.appendingPathComponent("model.h5")
        try HuggingFace.importModel(from: source).write(to: checkpointURL)
        let exported = directory.appendingPathComponent("export")
        try HuggingFace.export(try Checkpoint.read(from: checkpointURL), to: exported, format: .safetensors)

        let original = try Self.hfTensors(source)
        let roundTripped = try Self.hfTensors(exported)
        #expect(Set(original.keys) == Set(roundTripped.keys))
        for (name, tensor) in original {
            let other = try #require(roundTripped[name], "\(name) missing after export")
            #expect(other.shape == tensor.shape, "\(name)")
            #expect(other.values.map(\.bitPattern) == tensor.values.map(\.bitPattern), "\(name) differs")
        }
        let config = try ModelConfig(contentsOf: exported.appendingPathComponent("config.json"))
        #expect(config == (try ModelConfig(contentsOf: source.appendingPathComponent("config.json"))))
        let tokenizerExpected = FileManager.default.fileExists(atPath: source.appendingPathComponent("tokenizer.model").path)
        #expect(FileManager.default.contents(atPath: exported.appendingPathComponent("tokenizer.model").path)
                == (tokenizerExpected ? FileManager.default.contents(atPath: source.appendingPathComponent("tokenizer.model").path) : nil))
    }

    @Test func gpt2Conv1DWeightsAreTransposedOnImport() throws {
        let source = Fixtures.url("hf/gpt2-tiny")
        let checkpoint = try HuggingFace.importModel(from: source)
        let hf = try SafeTensorsFile.read(url: source.appendingPathComponent("model.safetensors"))
        let stored = try hf.tensor("transformer.h.0.attn.c_attn.weight")  // [in, out] = [32, 96]
        let imported = try #require(checkpoint.tensors["transformer.h.0.attn.c_attn.weight"])
        #expect(stored.shape == [32, 96])
        #expect(imported.shape == [96, 32])
        #expect(imported.element([5, 3]) == stored.element([3, 5]))
    }

    @Test func shardedImportReadsTheTokenizer() throws {
        let checkpoint = try HuggingFace.importModel(from: Fixtures.url("hf/llama-tiny-gqa"))
        let bytes = try #require(checkpoint.tokenizerModel)
        #expect(try Tokenizer(modelBytes: bytes).vocabularySize == 301)
        #expect(checkpoint.tensors["lm_head.weight"]?.shape == [301, 32])
    }

    /// Copies a fixture folder so a test can damage it.
    func copyOfFixture(_ model: String) throws -> URL {
        let directory = try makeTemporaryDirectory()
        let target = directory.appendingPathComponent(model)
        try FileManager.default.copyItem(at: Fixtures.url("hf/\(model)"), to: target)
        return target
    }

    @Test func missingShardIsNamed() throws {
        let folder = try copyOfFixture("llama-tiny-gqa")
        defer { try? FileManager.default.removeItem(at: folder.deletingLastPathComponent()) }
        try FileManager.default.removeItem(at: folder.appendingPathComponent("model-00003-of-00004.safetensors"))
        let error = #expect(throws: HuggingFaceError.self) { try HuggingFace.importModel(from: folder) }
        #expect(error?.description.contains("model-00003-of-00004.safetensors") == true)
    }

    @Test func missingWeightsAndConfigAreExplained() throws {
        let folder = try copyOfFixture("gpt2-tiny")
        defer { try? FileManager.default.removeItem(at: folder.deletingLastPathComponent()) }
        try FileManager.default.removeItem(at: folder.appendingPathComponent("model.safetensors"))
        #expect(throws: HuggingFaceError.noWeights(directory: folder.path)) { try HuggingFace.importModel(from: folder) }
        try FileManager.default.removeItem(at: folder.appendingPathComponent("config.json"))
        #expect(throws: HuggingFaceError.missingConfig(directory: folder.path)) { try HuggingFace.importModel(from: folder) }
    }

    @Test func configDisagreeingWithWeightsNamesTheTensor() throws {
        let folder = try copyOfFixture("llama-tiny-tied")
        defer { try? FileManager.default.removeItem(at: folder.deletingLastPathComponent()) }
        let configURL = folder.appendingPathComponent("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        config["intermediate_size"] = 48
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let error = #expect(throws: CheckpointError.self) { try HuggingFace.importModel(from: folder) }
        guard case .shapeMismatch(_, let name, let expected, _)? = error else {
            Issue.record("expected a shape mismatch, got \(String(describing: error))")
            return
        }
        #expect(name == "model.layers.0.mlp.gate_proj.weight")
        #expect(expected == [48, 32])
    }

    @Test func exportHDF5WritesAReadableCheckpoint() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let checkpoint = try HuggingFace.importModel(from: Fixtures.url("hf/gpt2-tiny"))
        try HuggingFace.export(checkpoint, to: directory, format: .hdf5)
        let reread = try Checkpoint.read(from: directory.appendingPathComponent("model.h5"))
        #expect(reread.tensors["transformer.wpe.weight"]?.values == checkpoint.tensors["transformer.wpe.weight"]?.values)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("config.json").path))
    }
}

extension HuggingFaceTests {
    /// transformers 5 rejects an int where MixtralConfig wants a float (`router_jitter_noise`):
    /// whole-number floats keep their fraction in the exported config.json (the JSON layer keeps
    /// every number literal as the file wrote it, and writes a filled-in default Double as a float).
    @Test func exportedConfigKeepsFloatLiterals() throws {
        let config = try ModelConfig(contentsOf: Fixtures.url("hf/mixtral-tiny/config.json"))
        #expect(config.json.contains("\"router_jitter_noise\": 0.0,"))
        #expect(config.json.contains("\"rope_theta\": 10000.0,"))
        #expect(config.json.contains("\"num_local_experts\": 4,"))
        let reread = try ModelConfig(json: Data(config.json.utf8), source: "exported")
        #expect(reread == config)
        let defaults = try ModelConfig(json: Data(#"{"model_type": "llama", "attention_dropout": 0.0}"#.utf8), source: "test")
        #expect(defaults.json.contains("\"attention_dropout\": 0.0,") && defaults.json.contains("\"rope_theta\": 10000.0"))
    }
}
