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

/// Evaluation of a model on tokenized examples.
public enum Evaluation {
    /// Mean token cross-entropy over every label token of every example.
    public struct Result: Sendable, Codable, Equatable {
        public var loss: Double
        public var perplexity: Double
        public var tokens: Int
        public var examples: Int
    }

    /// Runs the model over `examples` in batches (no gradients); loss = Σ token CE / tokens.
    public static func evaluate(_ model: Transformer, examples: [TokenizedExample], batchSize: Int,
                                progress: ((Int) -> Void)? = nil) throws -> Result {
        var totalLoss = 0.0, totalTokens = 0
        var start = 0
        while start < examples.count {
            let chunk = examples[start..<min(start + batchSize, examples.count)]
            let batch = TokenBatch(examples: chunk.map { ($0.ids, $0.labels) })
            try model.forward(batch)
            for b in 0..<batch.batchSize {
                totalLoss += Double(model.perExampleLosses[b]) * Double(model.perExampleTokenCounts[b])
                totalTokens += model.perExampleTokenCounts[b]
            }
            start += chunk.count
            progress?(start)
        }
        let loss = totalTokens > 0 ? totalLoss / Double(totalTokens) : 0
        return Result(loss: loss, perplexity: exp(loss), tokens: totalTokens, examples: examples.count)
    }

    /// Evaluates a checkpoint on a JSON Lines file of any record shape, as `dpft eval` does:
    /// examples longer than the model's positions are truncated (their count is returned),
    /// empty ones skipped.
    public static func evaluate(_ checkpoint: Checkpoint, dataFile: URL, encoder: ExampleEncoder?,
                                batchSize: Int) throws -> (result: Result, truncated: Int) {
        var examples: [TokenizedExample] = []
        var truncated = 0
        for (line, record) in try JSONLReader.read(dataFile) {
            var example = try ExampleEncoding.encode(record, encoder: encoder, path: dataFile.path, line: line)
            if example.truncate(to: checkpoint.config.maxPositions) { truncated += 1 }
            if !example.ids.isEmpty { examples.append(example) }
        }
        guard !examples.isEmpty else { throw DataError.noExamples(path: dataFile.path) }
        let model = try Transformer(checkpoint: checkpoint, trainable: TrainableSelection.none,
                                    maxBatchSize: min(batchSize, examples.count),
                                    maxSequenceLength: examples.map(\.ids.count).max()!)
        return (try evaluate(model, examples: examples, batchSize: batchSize), truncated)
    }
}
