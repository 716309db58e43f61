import Foundation
import Testing
@testable import DPFT

/// A model that recomputes its blocks' activations in the backward pass (one shared set of
/// buffers) against the same model keeping every block's: the loss, the gradients, the
/// per-example norms and the clipped sums must be bit for bit the same — the recomputation
/// repeats the forward's arithmetic — for every reference model (dense and mixture of experts,
/// full and LoRA), non-private and under every grouping strategy, with book-keeping's Gram path
/// forced (`.never`: all-layer's books then point into the shared buffers across blocks and
/// must be copied), and by cost for all-layer and layer-wise. The model that keeps its
/// activations is itself checked against transformers (`ReferenceModelTests`) and brute force
/// (`BookKeepingTests`). Serialized: its cases are long in a debug build, and run side by side
/// they held the test pool's threads long enough to starve other suites' time limits.
@Suite(.serialized) struct RecomputedActivationsTests {
    static func models(_ reference: ReferenceModelTests.Reference) throws -> (kept: Transformer, recomputed: Transformer) {
        let batch = reference.batch
        return (try Transformer(checkpoint: reference.checkpoint, maxBatchSize: batch.batchSize,
                                maxSequenceLength: batch.sequenceLength),
                try Transformer(checkpoint: reference.checkpoint, maxBatchSize: batch.batchSize,
                                maxSequenceLength: batch.sequenceLength, recomputesActivations: true))
    }

    static func gradients(_ model: Transformer) -> [Float] {
        Array(UnsafeBufferPointer(start: model.gradients.storage.base, count: model.gradients.count))
    }

    @Test(arguments: ReferenceModelTests.cases + ReferenceModelTests.moeCases)
    func nonPrivateGradientsAreIdentical(name: String) throws {
        let reference = try ReferenceModelTests.Reference(name)
        let (kept, recomputed) = try Self.models(reference)
        var losses: [Float] = []
        for model in [kept, recomputed] {
            model.zeroGradients()
            losses.append(try model.forward(reference.batch))
            model.backward()
        }
        #expect(losses[0] == losses[1], "\(name): loss")
        let (a, b) = (Self.gradients(kept), Self.gradients(recomputed))
        #expect(a.contains { $0 != 0 }, "\(name): the gradients are all zero")
        #expect(a == b, "\(name): gradients differ in \(zip(a, b).filter { $0 != $1 }.count) of \(a.count) coordinates")
    }

    @Test(arguments: ReferenceModelTests.cases + ReferenceModelTests.moeCases)
    func privateGradientsAreIdentical(name: String) throws {
        let reference = try ReferenceModelTests.Reference(name)
        let (kept, recomputed) = try Self.models(reference)
        for (strategy, members) in try BookKeepingTests.groupings(kept) {
            let policies: [BookKeeper.ExampleGradientPolicy] =
                ["all-layer", "layer-wise"].contains(strategy) ? [.never, .byCost] : [.never]
            for policy in policies {
                // thresholds small enough that every example is clipped in every group
                let groups = members.enumerated().map { ParameterGroup(name: "g\($0.offset)", threshold: 1e-3, parameters: $0.element) }
                let grouping = try Grouping(strategy: strategy, groups: groups, parameters: kept.trainableNames)
                var norms: [[[Double]]] = [], sums: [[Float]] = []
                for model in [kept, recomputed] {
                    let engine = try PrivateGradient(model: model, grouping: grouping, clipping: .abadi)
                    engine.exampleGradientPolicy = policy
                    model.zeroGradients()
                    try engine.accumulate(reference.batch)
                    // every book, input copies included, released exactly once
                    #expect(engine.bookBytesHeld == 0, "\(name)/\(strategy)/\(policy): \(engine.bookBytesHeld) bytes still held")
                    norms.append(engine.perSampleNorms)
                    sums.append(Self.gradients(model))
                }
                #expect(norms[0] == norms[1], "\(name)/\(strategy)/\(policy): per-example norms")
                #expect(sums[0].contains { $0 != 0 }, "\(name)/\(strategy)/\(policy): the clipped sum is all zero")
                let differing = zip(sums[0], sums[1]).filter { $0 != $1 }.count
                #expect(sums[0] == sums[1], "\(name)/\(strategy)/\(policy): clipped sums differ in \(differing) coordinates")
            }
        }
    }

    /// Only the query projections train: consecutive contributions then read the same shared
    /// input buffer (norm1's output) in different blocks, so Grams cached for one block's input
    /// must not serve the next block's.
    @Test func gramsOfAnEarlierBlockAreNotReused() throws {
        let reference = try ReferenceModelTests.Reference("llama-gqa-full")
        let batch = reference.batch
        let queries = TrainableSelection.names(Set(reference.checkpoint.config.parameterSpecs.map(\.name)
            .filter { $0.hasSuffix("q_proj.weight") }))
        var sums: [[Float]] = []
        for recomputes in [false, true] {
            let model = try Transformer(checkpoint: reference.checkpoint, trainable: queries, maxBatchSize: batch.batchSize,
                                        maxSequenceLength: batch.sequenceLength, recomputesActivations: recomputes)
            let grouping = try GroupingRegistry.builtIn.resolve(strategy: "all-layer", options: [:],
                                                                parameters: model.trainableParameterInfos, threshold: 1e-3)
            let engine = try PrivateGradient(model: model, grouping: grouping, clipping: .abadi)
            engine.exampleGradientPolicy = .never
            model.zeroGradients()
            try engine.accumulate(batch)
            sums.append(Self.gradients(model))
        }
        #expect(sums[0].count > 0 && sums[0].contains { $0 != 0 })
        #expect(sums[0] == sums[1])
    }

    /// The recomputing model allocates one block's saved activations instead of one per block.
    @Test(arguments: ["gpt2-full", "llama-gqa-lora", "mixtral-full"])
    func oneSetOfSavedActivationsIsAllocated(name: String) throws {
        let reference = try ReferenceModelTests.Reference(name)
        let (kept, recomputed) = try Self.models(reference)
        let config = kept.config, B = reference.batch.batchSize, T = reference.batch.sequenceLength, N = B * T
        let C = config.hiddenSize, I = config.intermediateSize, H = config.headCount, D = config.headDimension
        let W = (H + 2 * config.keyValueHeadCount) * D
        let experts = config.expertCount > 0
        // norm1 mean, rstd; q|k|v; middle; norm2 mean, rstd; the dense MLP's two (the norms'
        // outputs, attention's output and a gated MLP's product are one shared set either way)
        let floatsPerBlock = N * (2 + W + C + 2) + (experts ? 0 : 2 * N * I)
        #expect(kept.activationBytes - recomputed.activationBytes == 4 * floatsPerBlock * (config.layerCount - 1))
    }
}
