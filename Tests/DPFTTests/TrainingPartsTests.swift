import Foundation
import Testing
@testable import DPFT

/// The parts the recipe runner is built from: the micro-batch iterator, the example loader's
/// one set of rules, the privacy budget, and the training step that `dpft bench step` shares.
@Suite struct TrainingPartsTests {
    static func example(_ ids: [Int], _ labels: [Int]? = nil) -> TokenizedExample { TokenizedExample(ids: ids, labels: labels) }

    @Test func microBatchesCutTheOrderIntoRunsOfAtMostSize() {
        let examples = [[1, 2], [3, 4, 5], [6], [7, 8, 9, 10], [11, 12]].map { Self.example($0) }
        let micro = Array(MicroBatches(examples, order: [4, 0, 3, 1, 2], size: 2))
        #expect(micro.map { Array($0.indices) } == [[4, 0], [3, 1], [2]])
        #expect(micro.map(\.done) == [2, 4, 5])
        #expect(micro.map(\.tokens) == [4, 7, 1])
        #expect(micro.map(\.batch.sequenceLength) == [2, 4, 1])
        #expect(Array(MicroBatches(examples, size: 3)).map { Array($0.indices) } == [[0, 1, 2], [3, 4]])
        #expect(Array(MicroBatches(examples, order: [], size: 3)).isEmpty)
    }

