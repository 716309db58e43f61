import Foundation
import Testing
@testable import DPFT

/// A `rules` grouping gets every `grouping_options` entry, not only the rule file: the recipe
/// runner and `dpft norms --recipe` once rebuilt the options as `{"file": …}` alone, so that
/// `allocation` and `thresholds` were dropped silently.
@Suite(.serialized) struct RulesGroupingOptionsTests {
    static let rules = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("recipes/rules/attention-vs-rest.json").path

    /// The two option sets under test and the thresholds R_k each gives (R = 1; the rule file
    /// itself says attention 0.8, rest 0.6, which is what dropping the options gave).
    static let cases: [(options: String, attention: Double, rest: Double)] = [
        (#"{"allocation": "uniform"}"#, 1 / 2.0.squareRoot(), 1 / 2.0.squareRoot()),
        (#"{"allocation": "explicit", "thresholds": {"attention": 0.5}}"#, 0.5, 0.6),
    ]

    /// A recipe of the runner tests' workspace with the rule file, `options`, and LoRA on an MLP
    /// module too (so that the group `rest` has members).
    static func recipe(_ workspace: RecipeRunnerTests.Workspace, options: String) throws -> URL {
        let url = try workspace.recipe(privacy: #"{"noise_multiplier": 1.1, "rules": "\#(rules)", "grouping_options": \#(options)}"#)
        let text = try String(contentsOf: url, encoding: .utf8)
            .replacingOccurrences(of: #""targets": ["q_proj", "v_proj"]"#, with: #""targets": ["q_proj", "v_proj", "gate_proj"]"#)
        #expect(text.contains("gate_proj"))
        try Data(text.utf8).write(to: url)
        return url
    }

    @Test func theStrategyOptionsAreTheGroupingOptionsPlusTheFile() throws {
        let privacy = Recipe.PrivacySection(noise: .noiseMultiplier(1), grouping: "rules",
                                            groupingOptions: ["allocation": "sqrt-size"], rules: "r.json")
        #expect(privacy.strategy.name == "rules")
        #expect(privacy.strategy.options == ["allocation": "sqrt-size", "file": "r.json"])
        let plain = Recipe.PrivacySection(noise: .noiseMultiplier(1), grouping: "layer-wise", groupingOptions: ["per": "block"])
        #expect(plain.strategy.name == "layer-wise" && plain.strategy.options == ["per": "block"])
    }

    @Test(arguments: 0..<2)
    func theRecipeRunnerHonoursTheOptions(index: Int) throws {
        let (options, attention, rest) = Self.cases[index]
        let workspace = try RecipeRunnerTests.Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let recipe = try Recipe.load(from: try Self.recipe(workspace, options: options), overrides: ["training.steps=1"])
        let summary = try RecipeRunner(recipe: recipe) { _ in }.run()
        let ledger = try PrivacyLedger(json: try #require(
            try Checkpoint.read(from: URL(fileURLWithPath: summary.finalCheckpoint)).privacyLedger))
        #expect(ledger.groups.map(\.name) == ["attention", "rest"])
        #expect(abs(ledger.groups[0].threshold - attention) <= 1e-12 && abs(ledger.groups[1].threshold - rest) <= 1e-12,
                "\(ledger.groups.map(\.threshold))")
    }

    @Test(arguments: 0..<2)
    func dpftNormsWithTheRecipeHonoursTheOptions(index: Int) throws {
        let (options, attention, rest) = Self.cases[index]
        let workspace = try RecipeRunnerTests.Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let url = try Self.recipe(workspace, options: options)
        let output = workspace.directory.appendingPathComponent("norms.h5")
        let result = try ExamplePlugin.dpft(["norms", "--recipe", url.path, "--examples", "4", "--output", output.path])
        #expect(result.status == 0, "\(result.output)")
        let file = try HDF5File.openForReading(output.path)
        let groups = try JSONDecoder().decode([ParameterGroup].self,
                                              from: Data(try #require(try file.attribute("groups")?.stringValue).utf8))
        #expect(groups.map(\.name) == ["attention", "rest"])
        #expect(abs(groups[0].threshold - attention) <= 1e-12 && abs(groups[1].threshold - rest) <= 1e-12,
                "\(groups.map(\.threshold))")
    }
}
