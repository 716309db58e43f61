import Foundation
import Testing
@testable import DPFT

/// A Qwen2 model with a byte-level BPE tokenizer.json (the qwen2 fixture of
/// tools/make_bpe_fixtures.py) through the commands a user runs: import, export, a short
/// recipe on text, eval, generate and `dpft tokenizer encode --checkpoint`.
@Suite(.serialized) struct BPEModelTests {
    /// A Hugging Face folder: a tiny random Qwen2 (vocabulary large enough for the tokenizer),
    /// the fixture's tokenizer.json, a tokenizer_config.json naming EOS, and a SentencePiece
    /// tokenizer.model that import must pass over.
    struct Folder {
        let directory: URL
        var model: URL { directory.appendingPathComponent("qwen2-bpe") }
        let tokenizerJSON: Data
        let tokenizerConfig = Data(#"{"bos_token": null, "eos_token": "<|im_end|>", "model_max_length": 64}"#.utf8)

        init() throws {
            directory = try makeTemporaryDirectory()
            tokenizerJSON = try Data(contentsOf: Fixtures.url("bpe/qwen2.json"))
            let config = try ModelConfig(json: Data("""
                {"model_type": "qwen2", "vocab_size": 1216, "hidden_size": 16, "intermediate_size": 24,
                 "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                 "max_position_embeddings": 64, "tie_word_embeddings": true}
                """.utf8), source: "test")
            try HuggingFace.export(Checkpoint.initialized(config: config, seed: 3), to: model, format: .safetensors)
            try tokenizerJSON.write(to: model.appendingPathComponent("tokenizer.json"))
            try tokenizerConfig.write(to: model.appendingPathComponent("tokenizer_config.json"))
            try FileManager.default.copyItem(at: Fixtures.url("tokenizer/tok.model"),
                                             to: model.appendingPathComponent("tokenizer.model"))
        }

        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

        /// Runs dpft and returns its output, failing the test on a non-zero status.
        func dpft(_ arguments: [String]) throws -> String {
            let (status, output) = try ExamplePlugin.dpft(arguments, directory: directory)
            guard status == 0 else { throw ExamplePlugin.CommandFailure(command: arguments.joined(separator: " "), output: output) }
            return output
        }
    }

    @Test func importPrefersTokenizerJSONAndExportWritesItBackByteIdentical() throws {
        let folder = try Folder()
        defer { try? FileManager.default.removeItem(at: folder.directory) }
        let imported = try folder.dpft(["import", folder.model.path, "--output", folder.path("base.h5")])
        #expect(imported.contains("tokenizer from tokenizer.json + tokenizer_config.json (tokenizer.model also present, not used)"),
                "\(imported)")
        let checkpoint = try Checkpoint.read(from: URL(fileURLWithPath: folder.path("base.h5")))
        let tokenizer = try #require(try checkpoint.storedTokenizer(path: "base.h5"))
        #expect(tokenizer.kind == .bytePairJSON)
        #expect(tokenizer.eosId == (try tokenizer.encode("<|im_end|>")).first, "EOS from tokenizer_config.json")

        _ = try folder.dpft(["export", folder.path("base.h5"), "--output", folder.path("exported")])
        let exported = URL(fileURLWithPath: folder.path("exported"))
        #expect(try Data(contentsOf: exported.appendingPathComponent("tokenizer.json")) == folder.tokenizerJSON)
        #expect(try Data(contentsOf: exported.appendingPathComponent("tokenizer_config.json")) == folder.tokenizerConfig)
        #expect(!FileManager.default.fileExists(atPath: exported.appendingPathComponent("tokenizer.model").path))
    }

