import Foundation
import Testing
@testable import DPFT

/// The recipe runner on a tiny model: ledger vs the accountant, resume equivalence, Poisson
/// statistics, data formats and the errors a new user meets.
@Suite(.serialized) struct RecipeRunnerTests {
    /// A scratch directory with a tiny llama checkpoint (fixture tokenizer) and small data sets.
    struct Workspace {
        let directory: URL
        var checkpoint: String { directory.appendingPathComponent("base.h5").path }
        var train: String { directory.appendingPathComponent("train.jsonl").path }
        var eval: String { directory.appendingPathComponent("eval.jsonl").path }

        init() throws {
            directory = try makeTemporaryDirectory()
            let config = try ModelConfig(json: Data("""
                {"model_type": "llama", "vocab_size": 256, "hidden_size": 16, "intermediate_size": 24,
                 "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
                 "max_position_embeddings": 320, "tie_word_embeddings": true}
                """.utf8), source: "test")
            var checkpoint = Checkpoint.initialized(config: config, seed: 5)
            checkpoint.tokenizerModel = try Tokenizer(contentsOf: Fixtures.url("tokenizer/tok.model")).modelBytes
            try checkpoint.write(to: URL(fileURLWithPath: self.checkpoint))
            let words = ["red", "green", "blue", "small", "large", "fast"]
            func line(_ i: Int) -> String {
                #"{"instruction": "Name the colour.", "input": "item \#(words[i % 6])", "output": "\#(words[i % 3])"}"#
            }
            try Data((0..<60).map(line).joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: train))
            try Data((60..<66).map(line).joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: eval))
        }

        func recipe(_ extra: String = "", privacy: String = #"{"noise_multiplier": 1.1, "grouping": "layer-wise"}"#,
                    output: String = "run") throws -> URL {
            let url = directory.appendingPathComponent("recipe-\(UUID().uuidString).json")
            let text = """
                {"name": "test",
                 "model": {"checkpoint": "\(checkpoint)"},
                 "adapter": {"type": "lora", "rank": 2, "alpha": 4, "targets": ["q_proj", "v_proj"]},
                 "data": {"train": "\(train)", "eval": "\(eval)", "max_length": 300},
                 "privacy": \(privacy),
                 "training": {"steps": 6, "batch_size": 8, "physical_batch_size": 4, "generate_examples": 2,
                              "max_new_tokens": 2, "optimizer": {"name": "adamw", "learning_rate": 0.01}\(extra)},
                 "output": {"directory": "\(directory.appendingPathComponent(output).path)", "checkpoint_every": 3}}
                """
            try Data(text.utf8).write(to: url)
            return url
        }

        func run(_ url: URL, overrides: [String] = [], resume: Bool = false) throws -> RunSummary {
            try RecipeRunner(recipe: try Recipe.load(from: url, overrides: overrides), resume: resume) { _ in }.run()
        }
    }

    @Test func ledgerMatchesTheAccountant() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        for accountant in ["rdp", "prv"] {
            let recipe = try workspace.recipe(privacy: #"{"noise_multiplier": 1.1, "accountant": "\#(accountant)", "grouping": "layer-wise"}"#,
                                              output: accountant)
            let summary = try workspace.run(recipe)
            let ledger = try PrivacyLedger(json: try #require(try Checkpoint.read(from: URL(fileURLWithPath: summary.finalCheckpoint)).privacyLedger))
            #expect(ledger.steps == 6)
            #expect(ledger.sampleRate == 8.0 / 60.0)
            #expect(ledger.noiseMultiplier == 1.1)
            let expected = try Accountant(rawValue: accountant)!.epsilon(
                history: [MechanismSegment(noiseMultiplier: 1.1, sampleRate: 8.0 / 60.0, steps: 6)], delta: 1e-5)
            #expect(abs(ledger.epsilon - expected.epsilon) <= 1e-9 * expected.epsilon, "\(accountant): \(ledger.epsilon) vs \(expected.epsilon)")
            #expect(ledger.noise == "secure" && ledger.privateRelease)
            #expect(ledger.groups.count == 2, "layer-wise: one group per adapted module")
            #expect(ledger.recipeHash == (try Recipe.load(from: recipe)).hash)
            // every checkpoint carries the ledger so far
            let early = try Checkpoint.read(from: workspace.directory.appendingPathComponent("\(accountant)/step-3.h5"))
            #expect(try PrivacyLedger(json: try #require(early.privacyLedger)).steps == 3)
        }
    }

    /// `noise_multiplier: 1e-9` trapped in the PRV accountant after step 1; now a typed error
    /// before the run directory exists (issue 12 item 12).
    @Test func aNoiseMultiplierTooSmallToAccountFailsBeforeTheRun() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let recipe = try workspace.recipe(privacy: #"{"noise_multiplier": 1e-9, "accountant": "prv"}"#, output: "tiny")
        #expect(throws: AccountingError.self) { try workspace.run(recipe) }
        #expect(!FileManager.default.fileExists(atPath: workspace.directory.appendingPathComponent("tiny").path))
    }

    /// A σ beyond the noise sampler's grid (σ·√d > 2²⁴) is refused before the run directory
    /// exists, not at the first step's noise.
    @Test func aNoiseMultiplierBeyondTheGridFailsBeforeTheRun() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let recipe = try workspace.recipe(privacy: #"{"noise_multiplier": 1e7, "accountant": "rdp"}"#, output: "loud")
        let error = #expect(throws: PrivacyError.self) { try workspace.run(recipe) }
        if case .noiseBeyondTheGrid(let sigma, _) = error { #expect(sigma == 1e7) } else { Issue.record("got \(String(describing: error))") }
        #expect(!FileManager.default.fileExists(atPath: workspace.directory.appendingPathComponent("loud").path))
    }

    /// δ ≥ 1/N and an eval file that is the train file are refused before anything is written;
    /// eval examples that also occur in the training data are counted in a warning (issue 12
    /// item 8). The workspace's eval lines repeat training lines, so all 6 overlap.
    @Test func heldOutDataAndDeltaAreChecked() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let loose = try workspace.recipe(privacy: #"{"noise_multiplier": 1.1, "delta": 0.02}"#, output: "loose")
        let error = #expect(throws: RunError.self) { try workspace.run(loose) }
        #expect(error == .deltaNotBelowOneOverN(delta: 0.02, examples: 60))
        #expect(error?.description.contains("1e-03") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: workspace.directory.appendingPathComponent("loose").path))
        let same = try workspace.recipe(output: "same")
        #expect(throws: RunError.evalIsTrainData(path: workspace.train)) {
            try workspace.run(same, overrides: ["data.eval=\(workspace.train)"])
        }
        final class Lines: @unchecked Sendable { var all: [String] = [] }
        let lines = Lines()
        let overlapping = try workspace.recipe(output: "overlap")
        _ = try RecipeRunner(recipe: try Recipe.load(from: overlapping), resume: false) { lines.all.append($0) }.run()
        #expect(lines.all.contains("warning: 6 of 6 eval examples also occur in the training data; their eval scores are not held out"))
    }

    /// A run killed after logging steps past its last checkpoint logged them again on resume
    /// (seen: steps 11–15 twice); metrics.jsonl now holds each step exactly once (issue 12
    /// item 11).
    @Test func resumeLogsEachStepOnce() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        func steps(_ run: URL) throws -> [String] {
            let text = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            return try text.split(separator: "\n").map { line in
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                // a step's line has its loss; an evaluation's line its eval
                return "\(try #require(object["step"] as? Int))\(object["loss"] != nil ? "" : " eval")"
            }
        }
        _ = try workspace.run(try workspace.recipe(output: "whole"))
        let recipe = try workspace.recipe(output: "metrics")
        _ = try workspace.run(recipe)
        let run = workspace.directory.appendingPathComponent("metrics")
        // As if killed after logging step 6 but before its checkpoint: resume from step 3.
        try FileManager.default.removeItem(at: run.appendingPathComponent("step-6.h5"))
        try FileManager.default.removeItem(at: run.appendingPathComponent("final.h5"))
        _ = try workspace.run(recipe, resume: true)
        let uninterrupted = try steps(workspace.directory.appendingPathComponent("whole"))
        #expect(uninterrupted.filter { !$0.hasSuffix("eval") } == ["1", "2", "3", "4", "5", "6"], "\(uninterrupted)")
        #expect(try steps(run) == uninterrupted)
    }

    @Test func targetEpsilonIsNeverExceeded() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let summary = try workspace.run(try workspace.recipe(privacy: #"{"target_epsilon": 3.0, "accountant": "rdp"}"#))
        let epsilon = try #require(summary.epsilon)
        #expect(epsilon <= 3.0)
        #expect(epsilon > 2.9, "calibrated to within 0.1 of the target: \(epsilon)")
    }

    @Test func resumeGivesTheSameLedgerAndParameters() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let seeded = #"{"noise_multiplier": 1.1, "grouping": "layer-wise", "noise_seed": 7}"#
        let whole = try workspace.run(try workspace.recipe(privacy: seeded, output: "whole"))
        // the same recipe interrupted after step 3, then resumed
        let recipe = try workspace.recipe(privacy: seeded, output: "parts")
        let first = RecipeRunner(recipe: try Recipe.load(from: recipe), resume: false) { _ in }
        _ = try first.run()
        for step in [6] {  // simulate the interruption: drop the checkpoints after step 3
            try FileManager.default.removeItem(at: workspace.directory.appendingPathComponent("parts/step-\(step).h5"))
        }
        try FileManager.default.removeItem(at: workspace.directory.appendingPathComponent("parts/final.h5"))
        // resumed recomputing its activations (as after running out of memory): the recipe hash
        // leaves the key out, and the steps after the resume must still be bit for bit the same
        let resumed = try workspace.run(recipe, overrides: ["training.recompute_activations=true"], resume: true)
        #expect(resumed.steps == whole.steps)
        #expect(resumed.epsilon == whole.epsilon)
        let a = try Checkpoint.read(from: URL(fileURLWithPath: whole.finalCheckpoint))
        let b = try Checkpoint.read(from: URL(fileURLWithPath: resumed.finalCheckpoint))
        let ledgerA = try PrivacyLedger(json: try #require(a.privacyLedger))
        let ledgerB = try PrivacyLedger(json: try #require(b.privacyLedger))
        #expect(ledgerA.history == ledgerB.history)
        for (name, tensor) in a.adapters {
            #expect(b.adapters[name]?.values == tensor.values, "\(name) differs after resume")
        }
        #expect(ledgerA.noise == "seeded" && !ledgerA.privateRelease)
        // only that the run was seeded is recorded, never the seed
        #expect(!(try #require(a.privacyLedger)).contains("noise_seed"))
    }

    @Test func poissonBatchSizesHaveBinomialStatistics() throws {
        let sampler = PoissonSampler(datasetSize: 2000, sampleRate: 0.05)
        var source = NoiseSource.seeded(3)
        let sizes = (0..<400).map { _ in Double(sampler.sample(using: &source).count) }
        let mean = sizes.reduce(0, +) / Double(sizes.count)
        let variance = sizes.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(sizes.count - 1)
        // Binomial(2000, 0.05): mean 100, variance 95; the sample mean's standard error is ~0.49
        #expect(abs(mean - 100) < 2.5, "mean \(mean)")
        #expect(abs(variance - 95) / 95 < 0.25, "variance \(variance)")
    }

    @Test func emptyLogicalBatchStillAddsNoise() throws {
        let reference = try ReferenceModelTests.Reference("llama-gqa-lora")
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: 2, maxSequenceLength: 12)
        let grouping = try GroupingRegistry.builtIn.resolve(strategy: "all-layer", options: [:],
                                                            parameters: model.trainableParameterInfos, threshold: 1)
        let engine = try PrivateGradient(model: model, grouping: grouping, clipping: .abadi)
        model.zeroGradients()
        try engine.accumulate(TokenBatch(examples: []))
        var noise = NoiseSource.seeded(1)
        try engine.finishLogicalBatch(noiseMultiplier: 1, expectedBatchSize: 4, noise: &noise)
        let values = (0..<model.gradients.count).map { model.gradients.storage.base[$0] }
        #expect(values.filter { $0 != 0 }.count == values.count, "every coordinate is noised")
    }

    @Test func dataFormatsAndTemplates() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let tokenizer = try Tokenizer(contentsOf: Fixtures.url("tokenizer/tok.model"))
        let mixed = workspace.directory.appendingPathComponent("mixed.jsonl")
        try Data("""
            {"text": "plain text line"}
            {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}
            {"instruction": "Say hi.", "output": "hi"}
            {"messages": [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "hi there"}]}
            not json
            """.utf8).write(to: mixed)
        let recipe = try Recipe.load(from: try workspace.recipe(), overrides: ["data.train=\(mixed.path)", "data.on_malformed=skip"])
        let encoder = try ExampleEncoder(tokenizer: tokenizer)
        let data = try TrainingData.load(path: mixed.path, recipe: recipe.data, encoder: encoder)
        #expect(data.examples.count == 4)
        #expect(data.skippedLines == [5])
        #expect(data.examples[1].ids == [5, 6, 7])
        // response-only loss: the instruction example trains on "hi" (+ EOS) only
        let labelled = data.examples[2].labels!.filter { $0 != -100 }
        #expect(try tokenizer.decode(labelled.filter { $0 != tokenizer.eosId }) == "hi")
        // stop policy names the line
        let stop = try Recipe.load(from: try workspace.recipe(), overrides: ["data.train=\(mixed.path)"])
        #expect(throws: DataError.malformedLine(path: mixed.path, line: 5, reason: "not valid JSON")) {
            try TrainingData.load(path: mixed.path, recipe: stop.data, encoder: encoder)
        }
        // a forced format rejects the other shapes
        let forced = try Recipe.load(from: try workspace.recipe(), overrides: ["data.train=\(mixed.path)", "data.format=chat"])
        #expect(throws: DataError.self) { try TrainingData.load(path: mixed.path, recipe: forced.data, encoder: encoder) }
    }

    /// What a new user gets wrong: each a clear error, and no run directory left behind.
    @Test func badInputGivesClearErrorsAndNoPartialFiles() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let output = workspace.directory.appendingPathComponent("run")
        func failure(_ overrides: [String], privacy: String? = nil, contains text: String) throws {
            let url = privacy == nil ? try workspace.recipe() : try workspace.recipe(privacy: privacy!)
            do {
                _ = try workspace.run(url, overrides: overrides)
                Issue.record("expected an error containing \(text)")
            } catch {
                #expect(String(describing: error).contains(text), "\(error)")
            }
            #expect(!FileManager.default.fileExists(atPath: output.path), "no partial run directory for \(overrides)")
        }
        try failure(["model.checkpoint=/nonexistent/base.h5"], contains: "/nonexistent/base.h5")
        try failure(["data.train=/nonexistent/train.jsonl"], contains: "/nonexistent/train.jsonl")
        try failure(["adapter.targets=[\"q_proj\", \"c_attn\"]"], contains: "c_attn")
        try failure(["plugins=[\"/nonexistent/libplugin.so\"]"], contains: "grouping plugin /nonexistent/libplugin.so: no such file")
        try failure([], privacy: #"{"target_epsilon": 0.0001, "accountant": "rdp"}"#, contains: "0.0001")
        let empty = workspace.directory.appendingPathComponent("empty.jsonl")
        try Data("\n\n".utf8).write(to: empty)
        try failure(["data.train=\(empty.path)"], contains: "no usable examples")
        // malformed recipe JSON and unknown keys name the file / key
        let broken = workspace.directory.appendingPathComponent("broken.json")
        try Data("{\"name\": ".utf8).write(to: broken)
        #expect(throws: RecipeError.self) { try Recipe.load(from: broken) }
        do {
            _ = try Recipe.load(from: try workspace.recipe(), overrides: ["training.learnin_rate=1"])
            Issue.record("unknown key accepted")
        } catch {
            #expect(String(describing: error).contains("training.learnin_rate"))
        }
    }
}
