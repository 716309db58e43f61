import Foundation
import Testing
@testable import DPFT

/// The recipe runner's privacy promises, checked on what a run writes (issue 12): no release
/// holds the noise seed, a diverging run stops with its privacy counted, the ε logged for a
/// step is that step's, resume continues from its checkpoint, and the budget stop stops.
@Suite(.serialized) struct RunnerTrustTests {
    typealias Workspace = RecipeRunnerTests.Workspace

    static func metricsLines(_ run: URL) throws -> [[String: Any]] {
        let text = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    static func trainable(_ url: URL) throws -> [String: [Float]] {
        let checkpoint = try Checkpoint.read(from: url)
        return checkpoint.adapters.mapValues { Array(UnsafeBufferPointer(start: $0.storage.base + $0.offset, count: $0.count)) }
    }

    /// Every file a seeded run writes — checkpoints, export, ledger — is searched for the seed in
    /// decimal, in hex and as 8 bytes of either order; only the run directory's own copy of the
    /// recipe (not a release) may hold it. The ledger's recipe hash is the same for another seed.
    @Test func noReleasedFileHoldsTheNoiseSeed() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let seed: UInt64 = 0x1F2E_3D4C_5B6A_7988
        let recipe = try workspace.recipe(privacy: #"{"noise_multiplier": 1.1, "noise_seed": \#(seed)}"#, output: "seeded")
        let overrides = [#"output.export={"format": "safetensors", "merge_lora": true}"#]
        let summary = try workspace.run(recipe, overrides: overrides)
        let run = workspace.directory.appendingPathComponent("seeded")
        let patterns = [Data(String(seed).utf8), Data(String(seed, radix: 16).utf8), Data(String(seed, radix: 16, uppercase: true).utf8),
                        withUnsafeBytes(of: seed.littleEndian) { Data($0) }, withUnsafeBytes(of: seed.bigEndian) { Data($0) }]
        var searched: [String] = []
        let files = FileManager.default.enumerator(at: run, includingPropertiesForKeys: [.isRegularFileKey])!
        for case let url as URL in files where (try url.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true {
            let bytes = try Data(contentsOf: url)
            let holdsSeed = patterns.contains { bytes.range(of: $0) != nil }
            if url.lastPathComponent == "recipe.json" && url.deletingLastPathComponent().lastPathComponent == "seeded" {
                #expect(holdsSeed, "the run directory's recipe.json is the data owner's copy of the recipe")
            } else {
                #expect(!holdsSeed, "\(url.path) holds the noise seed")
                searched.append(url.lastPathComponent)
            }
        }
        #expect(searched.contains("final.h5") && searched.contains("step-3.h5") && searched.contains("privacy_ledger.json"),
                "\(searched)")
        let ledger = try PrivacyLedger(json: try #require(try Checkpoint.read(from: URL(fileURLWithPath: summary.finalCheckpoint)).privacyLedger))
        let otherSeed = try Recipe.load(from: recipe, overrides: overrides + ["privacy.noise_seed=5"])
        #expect(ledger.recipeHash == otherSeed.hash)
        #expect(!ledger.privateRelease && ledger.noise == "seeded")
    }

    /// A learning rate of 10³⁰ overflows the model within a step or two. The run stops with an
    /// error naming the step; `privacy-ledger.json` counts every step taken (the diverged one
    /// too); the checkpoints written before it load; no `final.h5` is written.
    @Test func aDivergingRunStopsAtTheStepWithItsPrivacyCounted() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let recipe = try workspace.recipe(output: "diverged")
        let run = workspace.directory.appendingPathComponent("diverged")
        let error = #expect(throws: RunError.self) {
            try workspace.run(recipe, overrides: ["training.optimizer.name=sgd", "training.optimizer.learning_rate=1e30",
                                                  "output.checkpoint_every=1"])
        }
        guard case .diverged(let step, let cause, let lastCheckpoint, let ledgerPath, let epsilon) = error else {
            Issue.record("expected a divergence, got \(String(describing: error))")
            return
        }
        #expect(step < 6, "\(cause)")
        let ledger = try PrivacyLedger(json: String(contentsOfFile: try #require(ledgerPath), encoding: .utf8))
        #expect(ledger.steps == step)
        let expected = try Accountant.prv.epsilon(
            history: [MechanismSegment(noiseMultiplier: 1.1, sampleRate: 8.0 / 60.0, steps: step)], delta: 1e-5)
        #expect(epsilon == expected.epsilon && ledger.epsilon == expected.epsilon)
        #expect(error?.description.contains("training diverged at step \(step)") == true)
        let checkpoints = RunDirectory.checkpoints(in: run)
        #expect(checkpoints.map(\.step) == Array(1..<step).suffix(checkpoints.count))
        #expect(lastCheckpoint == checkpoints.last?.url.path)
        for checkpoint in checkpoints { _ = try Checkpoint.read(from: checkpoint.url) }
        #expect(!FileManager.default.fileExists(atPath: run.appendingPathComponent("final.h5").path))
        let logged = try Self.metricsLines(run).compactMap { $0["loss"] != nil ? $0["step"] as? Int : nil }
        #expect(logged == Array(1..<step))
    }

    /// The ε a metrics line carries is the accountant's ε after exactly that many steps (it
    /// lagged by up to 9 steps). RDP is cheap and logged every step; PRV at least at the
    /// checkpoints, where it equals the checkpoint's ledger.
    @Test func theLoggedEpsilonIsTheEpsilonOfItsStep() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        for accountant in [Accountant.rdp, .prv] {
            let recipe = try workspace.recipe(privacy: #"{"noise_multiplier": 1.1, "accountant": "\#(accountant.rawValue)"}"#,
                                              output: accountant.rawValue)
            _ = try workspace.run(recipe)
            let run = workspace.directory.appendingPathComponent(accountant.rawValue)
            var logged: [Int: Double] = [:]
            for line in try Self.metricsLines(run) where line["loss"] != nil {
                guard let step = line["step"] as? Int else { continue }
                if let epsilon = line["epsilon"] as? Double { logged[step] = epsilon }
            }
            for (step, epsilon) in logged {
                let expected = try accountant.epsilon(
                    history: [MechanismSegment(noiseMultiplier: 1.1, sampleRate: 8.0 / 60.0, steps: step)], delta: 1e-5)
                // metrics.jsonl's writer (JSONSerialization) keeps 16 significant digits
                #expect(abs(epsilon - expected.epsilon) <= 1e-15 * expected.epsilon,
                        "\(accountant) step \(step): logged \(epsilon), spent \(expected.epsilon)")
            }
            if accountant == .rdp { #expect(logged.keys.sorted() == Array(1...6)) }
            for step in [3, 6] {
                let ledger = try PrivacyLedger(json: try #require(
                    try Checkpoint.read(from: run.appendingPathComponent("step-\(step).h5")).privacyLedger))
                let loggedEpsilon = try #require(logged[step], "\(accountant) step \(step) has no ε")
                #expect(abs(loggedEpsilon - ledger.epsilon) <= 1e-15 * ledger.epsilon, "\(accountant) step \(step)")
            }
        }
    }

    /// `--resume` continues from the checkpoint's parameters: resuming from an untouched
    /// step-3.h5 gives the uninterrupted run's parameters bitwise (seeded noise), resuming from
    /// one whose adapter was shifted does not — a resume that reran from step 0 would give the
    /// uninterrupted parameters both times.
    @Test func resumeContinuesFromTheCheckpointsParameters() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let privacy = #"{"noise_multiplier": 1.1, "noise_seed": 21}"#
        let whole = try workspace.run(try workspace.recipe(privacy: privacy, output: "whole"))
        let expected = try Self.trainable(URL(fileURLWithPath: whole.finalCheckpoint))
        for shift: Float in [0, 0.25] {
            let recipe = try workspace.recipe(privacy: privacy, output: "resumed-\(shift)")
            _ = try workspace.run(recipe)
            let run = workspace.directory.appendingPathComponent("resumed-\(shift)")
            for name in ["step-6.h5", "final.h5"] { try FileManager.default.removeItem(at: run.appendingPathComponent(name)) }
            let stepThree = run.appendingPathComponent("step-3.h5")
            var checkpoint = try Checkpoint.read(from: stepThree)
            let name = try #require(checkpoint.adapters.keys.sorted().first)
            let tensor = checkpoint.adapters[name]!
            for i in 0..<tensor.count { tensor.storage.base[tensor.offset + i] += shift }
            checkpoint.adapters[name] = tensor
            try checkpoint.write(to: stepThree)
            let resumed = try workspace.run(recipe, resume: true)
            let parameters = try Self.trainable(URL(fileURLWithPath: resumed.finalCheckpoint))
            if shift == 0 {
                #expect(parameters == expected, "an untouched resume gives the uninterrupted parameters")
            } else {
                #expect(parameters != expected, "the resume ignored its checkpoint's parameters")
            }
        }
    }

