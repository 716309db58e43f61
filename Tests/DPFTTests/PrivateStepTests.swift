import Foundation
import Testing
@testable import DPFT

/// The runner's private step (`TrainingStep`) against what DP-SGD requires of it (issue 12,
/// "tests that would not catch a real bug"): Poisson batches that include every example at rate
/// q independently, noise of the right size added once per logical batch (also to an empty
/// one), fresh noise every step and every run, and division by the expected batch size.
@Suite struct PrivateStepTests {
    /// gpt2-tiny with every tensor trainable (d ≈ 1.2·10⁵ coordinates), all-layer flat clipping
    /// at threshold 1 (sensitivity 1), N examples of lengths 3–8, micro-batches of one example.
    static func makeStep(examples N: Int = 60, sampleRate: Double, sigma: Double,
                         seed: UInt64?) throws -> TrainingStep {
        let config = try ModelConfig(contentsOf: Fixtures.repository.appendingPathComponent("recipes/models/gpt2-tiny.json"))
        let model = try Transformer(checkpoint: Checkpoint.initialized(config: config, seed: 1), maxBatchSize: 1,
                                    maxSequenceLength: 8)
        let grouping = try GroupingRegistry.builtIn.resolve(strategy: "all-layer", options: [:],
                                                            parameters: model.trainableParameterInfos, threshold: 1)
        let engine = try PrivateGradient(model: model, grouping: grouping, clipping: .abadi)
        let examples = (0..<N).map { i in TokenizedExample(ids: (0..<(3 + i % 6)).map { 3 + (i * 7 + $0 * 13) % 250 }, labels: nil) }
        return TrainingStep(model: model, optimizer: try Optimizer(kind: .sgd(), model: model), examples: examples,
                            physicalBatchSize: 1,
                            method: .poisson(engine: engine, sampleRate: sampleRate, noiseMultiplier: sigma, noiseSeed: seed))
    }

    static func gradient(_ step: TrainingStep) -> [Float] {
        Array(UnsafeBufferPointer(start: step.model.gradients.storage.base, count: step.model.gradients.count))
    }

    static func standardDeviation(_ values: [Float]) -> Double {
        let mean = values.reduce(0.0) { $0 + Double($1) } / Double(values.count)
        return (values.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(values.count)).squareRoot()
    }

    static func correlation(_ a: [Float], _ b: [Float]) -> Double {
        var ab = 0.0, aa = 0.0, bb = 0.0
        for i in a.indices {
            ab += Double(a[i]) * Double(b[i])
            aa += Double(a[i]) * Double(a[i])
            bb += Double(b[i]) * Double(b[i])
        }
        return ab / (aa * bb).squareRoot()
    }

    /// A sampler that drew a Binomial size and took the first k examples, or reused a batch,
    /// passes a batch-size test; per-example inclusion counts and the overlap of consecutive
    /// batches do not. 4,000 seeded batches at q = 0.1 over N = 60: each example's count is
    /// Binomial(4000, 0.1) (mean 400, sd 19), the counts' χ² has 59 degrees of freedom
    /// (critical value 95.8 at α = 0.005 with 60 cells, mean fixed only approximately: 60 dof
    /// gives 91.95 at α = 0.01, 99.6 at α = 0.001), and consecutive batches share N·q² = 0.6
    /// examples on average.
    @Test func everyExampleJoinsEachBatchIndependentlyAtRateQ() throws {
        let N = 60, q = 0.1, draws = 4000
        let step = try Self.makeStep(examples: N, sampleRate: q, sigma: 1, seed: 11)
        var counts = [Int](repeating: 0, count: N)
        var overlap = 0, previous = Set<Int>()
        for s in 0..<draws {
            let batch = step.sampleBatch(step: s, noiseSeed: 11)
            let members = Set(batch)
            #expect(members.count == batch.count, "an example twice in one batch")
            for i in batch { counts[i] += 1 }
            overlap += members.intersection(previous).count
            previous = members
        }
        let mean = Double(draws) * q, variance = Double(draws) * q * (1 - q)
        let chiSquare = counts.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / variance
        #expect(chiSquare < 99.6, "inclusion counts \(counts): χ² = \(chiSquare)")
        #expect(counts.allSatisfy { abs(Double($0) - mean) < 5 * variance.squareRoot() }, "\(counts)")
        let expectedOverlap = Double(draws - 1) * Double(N) * q * q
        let overlapSD = (Double(draws - 1) * Double(N) * q * q * (1 - q * q)).squareRoot()
        #expect(abs(Double(overlap) - expectedOverlap) < 5 * overlapSD, "overlap \(overlap) vs \(expectedOverlap)")
        // The secure generator: fresh batches, the same rates.
        let secure = try Self.makeStep(examples: N, sampleRate: q, sigma: 1, seed: nil)
        var secureCounts = [Int](repeating: 0, count: N)
        for s in 0..<draws { for i in secure.sampleBatch(step: s, noiseSeed: nil) { secureCounts[i] += 1 } }
        let secureChiSquare = secureCounts.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / variance
        #expect(secureChiSquare < 99.6, "secure inclusion counts \(secureCounts): χ² = \(secureChiSquare)")
    }

