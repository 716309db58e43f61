import Foundation

/// Scores for the audit: how much each canary's answer lost in loss from the base model to the
/// tuned one (black-box: only the two models' outputs on the canary are used), and exposure.
enum CanaryScoring {
    /// Each example's mean per-token loss over its scored tokens, and their count, under
    /// `checkpoint` (frozen), in order.
    static func losses(_ checkpoint: Checkpoint, examples: [TokenizedExample],
                       batchSize: Int = 32) throws -> [(mean: Double, tokens: Int)] {
        let model = try Transformer(checkpoint: checkpoint, trainable: TrainableSelection.none,
                                    maxBatchSize: max(1, min(batchSize, examples.count)),
                                    maxSequenceLength: examples.map(\.ids.count).max() ?? 1)
        var losses: [(mean: Double, tokens: Int)] = []
        losses.reserveCapacity(examples.count)
        for micro in MicroBatches(examples, size: batchSize) {
            try model.forward(micro.batch)
            for b in 0..<micro.batch.batchSize {
                losses.append((Double(model.perExampleLosses[b]), model.perExampleTokenCounts[b]))
            }
        }
        return losses
    }

    /// Exposure of a secret (Carlini et al. 2019): log₂|R| − log₂ rank, where rank is the
    /// secret's place when the candidates R (the secret among them) are ordered by loss, lowest
    /// first; ties count half. 0 when the secret ranks last, log₂|R| when it ranks first.
    static func exposure(secretLoss: Double, candidateLosses: [Double]) -> Double {
        let lower = candidateLosses.filter { $0 < secretLoss }.count
        let tied = candidateLosses.filter { $0 == secretLoss }.count  // the secret itself among them
        let rank = 1 + Double(lower) + Double(max(tied - 1, 0)) / 2
        return log2(Double(candidateLosses.count)) - log2(rank)
    }
}