    /// The budget stop: a resumed history that already spent one step more than the run's
    /// own leaves room for only 2 of the 3 remaining steps at the target ε; the run stops
    /// after step 5 with ε ≤ target, and its ledger counts all 6 steps spent.
    @Test func theBudgetStopEndsTheRunBeforeTheTarget() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let recipe = try workspace.recipe(privacy: #"{"target_epsilon": 2, "accountant": "rdp"}"#, output: "budget")
        _ = try workspace.run(recipe)
        let run = workspace.directory.appendingPathComponent("budget")
        for name in ["step-6.h5", "final.h5"] { try FileManager.default.removeItem(at: run.appendingPathComponent(name)) }
        let stepThree = run.appendingPathComponent("step-3.h5")
        var checkpoint = try Checkpoint.read(from: stepThree)
        var state = try JSONDecoder().decode(RunState.self, from: Data(try #require(checkpoint.trainingState).utf8))
        state.history[0].steps += 1
        checkpoint.trainingState = try state.json()
        try checkpoint.write(to: stepThree)
        final class Lines: @unchecked Sendable { var all: [String] = [] }
        let lines = Lines()
        let summary = try RecipeRunner(recipe: try Recipe.load(from: recipe), resume: true) { lines.all.append($0) }.run()
        #expect(lines.all.contains("note: only 2 more steps fit in ε = 2.0; stopping at step 5 of 6"), "\(lines.all)")
        #expect(summary.steps == 5)
        let ledger = try PrivacyLedger(json: try #require(try Checkpoint.read(from: URL(fileURLWithPath: summary.finalCheckpoint)).privacyLedger))
        #expect(ledger.steps == 6 && ledger.epsilon <= 2, "\(ledger.steps) steps, ε = \(ledger.epsilon)")
    }
}