    /// The first seeded step whose batch has `size` examples (or satisfies `where`).
    static func stepIndex(_ step: TrainingStep, seed: UInt64, where accept: (Int) -> Bool) -> Int {
        (0..<10_000).first { accept(step.sampleBatch(step: $0, noiseSeed: seed).count) }!
    }

    /// With σ = 10³ the clipped sum (norm ≤ batch size) is negligible next to the noise, so the
    /// gradient's standard deviation is σ·(Δ + λ√d)/(q·N) for any batch (λ√d: the snapping to
    /// the noise grid λ = 2^(⌊log₂ σΔ⌋ − 22), paid for in sensitivity, see `GaussianSampler`;
    /// 4.4% here, where σ is large) — also an empty one (a skipped or un-noised empty batch
    /// gives 0), also one of several micro-batches (noise per micro-batch gives √k times more),
    /// and divided by the expected q·N = 6 (dividing by the actual size gives 6/|B| times more).
    @Test func noiseIsAddedOnceAndScaledByTheExpectedBatchSize() throws {
        let sigma = 1000.0, q = 0.1, N = 60
        let probe = try Self.makeStep(examples: N, sampleRate: q, sigma: sigma, seed: 3)
        let empty = Self.stepIndex(probe, seed: 3) { $0 == 0 }
        let small = Self.stepIndex(probe, seed: 3) { $0 == 3 }
        let large = Self.stepIndex(probe, seed: 3) { $0 == 10 }
        for index in [empty, small, large] {
            let step = try Self.makeStep(examples: N, sampleRate: q, sigma: sigma, seed: 3)
            let result = try step.run(step: index, learningRate: 0)
            let d = Double(step.model.gradients.count), lambda = pow(2, (log2(sigma * 1)).rounded(.down) - 22)
            let expected = sigma * (1 + lambda * d.squareRoot()) / (q * Double(N))
            let measured = Self.standardDeviation(Self.gradient(step))
            // d ≈ 1.3·10⁵: the sample sd is within 0.2% (one sd) of the true one.
            #expect(abs(measured / expected - 1) < 0.02,
                    "batch of \(result.examples): gradient sd \(measured), expected σ(Δ + λ√d)/(qN) = \(expected)")
        }
    }

    /// σ = 0 isolates the division: the step's gradient is the clipped sum (formed by a second,
    /// identical engine over the same batch) divided by q·N = 6, for a batch of 9 ≠ 6.
    @Test func theClippedSumIsDividedByTheExpectedBatchSize() throws {
        let q = 0.1, N = 60
        let step = try Self.makeStep(examples: N, sampleRate: q, sigma: 0, seed: 5)
        let index = Self.stepIndex(step, seed: 5) { $0 == 9 }
        try step.run(step: index, learningRate: 0)
        let reference = try Self.makeStep(examples: N, sampleRate: q, sigma: 0, seed: 5)
        guard case .poisson(let engine, _, _, _) = reference.method else { Issue.record("not private"); return }
        reference.model.zeroGradients()
        for i in reference.sampleBatch(step: index, noiseSeed: 5) {
            let example = reference.examples[i]
            try engine.accumulate(TokenBatch(examples: [(ids: example.ids, labels: example.labels)]))
        }
        let clippedSum = Self.gradient(reference), private_ = Self.gradient(step)
        var worst = 0.0, scale = 0.0
        for i in clippedSum.indices {
            worst = max(worst, abs(Double(private_[i]) * q * Double(N) - Double(clippedSum[i])))
            scale = max(scale, abs(Double(clippedSum[i])))
        }
        #expect(scale > 0)
        #expect(worst <= 1e-6 * scale, "largest |g·qN − Σ clipped| = \(worst) of \(scale)")
    }

    /// Noise is fresh every step of a seeded run, and every run without a seed: the gradients of
    /// two such steps (σ = 10³, noise-dominated) are uncorrelated (|r| < 6/√d); a reused draw
    /// gives r ≈ 1.
    @Test func noiseIsFreshEveryStepAndEveryRun() throws {
        func noisyGradient(seed: UInt64?, step index: Int) throws -> [Float] {
            let step = try Self.makeStep(sampleRate: 0.1, sigma: 1000, seed: seed)
            try step.run(step: index, learningRate: 0)
            return Self.gradient(step)
        }
        let a = try noisyGradient(seed: 8, step: 0), b = try noisyGradient(seed: 8, step: 1)
        let bound = 6 / Double(a.count).squareRoot()
        #expect(abs(Self.correlation(a, b)) < bound, "seeded steps 0 and 1: r = \(Self.correlation(a, b))")
        #expect(try noisyGradient(seed: 8, step: 0) == a, "a seeded step is reproducible")
        let c = try noisyGradient(seed: nil, step: 0), d = try noisyGradient(seed: nil, step: 0)
        #expect(abs(Self.correlation(c, d)) < bound, "two secure runs' step 0: r = \(Self.correlation(c, d))")
        let secure = try Self.makeStep(sampleRate: 0.1, sigma: 1000, seed: nil)
        try secure.run(step: 0, learningRate: 0)
        let first = Self.gradient(secure)
        try secure.run(step: 1, learningRate: 0)
        #expect(abs(Self.correlation(first, Self.gradient(secure))) < bound, "consecutive secure steps")
    }

    /// The divergence screen finds a NaN or infinity in the SIMD body and in the tail of a
    /// tensor, names the tensor and element, and passes huge finite values.
    @Test func theDivergenceScreenFindsEveryNonFiniteElement() throws {
        let store = ParameterStore(layout: [(name: "a", shape: [5, 7]), (name: "b", shape: [3])])
        store.storage.base.update(repeating: 3e38, count: store.count)
        #expect(TrainingStep.firstNonFinite(store, names: ["a", "b"]) == nil)
        store["a"]!.storage.base[store["a"]!.offset + 33] = .nan
        let found = try #require(TrainingStep.firstNonFinite(store, names: ["a", "b"]))
        #expect(found.name == "a" && found.index == 33 && found.value.isNaN)
        store["a"]!.storage.base[store["a"]!.offset + 33] = 1
        store["b"]!.storage.base[store["b"]!.offset + 2] = -.infinity
        let tail = try #require(TrainingStep.firstNonFinite(store, names: ["a", "b"]))
        #expect(tail.name == "b" && tail.index == 2 && tail.value == -.infinity)
        store["a"]!.storage.base[store["a"]!.offset + 5] = .infinity
        #expect(TrainingStep.firstNonFinite(store, names: ["a", "b"])?.name == "a")
        #expect(TrainingStep.firstNonFinite(store, names: ["b"])?.index == 2)

        // A tensor large enough to be screened in chunks on several cores: a NaN in the last
        // chunk is found, and with one in an earlier chunk too, the earlier one is named.
        let large = ParameterStore(layout: [(name: "big", shape: [300_007])])
        large.storage.base.update(repeating: 1, count: large.count)
        #expect(TrainingStep.firstNonFinite(large, names: ["big"]) == nil)
        large.storage.base[300_001] = .nan
        #expect(TrainingStep.firstNonFinite(large, names: ["big"])?.index == 300_001)
        large.storage.base[70_000] = .infinity
        #expect(TrainingStep.firstNonFinite(large, names: ["big"])?.index == 70_000)
    }
}
