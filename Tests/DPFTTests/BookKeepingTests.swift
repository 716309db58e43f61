import Foundation
import Testing
@testable import DPFT

/// Book-keeping clipping against brute force: true per-example gradients (one backward per
/// example), their group norms, clip factors and clipped sum. Bound: relative 1e-4
/// (norms/factors element-wise, the clipped sum scale-relative). The Mixtral cases add
/// `moe-expert` (per-expert norms over gathered token segments, some of them empty).
@Suite struct BookKeepingTests {
    /// Per-example gradients by brute force, keyed by tensor name: [example][flattened values].
    static func perExampleGradients(_ checkpoint: Checkpoint, batch: TokenBatch) throws -> (names: [String], gradients: [[String: [Float]]]) {
        let model = try Transformer(checkpoint: checkpoint, maxBatchSize: 1, maxSequenceLength: batch.sequenceLength)
        var result: [[String: [Float]]] = []
        let T = batch.sequenceLength
        for b in 0..<batch.batchSize {
            let length = batch.lengths[b]
            let single = TokenBatch(examples: [(ids: (0..<length).map { Int(batch.ids[b * T + $0]) },
                                                labels: (0..<length).map { Int(batch.labels[b * T + $0]) })])
            model.zeroGradients()
            try model.forward(single)
            model.backward()
            result.append(Dictionary(uniqueKeysWithValues: model.trainableNames.map { ($0, model.gradients[$0]!.values) }))
        }
        return (model.trainableNames, result)
    }

