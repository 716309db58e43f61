import Foundation
import Testing
@testable import DPFT

/// Activation buffers too large for the machine are refused before they are allocated
/// (issue 12 item 12: sizes are checked before allocating, with the memory needed named).
@Suite struct ActivationMemoryTests {
    static func tinyConfig() throws -> ModelConfig {
        try ModelConfig(contentsOf: Fixtures.repository.appendingPathComponent("recipes/models/gpt2-tiny.json"))
    }

    /// gpt2-tiny (V = 256, C = 64, I = 256, L = 2, H = 4) at B = 3, T = 10: logits 30·256,
    /// per layer 30·(3·64 + 2·256), all float32 (attention's probabilities and output, the
    /// norms' outputs and a gated MLP's product are not kept per layer).
    @Test func theBoundCountsLogitsAndLayerRows() throws {
        let config = try Self.tinyConfig()
        let logits: Double = 30 * 256
        let perLayer: Double = 30 * (3 * 64 + 2 * 256)
        let expected = 4 * (logits + 2 * perLayer)
        #expect(config.activationBytesLowerBound(batchSize: 3, sequenceLength: 10) == expected)
        try config.checkActivationsFitInMemory(batchSize: 3, sequenceLength: 10, availableBytes: UInt64(expected))
        #expect(throws: ActivationMemoryError.self) {
            try config.checkActivationsFitInMemory(batchSize: 3, sequenceLength: 10, availableBytes: UInt64(expected) - 1)
        }
    }

    /// Recomputing: one layer's buffers plus each layer's input rows (N·C), so the same
    /// micro-batch fits in less memory, and the refusal no longer suggests recomputing.
    @Test func theRecomputingBoundCountsOneLayerAndEveryInput() throws {
        let config = try Self.tinyConfig()
        let logits: Double = 30 * 256
        let perLayer: Double = 30 * (3 * 64 + 2 * 256)
        let expected = 4 * (logits + perLayer + 2 * 30 * 64)
        #expect(config.activationBytesLowerBound(batchSize: 3, sequenceLength: 10, recomputesActivations: true) == expected)
        try config.checkActivationsFitInMemory(batchSize: 3, sequenceLength: 10, recomputesActivations: true,
                                               availableBytes: UInt64(expected))
        let kept = #expect(throws: ActivationMemoryError.self) {
            try config.checkActivationsFitInMemory(batchSize: 3, sequenceLength: 10, availableBytes: UInt64(expected))
        }
        #expect(kept?.description.contains("training.recompute_activations") == true)
        let recomputing = #expect(throws: ActivationMemoryError.self) {
            try config.checkActivationsFitInMemory(batchSize: 3, sequenceLength: 10, recomputesActivations: true,
                                                   availableBytes: UInt64(expected) - 1)
        }
        #expect(recomputing?.description.contains("recompute") == false)
    }

    /// 2²⁴ sequences of 128 tokens need terabytes of logits: the transformer refuses at once,
    /// naming the sizes and what to lower, instead of aborting in the allocator.
    @Test func aTransformerTooLargeForTheMachineIsRefused() throws {
        let checkpoint = Checkpoint.initialized(config: try Self.tinyConfig(), seed: 1)
        let error = #expect(throws: ActivationMemoryError.self) {
            _ = try Transformer(checkpoint: checkpoint, maxBatchSize: 1 << 24, maxSequenceLength: 128)
        }
        #expect(error?.batchSize == 1 << 24 && error?.sequenceLength == 128)
        #expect(error?.description.contains("physical_batch_size") == true, "\(String(describing: error))")
        _ = try Transformer(checkpoint: checkpoint, maxBatchSize: 2, maxSequenceLength: 16)
    }
}
