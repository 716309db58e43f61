import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import DPFT

/// `dpft sweep` (issue 17): the sweep file's grid and names, the summary's statistics, the
/// per-group clip statistics a run logs, and a 2×2 grid × 2 seeds run end to end by the dpft
/// executable, killed twice (one run alone, then the sweep with its run) and restarted.
@Suite(.serialized) struct SweepTests {
    typealias Workspace = RecipeRunnerTests.Workspace

    static func write(_ text: String, to url: URL) throws -> URL {
        try Data(text.utf8).write(to: url)
        return url
    }

    // MARK: The sweep file

    @Test func theGridExpandsInOrderWithStableNames() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let recipe = try workspace.recipe()
        let file = try Self.write("""
            {"recipe": "\(recipe.lastPathComponent)", "set": {"training.steps": 4},
             "grid": {"training.optimizer.learning_rate": [0.01, 0.02], "privacy.grouping_options": [{"per": "block"}, {}]},
             "seeds": [3, 5], "seed_keys": ["training.seed", "privacy.noise_seed"]}
            """, to: workspace.directory.appendingPathComponent("grid.json"))
        let spec = try SweepSpec(contentsOf: file, assets: nil)
        #expect(spec.recipe.file.path == recipe.path, "a recipe path is relative to the sweep file's folder")
        let runs = try spec.runs
        #expect(runs.map(\.name) == [
            "learning_rate-0.01_grouping_options-per_block_seed-3", "learning_rate-0.01_grouping_options-per_block_seed-5",
            "learning_rate-0.01_grouping_options-empty_seed-3", "learning_rate-0.01_grouping_options-empty_seed-5",
            "learning_rate-0.02_grouping_options-per_block_seed-3", "learning_rate-0.02_grouping_options-per_block_seed-5",
            "learning_rate-0.02_grouping_options-empty_seed-3", "learning_rate-0.02_grouping_options-empty_seed-5",
        ])
        #expect(runs[1].overrides.map(\.setArgument) == [
            "training.steps=4", "training.optimizer.learning_rate=0.01", #"privacy.grouping_options={"per":"block"}"#,
            "training.seed=5", "privacy.noise_seed=5",
        ])
        #expect(runs[1].label == #"training.optimizer.learning_rate=0.01, privacy.grouping_options={"per":"block"}"#)
        // a string value stays a string through --set, even one that reads as a number
        let parsed = try RecipeParsing.parseOverride(SweepSpec.Override(key: "name", value: .string("12")).setArgument)
        #expect(parsed.value == .string("12"))
    }

    @Test(arguments: [
        (#"{"recipe": "r.json", "seed": [1]}"#, #"seed: is not a sweep key (did you mean "seeds"?)"#),
        (#"{"recipe": "r.json", "grid": {"a.b": [1]}, "settings": [{}]}"#, #"give "grid" or "settings", not both"#),
        (#"{"recipe": "r.json", "set": {"output.directory": "x"}}"#, "sets output.directory"),
        (#"{"recipe": "r.json", "grid": {"a.b": []}}"#, "grid.a.b: is empty"),
        (#"{"recipe": "r.json", "seeds": [1, 1]}"#, "a seed is listed twice"),
        (#"{"recipe": "r.json", "seeds": [-1]}"#, "seeds[0]"),
    ])
    func badSweepFilesAreNamedErrors(text: String, expected: String) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        _ = try Self.write("{}", to: directory.appendingPathComponent("r.json"))
        let file = try Self.write(text, to: directory.appendingPathComponent("sweep.json"))
        let error = #expect(throws: SweepError.self) { try SweepSpec(contentsOf: file, assets: nil) }
        #expect(error?.description.contains(expected) == true, "\(String(describing: error))")
        #expect(error?.description.contains(file.path) == true)
    }

    @Test func settingsThatShareADirectoryNameAreRefused() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        _ = try Self.write("{}", to: directory.appendingPathComponent("r.json"))
        let file = try Self.write(#"{"recipe": "r.json", "settings": [{"data.train": "a/b"}, {"data.train": "a b"}]}"#,
                                  to: directory.appendingPathComponent("sweep.json"))
        let error = #expect(throws: SweepError.self) { _ = try SweepSpec(contentsOf: file, assets: nil).runs }
        #expect(error?.description.contains("runs/train-a_b") == true, "\(String(describing: error))")
    }

    /// Every sweep file shipped in recipes/sweeps loads, and every run's recipe (the built-in
    /// recipes found by name, as an installed dpft finds them) passes the checks `dpft sweep`
    /// makes before the first run.
    @Test func everyShippedSweepFileChecks() throws {
        let folder = Fixtures.repository.appendingPathComponent("recipes/sweeps")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".json") }.sorted()
        #expect(files == ["clipping-styles.json", "grouping-quick.json"])
        for name in files {
            let spec = try SweepSpec(contentsOf: folder.appendingPathComponent(name), assets: Assets(root: Fixtures.repository))
            let runs = try spec.runs
            #expect(Set(runs.map(\.name)).count == runs.count && runs.count >= 6, "\(name)")
            for run in runs { _ = try spec.recipe.loadCheckingInputs(overrides: run.overrides.map(\.setArgument)) }
        }
    }

    // MARK: Statistics

    /// Mean and sample standard deviation (n − 1) against values worked by hand.
    @Test func theSummaryIsMeanAndSampleStandardDeviationPerSetting() throws {
        func result(_ name: String, _ rate: Double, seed: UInt64, loss: Double, rss: Int) -> SweepResult {
            var row = SweepResult.blank(name: name)
            row.setting = [SweepSpec.Override(key: "training.optimizer.learning_rate", value: .number(JSONNumber(rate)))]
            row.seed = seed
            row.evalLoss = loss
            row.peakResidentBytes = rss
            return row
        }
        let results = [result("a1", 0.1, seed: 1, loss: 1, rss: 1 << 20), result("b1", 0.2, seed: 1, loss: 3, rss: 3 << 20),
                       result("a2", 0.1, seed: 2, loss: 2, rss: 2 << 20), result("a3", 0.1, seed: 3, loss: 4, rss: 6 << 20)]
        let summary = SweepSummary(results: results)
        #expect(summary.rows.map(\.label) == ["training.optimizer.learning_rate=0.1", "training.optimizer.learning_rate=0.2"])
        #expect(summary.rows.map(\.runs) == [3, 1])
        // 1, 2, 4: mean 7/3, variance ((4/3)² + (1/3)² + (5/3)²) / 2 = 42/18
        let loss = try #require(summary.rows[0].evalLoss)
        #expect(abs(loss.mean - 7.0 / 3) < 1e-12)
        #expect(abs(try #require(loss.standardDeviation) - (42.0 / 18).squareRoot()) < 1e-12)
        #expect(summary.rows[1].evalLoss == SweepSummary.Statistic([3]) && summary.rows[1].evalLoss?.standardDeviation == nil)
        #expect(summary.cells[0][2] == "2.3333 ± 1.5275" && summary.cells[0][8] == "3 ± 3")
        #expect(summary.cells[1][2] == "3.0000" && summary.cells[1][4] == "—")
        #expect(summary.table.contains("Each ε above is the privacy spent by that run alone"))
        let csv = SweepSummary.csv(results, keys: ["training.optimizer.learning_rate"]).split(separator: "\n")
        #expect(csv.count == 5 && csv[0].hasPrefix("name,seed,training.optimizer.learning_rate,grouping,steps,eval_loss"))
        #expect(csv[1].hasPrefix("a1,1,0.1,,0,1.0,"))
        #expect(SweepSummary.csvField(#"uniform {"groups":2}"#) == #""uniform {""groups"":2}""#)
    }

    /// Clip rate (n > R) and median per group against values worked by hand.
    @Test func clipStatisticsCountNormsAboveTheThresholdAndTakeTheMedian() throws {
        var statistics = ClipStatistics(groups: [ParameterGroup(name: "a", threshold: 1, parameters: []),
                                                 ParameterGroup(name: "b", threshold: 4, parameters: [])])
        #expect(statistics.clipRates == nil && statistics.metrics.isEmpty)
        statistics.add([[0.5, 5], [2, 1]])  // one micro-batch of two examples
        statistics.add([[1, 3], [3, .nan]])  // a norm of exactly R is not clipped; NaN is
        #expect(statistics.clipRates == [0.5, 0.5])
        #expect(statistics.medianNorms == [1.5, 4])  // (1 + 2) / 2; (3 + 5) / 2 with NaN sorted last
        let metrics = statistics.metrics
        #expect((metrics["clip_rate"] as? [String: Double]) == ["a": 0.5, "b": 0.5])
    }

    // MARK: End to end

    /// The dpft executable runs a 2×2 grid × 2 seeds of the tiny recipe. During the second run
    /// that run's process is killed (the sweep records it and goes on); during the fourth the
    /// sweep and its run are killed together. The same command again skips the two finished
    /// runs (their records untouched), resumes the two killed ones from their checkpoints — to
    /// bitwise the parameters of an uninterrupted run — and runs the rest; results.csv then
    /// has all eight runs with the accountant's ε.
    @Test(.timeLimit(.minutes(8)))
    func aGridSurvivesKilledRunsAndRestarts() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let sweep = workspace.directory.appendingPathComponent("sweep")
        let recipe = try workspace.recipe(privacy: #"{"noise_multiplier": 1.1, "accountant": "rdp"}"#)
        let file = try Self.write("""
            {"recipe": "\(recipe.path)",
             "set": {"training.steps": 24, "output.checkpoint_every": 3},
             "grid": {"training.optimizer.learning_rate": [0.01, 0.02], "privacy.grouping": ["layer-wise", "all-layer"]},
             "seeds": [1, 2], "seed_keys": ["training.seed", "privacy.noise_seed"]}
            """, to: workspace.directory.appendingPathComponent("grid.json"))
        let runs = try SweepSpec(contentsOf: file, assets: nil).runs
        func directory(_ index: Int) -> URL { sweep.appendingPathComponent("runs/\(runs[index].name)") }
        let command = ["sweep", file.path, "--output", sweep.path]

        let first = try CrashSoakTests.Run(command, log: workspace.directory.appendingPathComponent("first.log"))
        let killedAlone = try killRunDuringTraining(directory(1), of: first)
        let killedWithSweep = try killRunDuringTraining(directory(3), of: first, sweepToo: true)
        try #require(first.finish().status == SIGKILL)
        for pid in [killedAlone, killedWithSweep] { while Glibc.kill(pid, 0) == 0 { usleep(10_000) } }
        let records = try [0, 2].map { try Data(contentsOf: directory($0).appendingPathComponent("sweep-result.json")) }
        #expect(SweepAttempt.all(in: directory(1)).map(\.outcome) == ["killed by signal 9"])
        #expect(!FileManager.default.fileExists(atPath: directory(4).path), "the sweep died before the fifth run")

        let second = try CrashSoakTests.Run(command, log: workspace.directory.appendingPathComponent("second.log")).finish()
        try #require(second.status == 0, "\(second.output)")
        for index in [0, 2] { #expect(second.output.contains("[\(index + 1)/8] \(runs[index].name): finished before, skipped")) }
        for index in [1, 3] { #expect(second.output.contains("[\(index + 1)/8] \(runs[index].name): resuming from its last checkpoint")) }
        for index in 4..<8 { #expect(second.output.contains("[\(index + 1)/8] \(runs[index].name): running")) }
        #expect(try [0, 2].map { try Data(contentsOf: directory($0).appendingPathComponent("sweep-result.json")) } == records)
        #expect(SweepAttempt.all(in: directory(1)).map(\.start) == ["fresh", "resume"])
        #expect(SweepAttempt.all(in: directory(3)).map(\.start) == ["resume"])
        for index in [1, 3] { #expect(try CrashSoakTests.metricSteps(directory(index)).filter { !$0.hasSuffix("eval") } == (1...24).map { "\($0)" }) }
        try checkResumedRunMatchesAnUninterruptedOne(recipe, runs[1], resumed: directory(1), scratch: workspace.directory)
        try checkResults(in: sweep, runs: runs, output: second.output)

        // A changed sweep file is not mistaken for the finished runs.
        let changed = try String(contentsOf: file, encoding: .utf8).replacingOccurrences(of: #""training.steps": 24"#, with: #""training.steps": 25"#)
        _ = try Self.write(changed, to: file)
        let third = try CrashSoakTests.Run(command, log: workspace.directory.appendingPathComponent("third.log")).finish()
        #expect(third.status != 0 && third.output.contains("\(directory(0).path) finished with another recipe"), "\(third.output)")
    }

    /// Waits until the run in `directory` has a step checkpoint and no final one, then kills
    /// its process (and first the sweep, with `sweepToo`); returns the run's pid.
    private func killRunDuringTraining(_ directory: URL, of sweep: CrashSoakTests.Run, sweepToo: Bool = false) throws -> pid_t {
        let caught = sweep.wait {
            !RunDirectory.checkpoints(in: directory).isEmpty
                && !FileManager.default.fileExists(atPath: directory.appendingPathComponent("final.h5").path)
                && RunDirectoryLock.holder(of: directory) != nil
        }
        try #require(caught, "the sweep ended before \(directory.lastPathComponent) was mid-training")
        let pid = try #require(RunDirectoryLock.holder(of: directory)?.pid)
        try #require(pid != sweep.process.processIdentifier)
        if sweepToo { _ = sweep.kill() }
        _ = Glibc.kill(pid, SIGKILL)
        return pid
    }

    /// The resumed run's parameters against the same recipe trained in one piece, in this
    /// process: seeded batches and noise make them bitwise equal.
    private func checkResumedRunMatchesAnUninterruptedOne(_ recipe: URL, _ run: SweepRun, resumed: URL, scratch: URL) throws {
        let whole = scratch.appendingPathComponent("whole")
        let loaded = try Recipe.load(from: recipe, overrides: run.overrides.map(\.setArgument) + ["output.directory=\(whole.path)"])
        _ = try RecipeRunner(recipe: loaded) { _ in }.run()
        let expected = try RunnerTrustTests.trainable(whole.appendingPathComponent("final.h5"))
        let actual = try RunnerTrustTests.trainable(resumed.appendingPathComponent("final.h5"))
        #expect(actual == expected, "the resumed run differs from the uninterrupted one")
    }

    /// results.csv / results.jsonl: all eight runs in order, ε from the accountant, the final
    /// evaluation from each run's metrics, a peak RSS, clip statistics logged for every group.
    private func checkResults(in sweep: URL, runs: [SweepRun], output: String) throws {
        let csv = try String(contentsOf: sweep.appendingPathComponent("results.csv"), encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 9)
        #expect(csv.dropFirst().map { String($0.prefix { $0 != "," }) } == runs.map(\.name))
        let results = try ReportPage.sweepResults(sweep)
        let epsilon = try Accountant.rdp.epsilon(
            history: [MechanismSegment(noiseMultiplier: 1.1, sampleRate: 8.0 / 60.0, steps: 24)], delta: 1e-5).epsilon
        for result in results {
            let run = sweep.appendingPathComponent("runs/\(result.name)")
            #expect(result.steps == 24)
            #expect(abs(try #require(result.epsilon) - epsilon) <= 1e-12 * epsilon, "\(result.name)")
            let lines = try RunnerTrustTests.metricsLines(run)
            #expect(lines.last?["eval"] != nil)
            let final = try finalEvaluation(run)
            #expect(result.evalLoss == final.loss && result.exactMatch == final.accuracy, "\(result.name)")
            #expect(result.peakResidentBytes > 4 << 20 && result.peakResidentBytes < 64 << 30)
            let ledger = try PrivacyLedger(json: try #require(try Checkpoint.read(from: run.appendingPathComponent("final.h5")).privacyLedger))
            try checkClipStatistics(lines, groups: ledger.groups)
        }
        #expect(Set(results.map(\.grouping)) == ["layer-wise", "all-layer"])
        #expect(output.contains("mean ± standard deviation over seeds") && output.contains("by that run alone"))
        #expect(SweepSummary(results: results).rows.map(\.runs) == [2, 2, 2, 2])
    }

    /// The final evaluation in the last line of the run's metrics.jsonl, read with dpft's own
    /// JSON reader, which keeps each number's text and converts it with Swift's correctly
    /// rounded `Double(String)`: JSONSerialization keeps a 17-digit number such as
    /// 5.5295301874478655 as a decimal whose `doubleValue` can miss the written Double by an ulp.
    private func finalEvaluation(_ run: URL) throws -> (loss: Double?, accuracy: Double?) {
        let url = run.appendingPathComponent("metrics.jsonl")
        let line = try #require(try String(contentsOf: url, encoding: .utf8).split(separator: "\n").last)
        let evaluation = try JSONReader(parsing: line.utf8, source: url.path).member("eval")
        return (try evaluation.optionalMember("loss")?.double(), try evaluation.optionalMember("accuracy")?.double())
    }

    /// Every step's line names every group of the ledger; a median above the threshold means
    /// at least half the batch was clipped, one below it at most half.
    private func checkClipStatistics(_ lines: [[String: Any]], groups: [ParameterGroup]) throws {
        for line in lines where line["loss"] != nil {
            func numbers(_ value: Any?) throws -> [String: Double] {
                try #require(value as? [String: Any]).compactMapValues { ($0 as? NSNumber)?.doubleValue }
            }
            let rates = try numbers(line["clip_rate"]), medians = try numbers(line["median_norm"])
            #expect(Set(rates.keys) == Set(groups.map(\.name)) && Set(medians.keys) == Set(groups.map(\.name)))
            for group in groups {
                let rate = rates[group.name]!, median = medians[group.name]!
                #expect(rate >= 0 && rate <= 1)
                if median > group.threshold { #expect(rate >= 0.5) }
                if median < group.threshold { #expect(rate <= 0.5) }
            }
        }
    }
}

extension SweepResult {
    /// A result with nothing measured, for tests.
    static func blank(name: String) -> SweepResult {
        try! SweepResult(json: JSONReader(.object(["name": .string(name), "setting": .object([:]), "steps": .number(JSONNumber(0)),
                                                   "peak_rss_bytes": .number(JSONNumber(0)), "attempts": .number(JSONNumber(1)),
                                                   "wall_seconds": .number(JSONNumber(0))]), source: "test"))
    }
}
