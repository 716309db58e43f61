import Foundation
import Testing
@testable import DPFT

/// `Transformer.decode` runs new positions through the model's own blocks against the key/value
/// cache: a prompt decoded in one call, token by token, or in the training forward gives the
/// same next-token logits. Bound: 1e-4 relative to the largest logit (float32 sums in another
/// order).
@Suite struct DecodeTests {
    @Test(arguments: ["gpt2-lora", "llama-gqa-lora", "llama-tied-full", "mixtral-lora"])
    func decodeMatchesTheForwardPass(reference: String) throws {
        let checkpoint = try ReferenceModelTests.Reference(reference).checkpoint
        let model = try Transformer(checkpoint: checkpoint, trainable: TrainableSelection.none,
                                    maxBatchSize: 1, maxSequenceLength: 16)
        let prompt = [5, 17, 42, 8, 100, 3, 9]
        try model.forward(TokenBatch(examples: [(ids: prompt, labels: nil)]))
        let expected = Array(model.logits(example: 0, position: prompt.count - 1))
        let cache = try KeyValueCache(model: model, capacity: 16)
        let whole = Array(try model.decode(prompt, cache: cache))
        #expect(cache.count == prompt.count)
        cache.reset()
        var stepwise: [Float] = []
        for token in prompt { stepwise = Array(try model.decode([token], cache: cache)) }
        let scale = expected.map(abs).max()!
        for (label, logits) in [("one call", whole), ("token by token", stepwise)] {
            let worst = zip(logits, expected).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-4 * scale, "\(reference) \(label): largest difference \(worst) (scale \(scale))")
        }
    }

    @Test func decodeBeyondTheCacheIsAnError() throws {
        let checkpoint = try ReferenceModelTests.Reference("llama-gqa-lora").checkpoint
        let model = try Transformer(checkpoint: checkpoint, trainable: TrainableSelection.none,
                                    maxBatchSize: 1, maxSequenceLength: 8)
        let cache = try KeyValueCache(model: model, capacity: 4)
        _ = try model.decode([1, 2, 3], cache: cache)
        #expect(throws: ModelError.sequenceTooLong(length: 5, maxPositions: 4)) {
            try model.decode([4, 5], cache: cache)
        }
        #expect(throws: ModelError.sequenceTooLong(length: 9, maxPositions: 8)) {
            try KeyValueCache(model: model, capacity: 9)
        }
    }
}