    /// Every built-in strategy (through the registry) plus a deliberately non-contiguous
    /// grouping (tensors alternate between two groups).
    static func groupings(_ model: Transformer) throws -> [(String, [[String]])] {
        let names = model.trainableNames
        let isLoRA = model.trainableParameterInfos.allSatisfy { $0.kind == .loraA || $0.kind == .loraB }
        var strategies: [(String, GroupingOptions)] = [
            ("all-layer", [:]), ("layer-wise", [:]), ("param-wise", [:]), ("per-block", [:]), ("attn-mlp", [:]),
            ("uniform", ["groups": 2]),
        ]
        if isLoRA { strategies += [("lora-only", [:]), ("lora-only", ["per": "block"])] }
        if model.config.modelType == .mixtral {
            strategies += [("moe-expert", [:]), ("moe-expert", ["router": "shared", "dense": "layer-wise"])]
        }
        var result = try strategies.map { strategy, options in
            let grouping = try GroupingRegistry.builtIn.resolve(strategy: strategy, options: options,
                                                                parameters: model.trainableParameterInfos, threshold: 1)
            return ("\(strategy)\(options.values.isEmpty ? "" : " \(options.values)")", grouping.groups.map(\.parameters))
        }
        result.append(("alternating", [names.enumerated().filter { $0.offset % 2 == 0 }.map(\.element),
                                       names.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)].filter { !$0.isEmpty }))
        return result
    }

    @Test(arguments: ReferenceModelTests.cases + ReferenceModelTests.moeCases)
    func bookKeepingEqualsBruteForce(name: String) throws {
        let reference = try ReferenceModelTests.Reference(name)
        let batch = reference.batch
        let (names, perExample) = try Self.perExampleGradients(reference.checkpoint, batch: batch)
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: batch.batchSize,
                                    maxSequenceLength: batch.sequenceLength)
        for (strategy, members) in try Self.groupings(model) {
            // brute-force norms per example and group
            let bruteNorms: [[Double]] = perExample.map { gradients in
                members.map { group in group.map { gradients[$0]!.reduce(0.0) { $0 + Double($1) * Double($1) } }.reduce(0, +).squareRoot() }
            }
            // thresholds near the median norm, so some examples are clipped and some not
            let thresholds = members.indices.map { k in
                let sorted = bruteNorms.map { $0[k] }.filter { $0 > 0 }.sorted()
                return sorted.isEmpty ? 1 : sorted[sorted.count / 2]
            }
            // each clipping function, with the linear layers' per-example gradients kept by cost
            // (the run's choice), never (fastDP's norm and a clipped-sum GEMM) or always
            let settings = [ClippingFunction.abadi, .automatic(gamma: 0.01)].flatMap { clipping in
                [BookKeeper.ExampleGradientPolicy.byCost, .never, .always].map { (clipping, $0) }
            }
            for (clipping, policy) in settings {
                let groups = members.enumerated().map { ParameterGroup(name: "g\($0.offset)", threshold: thresholds[$0.offset], parameters: $0.element) }
                let grouping = try Grouping(strategy: strategy, groups: groups, parameters: names)
                let engine = try PrivateGradient(model: model, grouping: grouping, clipping: clipping)
                engine.exampleGradientPolicy = policy
                model.zeroGradients()
                try engine.accumulate(batch)
                for (i, norms) in bruteNorms.enumerated() {
                    for k in norms.indices {
                        let expected = norms[k], actual = engine.perSampleNorms[i][k]
                        #expect(abs(actual - expected) <= 1e-4 * max(expected, 1e-8),
                                "\(name)/\(strategy)/\(policy): norm of example \(i) group \(k): \(actual) vs \(expected)")
                        let factor = clipping.factor(norm: expected, threshold: thresholds[k])
                        #expect(abs(engine.clipFactors[i][k] - factor) <= 1e-4 * factor,
                                "\(name)/\(strategy)/\(clipping.name)/\(policy): clip factor \(i),\(k)")
                    }
                }
                for (k, group) in members.enumerated() {
                    for tensor in group {
                        var expected = [Double](repeating: 0, count: perExample[0][tensor]!.count)
                        for i in perExample.indices {
                            let factor = clipping.factor(norm: bruteNorms[i][k], threshold: thresholds[k])
                            for (j, value) in perExample[i][tensor]!.enumerated() { expected[j] += factor * Double(value) }
                        }
                        let actual = model.gradients[tensor]!.values
                        let scale = expected.map(abs).max() ?? 0
                        let worst = zip(actual, expected).map { abs(Double($0) - $1) }.max() ?? 0
                        #expect(worst <= 1e-4 * max(scale, 1e-12),
                                "\(name)/\(strategy)/\(clipping.name)/\(policy): clipped sum of \(tensor) off by \(worst / max(scale, 1e-12))")
                    }
                }
            }
        }
    }

    /// A reference fixture's batch, its model (room for 4 examples) and a built-in grouping
    /// with total threshold 0.5.
    static func fixture(_ name: String, strategy: String) throws -> (TokenBatch, Transformer, Grouping) {
        let reference = try ReferenceModelTests.Reference(name)
        let batch = reference.batch
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: 4, maxSequenceLength: batch.sequenceLength)
        let grouping = try GroupingRegistry.builtIn.resolve(strategy: strategy, options: [:],
                                                            parameters: model.trainableParameterInfos, threshold: 0.5)
        return (batch, model, grouping)
    }

    /// A logical batch processed as micro-batches accumulates the same clipped sum as one pass.
    @Test func microBatchesAccumulateTheSameClippedSum() throws {
        let (batch, model, grouping) = try Self.fixture("llama-gqa-lora", strategy: "layer-wise")
        let engine = try PrivateGradient(model: model, grouping: grouping, clipping: .automatic(gamma: 0.01))
        model.zeroGradients()
        try engine.accumulate(batch)
        let whole = (0..<model.gradients.count).map { model.gradients.storage.base[$0] }
        model.zeroGradients()
        let T = batch.sequenceLength
        for part in [[0, 1], [2], [3]] {
            try engine.accumulate(TokenBatch(examples: part.map { b in
                (ids: (0..<batch.lengths[b]).map { Int(batch.ids[b * T + $0]) },
                 labels: (0..<batch.lengths[b]).map { Int(batch.labels[b * T + $0]) })
            }))
        }
        #expect(engine.examplesAccumulated == 8)
        let parts = (0..<model.gradients.count).map { model.gradients.storage.base[$0] }
        ReferenceModelTests.expectEachTensorClose(parts, whole, in: model.gradients, bound: 1e-5, "micro-batches")
    }

    /// `dpft norms` output: the DESIGN.md §7 layout, read back.
    @Test func normsReportWritesTheDocumentedLayout() throws {
        let reference = try ReferenceModelTests.Reference("gpt2-lora")
        let batch = reference.batch
        let T = batch.sequenceLength
        let examples = (0..<batch.batchSize).map { b in
            TokenizedExample(ids: (0..<batch.lengths[b]).map { Int(batch.ids[b * T + $0]) },
                             labels: (0..<batch.lengths[b]).map { Int(batch.labels[b * T + $0]) })
        }
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: 3, maxSequenceLength: T)
        let grouping = try GroupingRegistry.builtIn.resolve(strategy: "per-block", options: [:],
                                                            parameters: model.trainableParameterInfos, threshold: 1)
        let report = try PerSampleNormsReport.compute(model: model, grouping: grouping, clipping: .abadi,
                                                      examples: examples, batchSize: 3)
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("norms.h5")
        try report.write(to: url)
        let file = try HDF5File.openForReading(url.path)
        let norms = try file.readTensor(at: "/per_sample_norms"), factors = try file.readTensor(at: "/clip_factors")
        #expect(norms.shape == [4, grouping.groups.count])
        #expect(factors.shape == [4, grouping.groups.count])
        let groups = try JSONDecoder().decode([ParameterGroup].self, from: Data(try #require(try file.attribute("groups")?.stringValue).utf8))
        #expect(groups == grouping.groups)
        #expect(try file.attribute("clipping") == .string("abadi"))
        #expect(Set(try file.children(of: "/clipped_gradient")) == Set(model.trainableNames))
        for i in 0..<4 {
            for k in 0..<groups.count {
                #expect(abs(Double(norms.element([i, k])) - report.perSampleNorms[i][k]) <= 1e-6 * max(1, report.perSampleNorms[i][k]))
            }
        }
        #expect(norms.values[2 * groups.count..<3 * groups.count].allSatisfy { $0 == 0 }, "example 2 has no label tokens")
        #expect(report.summary.count == groups.count)
    }

    /// With a huge threshold (abadi) and no noise the private gradient is the gradient of
    /// Σ_i L_i, divided by the expected batch size.
    @Test func hugeThresholdWithoutNoiseIsTheNonPrivateGradient() throws {
        let reference = try ReferenceModelTests.Reference("llama-tied-full")
        let batch = reference.batch
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: 4, maxSequenceLength: batch.sequenceLength)
        try model.forward(batch)
        model.backward()  // gradient of the mean of per-example losses = (Σ_i ∇L_i) / B
        let nonPrivate = model.gradients.storage.base
        let expected = (0..<model.gradients.count).map { nonPrivate[$0] }
        model.zeroGradients()
        let grouping = try Grouping(strategy: "all-layer", groups: [ParameterGroup(name: "all", threshold: 1e9, parameters: model.trainableNames)],
                                    parameters: model.trainableNames)
        let engine = try PrivateGradient(model: model, grouping: grouping, clipping: .abadi)
        try engine.accumulate(batch)
        var noise = NoiseSource.seeded(1)
        try engine.finishLogicalBatch(noiseMultiplier: 0, expectedBatchSize: Double(batch.batchSize), noise: &noise)
        let actual = (0..<model.gradients.count).map { model.gradients.storage.base[$0] }
        ReferenceModelTests.expectEachTensorClose(actual, expected, in: model.gradients, bound: 1e-5, "huge threshold")
    }

    /// Noise scale: over ≥ 10⁶ coordinates the sample standard deviation is within 1% of
    /// σ·√(Σ R_k²)/B_expected.
    @Test func noiseHasTheRightScale() throws {
        let config = try ModelConfig(json: Data(#"{"model_type": "gpt2", "vocab_size": 6000, "n_positions": 16, "n_embd": 128, "n_layer": 2, "n_head": 2}"#.utf8), source: "test")
        let model = try Transformer(checkpoint: .initialized(config: config, seed: 1), maxBatchSize: 1, maxSequenceLength: 4)
        #expect(model.gradients.count >= 1_000_000)
        let names = model.trainableNames
        let groups = [ParameterGroup(name: "a", threshold: 0.5, parameters: Array(names.prefix(3))),
                      ParameterGroup(name: "b", threshold: 2.0, parameters: Array(names.dropFirst(3)))]
        let engine = try PrivateGradient(model: model, grouping: try Grouping(strategy: "test", groups: groups, parameters: names), clipping: .abadi)
        model.zeroGradients()
        var noise = NoiseSource.secure()
        try engine.finishLogicalBatch(noiseMultiplier: 1.3, expectedBatchSize: 64, noise: &noise)
        let values = (0..<model.gradients.count).map { Double(model.gradients.storage.base[$0]) }
        let mean = values.reduce(0, +) / Double(values.count)
        let std = (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
        let expected = 1.3 * (0.25 + 4.0).squareRoot() / 64
        #expect(abs(std - expected) / expected < 0.01, "std \(std) vs \(expected)")
        #expect(abs(mean) < 5 * expected / Double(values.count).squareRoot())
    }

    /// σ·√d up to 2²⁴ is drawn (the grid's scale then stays below the ziggurat's 2²⁵); beyond it
    /// the step stops with a typed error that names the largest σ, not a trap.
    @Test func noiseBeyondTheGridIsATypedError() throws {
        let config = try ModelConfig(json: Data(#"{"model_type": "gpt2", "vocab_size": 600, "n_positions": 16, "n_embd": 32, "n_layer": 1, "n_head": 2}"#.utf8), source: "test")
        let model = try Transformer(checkpoint: .initialized(config: config, seed: 1), maxBatchSize: 1, maxSequenceLength: 4)
        let names = model.trainableNames, d = model.gradients.count
        let engine = try PrivateGradient(model: model, grouping: try Grouping(strategy: "all-layer", groups: [ParameterGroup(name: "all", threshold: 1, parameters: names)], parameters: names), clipping: .abadi)
        let largest = 0x1p24 / Double(d).squareRoot()
        var noise = NoiseSource.seeded(3)
        model.zeroGradients()
        try engine.finishLogicalBatch(noiseMultiplier: largest, expectedBatchSize: 1, noise: &noise)
        #expect((0..<d).allSatisfy { model.gradients.storage.base[$0].isFinite })
        let error = #expect(throws: PrivacyError.self) {
            try engine.finishLogicalBatch(noiseMultiplier: largest * 1.001, expectedBatchSize: 1, noise: &noise)
        }
        #expect(error == .noiseBeyondTheGrid(noiseMultiplier: largest * 1.001, coordinates: d))
        #expect(error?.description.contains("σ ≤ \(String(format: "%.4g", largest))") == true)
    }

    @Test func seededNoiseIsReproducibleAndSecureNoiseIsNot() throws {
        var a = NoiseSource.seeded(42), b = NoiseSource.seeded(42), c = NoiseSource.secure(), d = NoiseSource.secure()
        let x = (0..<4).map { _ in a.nextUniform() }, y = (0..<4).map { _ in b.nextUniform() }
        #expect(x == y)
        #expect((0..<4).map { _ in c.nextUniform() } != (0..<4).map { _ in d.nextUniform() })
        #expect(a.isSeeded && !c.isSeeded)
    }

    /// Groups that close early hold fewer books: layer-wise peak below all-layer on the same batch.
    @Test func layerWiseHoldsFewerBooksThanAllLayer() throws {
        let reference = try ReferenceModelTests.Reference("gpt2-full")
        let batch = reference.batch
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: 4, maxSequenceLength: batch.sequenceLength)
        var peaks: [String: Int] = [:]
        for (strategy, members) in try Self.groupings(model) where ["all-layer", "layer-wise"].contains(strategy) {
            let groups = members.enumerated().map { ParameterGroup(name: "g\($0.offset)", threshold: 1, parameters: $0.element) }
            let engine = try PrivateGradient(model: model, grouping: try Grouping(strategy: strategy, groups: groups, parameters: model.trainableNames),
                                             clipping: .abadi)
            model.zeroGradients()
            try engine.accumulate(batch)
            peaks[strategy] = engine.peakBookBytes
            #expect(engine.bookBytesHeld == 0, "books are freed when their group closes")
        }
        #expect(peaks["layer-wise"]! < peaks["all-layer"]!, "\(peaks)")
        #expect(peaks["all-layer"]! > 0)
    }

    /// Keeping per-example gradients stops where the books held would pass the budget: with no
    /// budget all-layer keeps nothing (bit for bit the never-keep pass), with half the bytes
    /// that keeping everything adds its peak stays within that half plus the never-keep books,
    /// and every budget gives the same clipped sum.
    @Test func keptGradientsStayWithinTheirBudget() throws {
        let (batch, model, grouping) = try Self.fixture("gpt2-full", strategy: "all-layer")
        func pass(_ policy: BookKeeper.ExampleGradientPolicy, budget: Int) throws -> (peak: Int, gradients: [Float]) {
            let engine = try PrivateGradient(model: model, grouping: grouping, clipping: .abadi)
            engine.exampleGradientPolicy = policy
            engine.keptGradientBudget = budget
            model.zeroGradients()
            try engine.accumulate(batch)
            #expect(engine.bookBytesHeld == 0)
            return (engine.peakBookBytes, (0..<model.gradients.count).map { model.gradients.storage.base[$0] })
        }
        let never = try pass(.never, budget: .max), unlimited = try pass(.always, budget: .max)
        let none = try pass(.always, budget: 0)
        #expect(none.peak == never.peak && none.gradients == never.gradients, "a zero budget keeps nothing")
        try #require(unlimited.peak > never.peak, "keeping every layer holds more than the books it replaces")
        let half = (unlimited.peak - never.peak) / 2
        let capped = try pass(.always, budget: half)
        #expect(capped.peak <= half + never.peak && capped.peak != never.peak,
                "peak \(capped.peak) with budget \(half): never keeps \(never.peak), unlimited \(unlimited.peak)")
        for (name, result) in [("unlimited", unlimited), ("capped", capped)] {
            _ = ReferenceModelTests.expectEachTensorClose(result.gradients, never.gradients, in: model.gradients, bound: 1e-5, name)
        }
    }

    /// Per-expert book-keeping on the Mixtral fixture: an example that routes no token to an
    /// expert has norm 0 in that expert's group (clip factor 1 under abadi), an expert without
    /// any token contributes nothing, and the per-expert books are freed as each group closes.
    @Test(arguments: ReferenceModelTests.moeCases)
    func expertGroupsSeeOnlyTheirTokens(name: String) throws {
        let reference = try ReferenceModelTests.Reference(name)
        let batch = reference.batch
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: batch.batchSize,
                                    maxSequenceLength: batch.sequenceLength)
        let grouping = try GroupingRegistry.builtIn.resolve(strategy: "moe-expert", options: [:],
                                                            parameters: model.trainableParameterInfos, threshold: 1)
        let engine = try PrivateGradient(model: model, grouping: grouping, clipping: .abadi)
        model.zeroGradients()
        try engine.accumulate(batch)
        #expect(engine.bookBytesHeld == 0, "books are freed when their group closes")
        var emptyPairs = 0
        for (l, block) in model.blocks.enumerated() {
            guard case .experts(let moe) = block.feedForward else { continue }
            for e in 0..<moe.expertCount {
                let k = try #require(grouping.groups.firstIndex { $0.name == "block.\(l).expert.\(e)" })
                for i in 0..<batch.batchSize {
                    // example 2 has no label tokens: no gradient anywhere
                    let routed = moe.segments[e][i].count
                    if routed == 0 || i == 2 {
                        #expect(engine.perSampleNorms[i][k] == 0, "\(name): block \(l) expert \(e) example \(i)")
                        #expect(engine.clipFactors[i][k] == 1)
                        if routed == 0 { emptyPairs += 1 }
                    } else {
                        #expect(engine.perSampleNorms[i][k] > 0, "\(name): block \(l) expert \(e) example \(i)")
                    }
                }
            }
        }
        #expect(emptyPairs > 0, "the fixture has examples that route no token to some expert")
    }
}
