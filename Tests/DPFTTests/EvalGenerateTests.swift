import Foundation
import Testing
@testable import DPFT

@Suite struct EvalGenerateTests {
    struct Expected: Decodable {
        struct File: Decodable {
            var file: String
            var model_dir: String
            var loss: Double
            var tokens: Int
            var examples: Int
            var token_ids: [[Int]]?
        }
        var files: [File]
    }

    /// `dpft eval`'s code path on an imported HF model equals transformers' mean token CE
    /// (fixture from tools/make_forward_backward_fixtures.py), relative ≤ 1e-4.
    @Test func evalMatchesTransformersLoss() throws {
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Fixtures.url("eval/expected.json")))
        #expect(expected.files.count == 2)
        for file in expected.files {
            let checkpoint = try HuggingFace.importModel(from: Fixtures.url(file.model_dir))
            let tokenizer = try checkpoint.tokenizerModel.map { try Tokenizer(modelBytes: $0) }
            for batchSize in [1, 4] {
                let (result, truncated) = try Evaluation.evaluate(checkpoint, dataFile: Fixtures.url("eval/\(file.file)"),
                                                                  encoder: try ExampleEncoding.plainEncoder(tokenizer), batchSize: batchSize)
                #expect(truncated == 0)
                #expect(result.tokens == file.tokens, "\(file.file)")
                #expect(result.examples == file.examples, "\(file.file)")
                #expect(abs(result.loss - file.loss) / file.loss <= 1e-4, "\(file.file): \(result.loss) vs \(file.loss)")
                #expect(abs(result.perplexity - exp(file.loss)) / exp(file.loss) <= 1e-3)
            }
            if let ids = file.token_ids, let tokenizer {
                let lines = try JSONLReader.read(Fixtures.url("eval/\(file.file)"))
                for ((_, record), expectedIds) in zip(lines, ids) {
                    guard case .text(let text) = record else { Issue.record("expected text lines"); continue }
                    #expect(try tokenizer.encode(text) == expectedIds)
                }
            }
        }
    }

    @Test func evalErrorsNameTheLine() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let checkpoint = try HuggingFace.importModel(from: Fixtures.url("hf/gpt2-tiny"))
        let data = directory.appendingPathComponent("data.jsonl")
        try Data("{\"input_ids\": [1, 2, 3]}\n\n{\"input_ids\": [1, \"x\"]}\n".utf8).write(to: data)
        #expect(throws: DataError.malformedLine(path: data.path, line: 3, reason: "`input_ids` must hold integers only")) {
            try Evaluation.evaluate(checkpoint, dataFile: data, encoder: nil, batchSize: 2)
        }
        try Data("{\"text\": \"hello\"}\n".utf8).write(to: data)
        #expect(throws: DataError.needsTokenizer(path: data.path, line: 1)) {
            try Evaluation.evaluate(checkpoint, dataFile: data, encoder: nil, batchSize: 2)
        }
        try Data("{\"input_ids\": [1, 999]}\n".utf8).write(to: data)
        #expect(throws: DataError.tokenOutOfVocabulary(path: data.path, line: 1, id: 999, vocabularySize: 301, pretokenized: true)) {
            try Evaluation.evaluate(checkpoint, dataFile: data, encoder: nil, batchSize: 2)
        }
        try Data("\n".utf8).write(to: data)
        #expect(throws: DataError.noExamples(path: data.path)) {
            try Evaluation.evaluate(checkpoint, dataFile: data, encoder: nil, batchSize: 2)
        }
    }

    /// With no scored token there is no mean loss: evaluation used to report loss 0 and
    /// perplexity 1; it is an error that says no token was scored and why.
    @Test func evaluationWithNoScoredTokenIsAnError() throws {
        let checkpoint = try HuggingFace.importModel(from: Fixtures.url("hf/gpt2-tiny"))
        let unscored = [TokenizedExample(ids: [1, 2, 3], labels: [5, -100, -100]), TokenizedExample(ids: [4], labels: nil)]
        let error = #expect(throws: EvaluationError.noScoredTokens(examples: 2)) {
            try Evaluation.evaluate(checkpoint, examples: unscored, batchSize: 2)
        }
        #expect(error?.description.hasPrefix("no token was scored: none of the 2 examples") == true)
        #expect(throws: EvaluationError.noScoredTokens(examples: 0)) {
            try Evaluation.evaluate(checkpoint, examples: [], batchSize: 2)
        }
        let scored = try Evaluation.evaluate(checkpoint, examples: unscored + [TokenizedExample(ids: [1, 2], labels: nil)], batchSize: 2)
        #expect(scored.tokens == 1 && scored.examples == 3 && scored.loss > 0)
    }

    /// The KV-cached decoder must reproduce full-prefix decoding token for token (Mixtral too:
    /// its experts then run on one routed row at a time).
    @Test(arguments: ["gpt2-lora", "llama-gqa-lora", "llama-tied-full", "mixtral-lora"])
    func kvCacheGivesIdenticalTokens(reference: String) throws {
        let checkpoint = try ReferenceModelTests.Reference(reference).checkpoint
        let model = try Transformer(checkpoint: checkpoint, trainable: TrainableSelection.none,
                                    maxBatchSize: 1, maxSequenceLength: 40)
        let generator = try Generator(model: model, maxLength: 40)
        let prompt = [5, 17, 42, 8, 100]
        for options in [GenerationOptions(maxNewTokens: 30),
                        GenerationOptions(temperature: 0.8, topP: 0.9, seed: 11, maxNewTokens: 30)] {
            let cached = try generator.generate(prompt: prompt, options: options, useCache: true)
            let uncached = try generator.generate(prompt: prompt, options: options, useCache: false)
            #expect(cached.count == 30)
            #expect(cached == uncached, "\(reference) T=\(options.temperature): \(cached) vs \(uncached)")
        }
    }
}
