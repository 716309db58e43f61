import Foundation

/// A tokenized example: ids and labels aligned with them (nil = train on every token).
public struct TokenizedExample: Sendable, Equatable {
    public var ids: [Int]
    public var labels: [Int]?

    public init(ids: [Int], labels: [Int]?) {
        self.ids = ids
        self.labels = labels
    }

    /// Keeps the first `length` tokens; returns whether anything was cut.
    @discardableResult
    public mutating func truncate(to length: Int) -> Bool {
        guard ids.count > length else { return false }
        ids.removeLast(ids.count - length)
        if let labels { self.labels = Array(labels.prefix(length)) }
        return true
    }
}

/// An evaluation that cannot give a loss.
public enum EvaluationError: Error, CustomStringConvertible, Equatable {
    /// No token was scored, so there is no mean loss (it used to print loss 0, perplexity 1).
    case noScoredTokens(examples: Int)

    public var description: String {
        switch self {
        case .noScoredTokens(0):
            return "no token was scored: there are no examples to evaluate."
        case .noScoredTokens(let examples):
            return "no token was scored: none of the \(examples) examples has a label other than −100 after its first token "
                + "(each token is scored against the next), e.g. every assistant turn was cut off; there is no loss to report."
        }
    }
}

/// Evaluation of a model on tokenized examples.
public enum Evaluation {
    /// Mean token cross-entropy over every label token of every example.
    public struct Result: Sendable, Codable, Equatable {
        public var loss: Double
        public var perplexity: Double
        public var tokens: Int
        public var examples: Int
    }

    /// Runs the model over `examples` in micro-batches (no gradients); loss = Σ token CE / tokens.
    /// Throws `EvaluationError.noScoredTokens` when no token is scored.
    public static func evaluate(_ model: Transformer, examples: [TokenizedExample], batchSize: Int,
                                progress: ((Int) -> Void)? = nil) throws -> Result {
        var totalLoss = 0.0, totalTokens = 0
        for micro in MicroBatches(examples, size: batchSize) {
            try model.forward(micro.batch)
            for b in 0..<micro.batch.batchSize {
                totalLoss += Double(model.perExampleLosses[b]) * Double(model.perExampleTokenCounts[b])
                totalTokens += model.perExampleTokenCounts[b]
            }
            progress?(micro.done)
        }
        guard totalTokens > 0 else { throw EvaluationError.noScoredTokens(examples: examples.count) }
        let loss = totalLoss / Double(totalTokens)
        return Result(loss: loss, perplexity: exp(loss), tokens: totalTokens, examples: examples.count)
    }

    /// Evaluates a checkpoint on a JSON Lines file of any record shape, as `dpft eval` does
    /// without a recipe: read by `ExampleLoader` (every shape, a bad line stops, examples cut to
    /// the model's positions and counted, examples with no scored token dropped). Returns the
    /// number of truncated examples with the result. Ids outside the model's vocabulary are an
    /// error naming the line.
    public static func evaluate(_ checkpoint: Checkpoint, dataFile: URL, encoder: ExampleEncoder?,
                                batchSize: Int) throws -> (result: Result, truncated: Int) {
        let config = checkpoint.config
        let loader = ExampleLoader(encoder: encoder, maxLength: config.maxPositions, vocabularySize: config.vocabularySize)
        let data = try loader.load(path: dataFile.path)
        return (try evaluate(checkpoint, examples: data.examples, batchSize: batchSize), data.truncated)
    }

    /// Evaluates a checkpoint (frozen, sized for `examples`) on examples already loaded.
    public static func evaluate(_ checkpoint: Checkpoint, examples: [TokenizedExample], batchSize: Int) throws -> Result {
        let model = try Transformer(checkpoint: checkpoint, trainable: TrainableSelection.none,
                                    maxBatchSize: max(1, min(batchSize, examples.count)),
                                    maxSequenceLength: examples.map(\.ids.count).max() ?? 1)
        return try evaluate(model, examples: examples, batchSize: batchSize)
    }
}