    /// One rule for every reader: malformed lines per policy, examples without a scored token
    /// dropped and counted, cuts counted, at most `limit` examples and no line read after them.
    @Test func exampleLoaderAppliesOneSetOfRules() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("data.jsonl")
        try Data("""
            {"input_ids": [1, 2, 3, 4, 5, 6]}
            {"input_ids": [7]}
            {"input_ids": [1, 2, 3], "labels": [5, -100, -100]}
            not json
            {"input_ids": [4, 5, 6], "labels": [-100, 5, 6]}
            {"input_ids": [1, 2, "x"]}
            """.utf8).write(to: url)
        let skip = ExampleLoader(onMalformed: .skip, encoder: nil, maxLength: 4)
        let all = try skip.load(path: url.path)
        #expect(all.examples.map(\.ids) == [[1, 2, 3, 4], [4, 5, 6]])
        #expect(all.truncated == 1 && all.empty == 2 && all.skippedLines == [4, 6])
        // stop names the first bad line; a limit reached before it never reads it
        #expect(throws: DataError.malformedLine(path: url.path, line: 4, reason: "not valid JSON")) {
            try ExampleLoader(encoder: nil).load(path: url.path)
        }
        #expect(try ExampleLoader(encoder: nil).load(path: url.path, limit: 1).examples.count == 1)
        // a forced format makes other shapes malformed
        #expect(throws: DataError.self) { try ExampleLoader(format: .text, encoder: nil).load(path: url.path) }
        // nothing scored at all: the error says so
        try Data("{\"input_ids\": [3]}\n".utf8).write(to: url)
        #expect(throws: DataError.noTrainableTokens(path: url.path, dropped: [DroppedExample(line: 1, cause: .nothingToTrainOn(
            "it has 1 token; an example needs two (each token is scored against the next)"))])) {
            try ExampleLoader(encoder: nil).load(path: url.path)
        }
    }

    @Test func privacyBudgetBooksStepsAndStopsBeforeTheTarget() throws {
        var budget = PrivacyBudget(accountant: .rdp, delta: 1e-5, targetEpsilon: 2.0, noiseMultiplier: 1.0,
                                   sampleRate: 0.01, plannedSteps: 10_000)
        budget.recordStep()
        budget.recordStep()
        #expect(budget.history == [MechanismSegment(noiseMultiplier: 1.0, sampleRate: 0.01, steps: 2)])
        #expect(budget.stepsTaken == 2)
        let fits = try #require(try budget.stopBeforeExceedingTarget(atStep: 2))
        #expect(budget.totalSteps == 2 + fits && budget.totalSteps > 100 && budget.totalSteps < 1000, "ε(100) ≈ 1.2, ε(1000) ≈ 2.1")
        func epsilon(_ steps: Int) throws -> Double {
            try Accountant.rdp.epsilon(history: [MechanismSegment(noiseMultiplier: 1, sampleRate: 0.01, steps: steps)],
                                       delta: 1e-5).epsilon
        }
        #expect(try epsilon(budget.totalSteps) <= 2.0 && epsilon(budget.totalSteps + 1) > 2.0)
        #expect(try budget.stopBeforeExceedingTarget(atStep: 2) == nil, "a second call changes nothing")
        let noiseless = PrivacyBudget(accountant: .prv, delta: 1e-5, targetEpsilon: nil, noiseMultiplier: 0,
                                      sampleRate: 0.1, plannedSteps: 3)
        #expect(try noiseless.spent() == nil, "σ = 0: ε is unbounded")
    }

    /// `dpft bench step` runs the runner's `TrainingStep`: private steps hold books, and a
    /// seeded private step is reproducible.
    @Test func benchmarkAndRunnerShareTheTrainingStep() throws {
        let config = try ModelConfig(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../recipes/models/gpt2-tiny.json").standardized)
        let nonPrivate = try StepBenchmark.run(config: config, batchSize: 3, sequenceLength: 8, steps: 1)
        #expect(nonPrivate.peakBookBytes == 0 && nonPrivate.secondsPerStep.count == 1)
        let layerWise = try StepBenchmark.run(config: config, batchSize: 3, sequenceLength: 8, steps: 1, grouping: "all-layer")
        #expect(layerWise.peakBookBytes > 0)

        // `--compare`: every round times one step of each variant, the non-private one first.
        let comparison = try StepBenchmark.compare(config: config, batchSize: 3, sequenceLength: 8, rounds: 3,
                                                   privateVariants: [.init(grouping: "all-layer"),
                                                                     .init(grouping: "layer-wise", clipping: .automatic(gamma: 0.01))])
        #expect(comparison.variants.map(\.grouping) == [nil, "all-layer", "layer-wise"])
        #expect(comparison.seconds.count == 3 && comparison.seconds.allSatisfy { $0.count == 3 && $0.allSatisfy { $0 > 0 } })
        let ratios = comparison.seconds.map { $0[2] / $0[0] }.sorted()
        #expect(comparison.medianRatio(2) == ratios[1] && comparison.ratios(0).allSatisfy { $0 == 1 })
        #expect(throws: GroupingError.self) {
            try StepBenchmark.compare(config: config, batchSize: 3, sequenceLength: 8, rounds: 1,
                                      privateVariants: [.init(grouping: "no-such-strategy")])
        }

        func seededStep() throws -> [Float] {
            let model = try Transformer(checkpoint: Checkpoint.initialized(config: config, seed: 1), maxBatchSize: 2,
                                        maxSequenceLength: 6)
            let grouping = try GroupingRegistry.builtIn.resolve(strategy: "layer-wise", options: [:],
                                                                parameters: model.trainableParameterInfos, threshold: 1)
            let step = TrainingStep(model: model, optimizer: try Optimizer(kind: .sgd(), model: model),
                                    examples: (0..<5).map { Self.example(Array(($0 + 1)...($0 + 6))) }, physicalBatchSize: 2,
                                    method: .poisson(engine: try PrivateGradient(model: model, grouping: grouping, clipping: .abadi),
                                                     sampleRate: 0.6, noiseMultiplier: 1, noiseSeed: 4))
            let result = try step.run(step: 3, learningRate: 0.1)
            #expect(result.examples > 0 && result.tokens == 6 * result.examples)
            return (0..<model.gradients.count).map { model.gradients.storage.base[$0] }
        }
        #expect(try seededStep() == seededStep())
    }
}
