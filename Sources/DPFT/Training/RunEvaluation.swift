import Foundation

/// Loss on the eval split and, when its records have reference answers, greedy exact-match accuracy.
public struct RunEvaluation: Sendable, Codable {
    public var loss: Double
    public var perplexity: Double
    public var tokens: Int
    public var accuracy: Double?
    public var generated: Int
}

extension RunEvaluation {
    /// The log line: loss, perplexity and, when generated, exact match.
    var line: String {
        var text = String(format: "loss %.4f, perplexity %.2f", loss, perplexity)
        if let accuracy { text += String(format: ", exact match %.1f%% (%d generated)", accuracy * 100, generated) }
        return text
    }

    /// The `"eval"` object of a metrics.jsonl line.
    var dictionary: [String: Any] {
        var object: [String: Any] = ["loss": loss, "perplexity": perplexity, "tokens": tokens]
        if let accuracy { object["accuracy"] = accuracy; object["generated"] = generated }
        return object
    }
}

/// Evaluates the model during a run on the recipe's eval split: loss over every example, then
/// greedy generation on up to `generateExamples` records that have reference answers.
struct RunEvaluator {
    let data: TrainingData
    let encoder: ExampleEncoder
    let physicalBatchSize: Int
    let generateExamples: Int
    let maxNewTokens: Int

    func evaluate(_ model: Transformer) throws -> RunEvaluation {
        let result = try Evaluation.evaluate(model, examples: data.examples, batchSize: physicalBatchSize)
        let (correct, generated) = try exactMatches(model)
        return RunEvaluation(loss: result.loss, perplexity: result.perplexity, tokens: result.tokens,
                             accuracy: generated > 0 ? Double(correct) / Double(generated) : nil, generated: generated)
    }

    /// Greedy answers that equal the reference (after `normalizeAnswer`), of those generated.
    private func exactMatches(_ model: Transformer) throws -> (correct: Int, generated: Int) {
        var correct = 0, generated = 0
        guard generateExamples > 0 else { return (0, 0) }
        let generator = try Generator(model: model, maxLength: model.maxSequenceLength)
        let eos = encoder.tokenizer.eosId
        for record in data.records where generated < generateExamples {
            let (prompt, reference) = try encoder.promptForGeneration(record)
            guard let reference, prompt.count < model.maxSequenceLength else { continue }
            let tokens = try generator.generate(prompt: prompt, options: GenerationOptions(
                maxNewTokens: min(maxNewTokens, model.maxSequenceLength - prompt.count),
                stopToken: eos >= 0 ? eos : nil))
            let text = try encoder.tokenizer.decode(tokens.filter { $0 != eos })
            if ExampleEncoder.normalizeAnswer(text) == ExampleEncoder.normalizeAnswer(reference) { correct += 1 }
            generated += 1
        }
        return (correct, generated)
    }
}