    /// EOS: tokenizer_config.json's, else config.json's `eos_token_id` (first of a list), else
    /// the conventional name (here `<|endoftext|>`).
    @Test func storedTokenizerTakesEOSFromTheModelConfigWhenTheTokenizerConfigNamesNone() throws {
        func checkpoint(eos: String, tokenizerConfig: String?) throws -> Checkpoint {
            let config = try ModelConfig(json: Data("""
                {"model_type": "qwen2", "vocab_size": 1216, "hidden_size": 16, "intermediate_size": 24,
                 "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                 "max_position_embeddings": 64, "tie_word_embeddings": true\(eos)}
                """.utf8), source: "test")
            var checkpoint = Checkpoint.initialized(config: config, seed: 1)
            checkpoint.store(try Tokenizer(modelBytes: Array(try Data(contentsOf: Fixtures.url("bpe/qwen2.json"))),
                                           configBytes: tokenizerConfig.map { Array($0.utf8) }))
            return checkpoint
        }
        let reference = try Tokenizer(contentsOf: Fixtures.url("bpe/qwen2.json"))
        let (endOfText, imStart, imEnd) = (try reference.encode("<|endoftext|>")[0], try reference.encode("<|im_start|>")[0],
                                           try reference.encode("<|im_end|>")[0])
        #expect(try checkpoint(eos: "", tokenizerConfig: nil).storedTokenizer(path: "a")?.eosId == endOfText)
        #expect(try checkpoint(eos: ", \"eos_token_id\": \(imStart)", tokenizerConfig: nil).storedTokenizer(path: "b")?.eosId == imStart)
        #expect(try checkpoint(eos: ", \"eos_token_id\": [\(imStart), \(imEnd)]", tokenizerConfig: nil).storedTokenizer(path: "c")?.eosId == imStart)
        #expect(try checkpoint(eos: ", \"eos_token_id\": \(imStart)", tokenizerConfig: #"{"eos_token": "<|im_end|>"}"#)
            .storedTokenizer(path: "d")?.eosId == imEnd)
    }

    @Test func aQwen2WithATokenizerJSONTrainsEvaluatesAndGenerates() throws {
        let folder = try Folder()
        defer { try? FileManager.default.removeItem(at: folder.directory) }
        _ = try folder.dpft(["import", folder.model.path, "--output", folder.path("base.h5")])
        let texts = try String(contentsOf: Fixtures.url("bpe/texts.jsonl"), encoding: .utf8)
            .split(separator: "\n").prefix(60).map { #"{"text": \#($0)}"# }
        try Data(texts.prefix(48).joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: folder.path("train.jsonl")))
        try Data(texts.suffix(12).joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: folder.path("eval.jsonl")))
        let recipe = """
            {"name": "qwen2-bpe", "model": {"checkpoint": "base.h5"}, "adapter": {"type": "none"},
             "data": {"train": "train.jsonl", "eval": "eval.jsonl", "max_length": 64},
             "privacy": {"noise_multiplier": 1.0, "grouping": "all-layer"},
             "training": {"steps": 2, "batch_size": 8, "physical_batch_size": 4,
                          "optimizer": {"name": "adamw", "learning_rate": 0.01}},
             "output": {"directory": "\(folder.path("run"))"}}
            """
        try Data(recipe.utf8).write(to: URL(fileURLWithPath: folder.path("recipe.json")))
        let trained = try folder.dpft(["recipe", folder.path("recipe.json")])
        #expect(trained.contains("final.h5"), "\(trained.suffix(600))")
        let final = folder.path("run/final.h5")

        let evaluated = try folder.dpft(["eval", final, "--data", folder.path("eval.jsonl"), "--json"])
        #expect(evaluated.contains("\"loss\""), "\(evaluated)")

        // The checkpoint's tokenizer is the imported one: ids as the tokenizers package gives them.
        let line = "It's 3:45pm and I've 12 apples; you're 'late'!"
        let expected = try #require(try zip(BPEFixtureText.lines(), BPEFixtureText.ids("qwen2")).first { $0.0 == line }?.1)
        let encoded = try folder.dpft(["tokenizer", "encode", "--checkpoint", final, line])
        #expect(encoded.trimmingCharacters(in: .whitespacesAndNewlines) == expected.map(String.init).joined(separator: " "))
        #expect(try folder.dpft(["tokenizer", "decode", "--checkpoint", final] + expected.map(String.init)) == line + "\n")

        let bench = try folder.dpft(["tokenizer", "bench", "--checkpoint", final, "--text", folder.path("eval.jsonl"), "--repeats", "1"])
        let stored = try #require(try Checkpoint.read(from: URL(fileURLWithPath: final)).storedTokenizer(path: final))
        let evalTokens = try BPEFixtureText.lines().prefix(60).suffix(12).reduce(0) { $0 + (try stored.encode($1)).count }
        #expect(bench.contains(" \(evalTokens) tokens; encode ") && bench.contains("MB/s"), "\(bench)")

        let generated = try folder.dpft(["generate", final, "--prompt", "Hello", "--max-new-tokens", "4"])
        #expect(!generated.isEmpty && !generated.contains("rror"), "\(generated)")
    }
}

/// The fixture text and ids for tests outside BPETokenizerTests.
enum BPEFixtureText {
    static func lines() throws -> [String] {
        try String(contentsOf: Fixtures.url("bpe/texts.jsonl"), encoding: .utf8).split(separator: "\n").map { line in
            guard case .string(let text) = try JSONParser.parse(String(line), source: "texts.jsonl") else { return "" }
            return text
        }
    }

    static func ids(_ name: String) throws -> [[Int]] {
        try String(contentsOf: Fixtures.url("bpe/\(name).ids"), encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: false).dropLast()
            .map { $0.split(separator: " ").map { Int($0)! } }
    }
}
