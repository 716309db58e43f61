import Foundation
import Testing
@testable import DPFT

/// Examples/GroupingPlugin, built once per test run as a shared library (a debug build: it
/// compiles DPFT and its dependencies again, a few minutes on 2 cores; later runs reuse the
/// scratch directory `.build/plugin-example` and take seconds).
enum ExamplePlugin {
    static let repository = Fixtures.repository
    static let package = repository.appendingPathComponent("Examples/GroupingPlugin")
    static let scratch = repository.appendingPathComponent(".build/plugin-example")

    /// The built library's path, or why it could not be built.
    private static let built: Result<String, CommandFailure> = {
        let start = Date()
        let result = run(["swift", "build", "--package-path", package.path, "--scratch-path", scratch.path])
        let seconds = Date().timeIntervalSince(start)
        FileHandle.standardError.write(Data("ExamplePlugin: swift build of Examples/GroupingPlugin took \(String(format: "%.1f", seconds)) s\n".utf8))
        guard result.status == 0 else {
            return .failure(CommandFailure(command: "swift build --package-path Examples/GroupingPlugin", output: result.output))
        }
        let library = scratch.appendingPathComponent("debug/libGroupingPlugin.so").path
        guard FileManager.default.fileExists(atPath: library) else {
            return .failure(CommandFailure(command: "swift build", output: "built, but \(library) is missing"))
        }
        return .success(library)
    }()

    /// The path of libGroupingPlugin.so, building it on first use.
    static func library() throws -> String { try built.get() }

    /// The `dpft` executable `swift build` / `swift test` left beside the test bundle.
    static func dpft() throws -> URL {
        let candidates = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent(),
                          URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
            .map { $0.appendingPathComponent("dpft") }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw CommandFailure(command: "locating dpft", output: "no dpft executable in \(candidates.map(\.path)); run `swift build` first")
        }
        return found
    }

    struct CommandFailure: Error, CustomStringConvertible {
        var command: String
        var output: String
        var description: String { "\(command) failed:\n\(output.suffix(4000))" }
    }

    /// Runs `arguments` through /usr/bin/env; standard output and error together.
    static func run(_ arguments: [String], executable: URL = URL(fileURLWithPath: "/usr/bin/env"),
                    directory: URL? = nil) -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do { try process.run() } catch { return (-1, "cannot start \(executable.path): \(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()  // before waiting: the pipe must not fill up
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Runs the dpft executable.
    static func dpft(_ arguments: [String], directory: URL? = nil) throws -> (status: Int32, output: String) {
        run(arguments, executable: try dpft(), directory: directory)
    }
}

@Suite(.serialized) struct GroupingPluginTests {
    /// The tiny GPT-2 of recipes/models: 28 tensors, 124,672 parameters.
    static func tinyConfig() throws -> ModelConfig {
        try ModelConfig(contentsOf: ExamplePlugin.repository.appendingPathComponent("recipes/models/gpt2-tiny.json"))
    }

    // MARK: The example plugin, end to end

    @Test func dpftListsThePluginStrategyWithItsOrigin() throws {
        let library = try ExamplePlugin.library()
        let result = try ExamplePlugin.dpft(["plugins", "list", "--json", "--plugin", library])
        #expect(result.status == 0, "\(result.output)")
        struct Listing: Decodable {
            struct Strategy: Decodable { var name: String; var origin: String }
            var strategies: [Strategy]
        }
        let listing = try JSONDecoder().decode(Listing.self, from: Data(result.output.utf8))
        let strategy = try #require(listing.strategies.first { $0.name == "param-budget" })
        #expect(strategy.origin == "plugin \(library)")
        #expect(listing.strategies.first { $0.name == "all-layer" }?.origin == "built-in")

        let text = try ExamplePlugin.dpft(["plugins", "list", "--plugin", library])
        #expect(text.output.contains("param-budget"))
        #expect(text.output.contains("budget: integer (required)"))
    }

    /// `dpft norms` with the plugin's strategy: its groups partition the tensors, so per example
    /// the squared group norms sum to the squared norm of the whole gradient (all-layer).
    @Test func dpftNormsWithThePluginStrategyPartitionsTheGradientNorm() throws {
        let library = try ExamplePlugin.library()
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let checkpoint = directory.appendingPathComponent("gpt2-tiny.h5")
        try Checkpoint.initialized(config: try Self.tinyConfig(), seed: 1).write(to: checkpoint)
        let data = directory.appendingPathComponent("ids.jsonl")
        try """
            {"input_ids": [5, 17, 99, 3, 42, 8]}
            {"input_ids": [1, 200, 13, 77, 9, 100, 101, 5]}
            {"input_ids": [12, 250, 31]}
            {"input_ids": [7, 7, 7, 7, 60, 61, 62], "labels": [-100, -100, 7, 7, 60, 61, 62]}
            """.write(to: data, atomically: true, encoding: .utf8)

        func norms(_ grouping: [String], output: String) throws -> (norms: Tensor, groups: [ParameterGroup]) {
            let url = directory.appendingPathComponent(output)
            let result = try ExamplePlugin.dpft(["norms", checkpoint.path, "--data", data.path, "--examples", "4",
                                                 "--output", url.path] + grouping)
            #expect(result.status == 0, "\(result.output)")
            let file = try HDF5File.openForReading(url.path)
            let groups = try JSONDecoder().decode([ParameterGroup].self,
                                                  from: Data(try #require(try file.attribute("groups")?.stringValue).utf8))
            return (try file.readTensor(at: "/per_sample_norms"), groups)
        }
        let budget = 30_000
        let packed = try norms(["--grouping", "param-budget", "--grouping-options", "{\"budget\": \(budget)}",
                                "--plugin", library], output: "packed.h5")
        let whole = try norms(["--grouping", "all-layer"], output: "all.h5")

        // The groups: consecutive runs of the tensors in forward order, each within the budget
        // unless it is one tensor larger than it.
        let infos = try Self.tinyConfig().trainableParameterInfos(lora: nil)
        let size = Dictionary(uniqueKeysWithValues: infos.map { ($0.name, $0.count) })
        #expect(packed.groups.flatMap(\.parameters) == infos.map(\.name))
        #expect(packed.groups.map(\.name) == (0..<packed.groups.count).map { "part.\($0)" })
        #expect(packed.groups.count > 2)
        for group in packed.groups {
            let total = group.parameters.reduce(0) { $0 + size[$1]! }
            #expect(total <= budget || group.parameters.count == 1, "\(group.name) holds \(total) parameters")
        }

        // Σ_k n_ik² = n_i² per example (float32 norms: relative tolerance 1e-4).
        let K = packed.groups.count
        #expect(packed.norms.shape == [4, K])
        #expect(whole.norms.shape == [4, 1])
        for i in 0..<4 {
            let sumOfSquares = (0..<K).reduce(0.0) { $0 + pow(Double(packed.norms.element([i, $1])), 2) }
            let allLayer = pow(Double(whole.norms.element([i, 0])), 2)
            #expect(allLayer > 0)
            #expect(abs(sumOfSquares - allLayer) <= 1e-4 * allLayer, "example \(i): \(sumOfSquares) vs \(allLayer)")
        }
    }

    /// A recipe naming the plugin trains with its strategy, and its ledger records the groups.
    @Test func aRecipeLoadsItsPluginsAndTrainsWithTheStrategy() throws {
        let library = try ExamplePlugin.library()
        let workspace = try RecipeRunnerTests.Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let url = try workspace.recipe(privacy: #"{"noise_multiplier": 1.1, "grouping": "param-budget", "grouping_options": {"budget": 100}}"#)
        let recipe = try Recipe.load(from: url, overrides: ["training.steps=1", "plugins=[\"\(library)\"]"])
        #expect(recipe.resolvedJSON.contains(library), "the resolved recipe (and so its hash) names the plugin")
        var lines: [String] = []
        let summary = try RecipeRunner(recipe: recipe) { lines.append($0) }.run()
        #expect(summary.steps == 1)
        #expect(lines.contains("plugin \(library): param-budget"))
        let ledger = try #require(try Checkpoint.read(from: URL(fileURLWithPath: summary.finalCheckpoint)).privacyLedger)
        #expect(ledger.contains("param-budget"))
        #expect(ledger.contains("part.1"))

        // Without the plugin the strategy is unknown, and the message says where strategies come from.
        #expect(throws: GroupingError.self) {
            try RecipeRunner(recipe: try Recipe.load(from: url, overrides: ["training.steps=1"])) { _ in }.run()
        }
    }

    @Test func dpftReportsALoadErrorClearly() throws {
        let result = try ExamplePlugin.dpft(["plugins", "list", "--plugin", "no/such/libplugin.so"])
        #expect(result.status != 0)
        #expect(result.output.contains("grouping plugin no/such/libplugin.so: no such file"))
    }

    // MARK: Loading in this process

    @Test func loadRegistersTheStrategyWithOriginPlugin() throws {
        let library = try ExamplePlugin.library()
        var registry = GroupingRegistry.builtIn
        let names = try GroupingPluginLoader.load(library, into: &registry)
        #expect(names == ["param-budget"])
        #expect(registry.names == GroupingRegistry.builtIn.names + ["param-budget"])
        let entry = try #require(registry.entries.last)
        #expect(entry.origin == .plugin(path: library))
        #expect(entry.strategy.options.map(\.name) == ["budget"])
        #expect(entry.strategy.options.first?.isRequired == true)
        #expect(entry.strategy.options.first?.type == .integer)

        // A budget of one tensor's size or less: every tensor alone.
        let infos = try Self.tinyConfig().trainableParameterInfos(lora: nil)
        let grouping = try registry.resolve(strategy: "param-budget", options: ["budget": 1], parameters: infos, threshold: 1)
        #expect(grouping.groups.map(\.parameters) == infos.map { [$0.name] })
        #expect(grouping.strategy == "param-budget")

        // The registry still checks options before the plugin sees them.
        #expect(throws: GroupingError.missingOption(strategy: "param-budget", option: "budget")) {
            try registry.resolve(strategy: "param-budget", options: [:], parameters: infos, threshold: 1)
        }
    }

    @Test func errorsThrownByThePluginStrategySurfaceWithItsMessage() throws {
        let library = try ExamplePlugin.library()
        var registry = GroupingRegistry.builtIn
        try GroupingPluginLoader.load(library, into: &registry)
        let infos = try Self.tinyConfig().trainableParameterInfos(lora: nil)
        do {
            _ = try registry.resolve(strategy: "param-budget", options: ["budget": 0], parameters: infos, threshold: 1)
            Issue.record("budget 0 was accepted")
        } catch let error as GroupingPluginError {
            guard case .strategyFailed(let path, let strategy, let message) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(path == library && strategy == "param-budget")
            #expect(message == "grouping option `budget` of `param-budget` is 0; expected a whole number ≥ 1.")
        }
        // Tensors of unknown size (LoRA shapes before a rank is known) are the plugin's own error.
        let unsized = try Self.tinyConfig().parameterInfos(adapters: Self.tinyConfig().adapterSpecs(
            for: LoRAConfig(rank: 2, alpha: 2, targets: ["c_attn"]))).filter { $0.kind == .loraA }
        #expect(throws: GroupingPluginError.strategyFailed(
            path: library, strategy: "param-budget",
            message: "tensor `\(unsized[0].name)` has an unknown (zero) size, so it cannot be packed by parameter count")) {
            try registry.resolve(strategy: "param-budget", options: ["budget": 100], parameters: unsized, threshold: 1)
        }
    }

    // MARK: Load errors

    @Test func aMissingFileIsNamed() throws {
        var registry = GroupingRegistry.builtIn
        #expect(throws: GroupingPluginError.fileNotFound(path: "/nonexistent/libplugin.so")) {
            try GroupingPluginLoader.load("/nonexistent/libplugin.so", into: &registry)
        }
        #expect(registry.names == GroupingRegistry.builtIn.names)
    }

    @Test func aFileThatIsNotASharedLibraryGivesTheLoadersReason() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("libtext.so").path
        try "not a library\n".write(toFile: path, atomically: true, encoding: .utf8)
        var registry = GroupingRegistry.builtIn
        do {
            try GroupingPluginLoader.load(path, into: &registry)
            Issue.record("a text file loaded")
        } catch let error as GroupingPluginError {
            guard case .cannotOpen(let named, let reason) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(named == path)
            #expect(reason.contains(path), "dlerror() names the file: \(reason)")
        }
    }

    /// A real shared library (built here from C) that exports a near miss of the entry point.
    @Test func aLibraryWithoutTheEntryPointIsNotAPlugin() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = directory.appendingPathComponent("other.c")
        try "int dpft_plugin_registr(void *host) { return 0; }\n".write(to: source, atomically: true, encoding: .utf8)
        let library = directory.appendingPathComponent("libother.so").path
        let build = ExamplePlugin.run(["clang", "-shared", "-fPIC", "-o", library, source.path])
        try #require(build.status == 0, "clang: \(build.output)")

        var registry = GroupingRegistry.builtIn
        #expect(throws: GroupingPluginError.missingEntryPoint(path: library, symbol: "dpft_plugin_register")) {
            try GroupingPluginLoader.load(library, into: &registry)
        }
        #expect(GroupingPluginError.missingEntryPoint(path: library, symbol: "dpft_plugin_register").description
                .contains("does not export `dpft_plugin_register`"))
    }

    /// The example plugin, loaded by a host that announces another DPFT version or plugin API:
    /// the plugin refuses (its own check) and the error names both sides' versions.
    @Test func anIncompatibleVersionNamesBothAndRegistersNothing() throws {
        let library = try ExamplePlugin.library()
        var registry = GroupingRegistry.builtIn
        let expected = GroupingPluginError.versionMismatch(path: library, pluginDPFT: DPFTVersion.current,
                                                           pluginAPI: GroupingPlugin.apiVersion,
                                                           hostDPFT: "0.0.0-older", hostAPI: GroupingPlugin.apiVersion)
        #expect(throws: expected) {
            try GroupingPluginLoader.load(library, into: &registry, dpftVersion: "0.0.0-older")
        }
        #expect(expected.description == "grouping plugin \(library) was built against DPFT \(DPFTVersion.current) "
                + "(plugin API \(GroupingPlugin.apiVersion)), but this dpft is DPFT 0.0.0-older "
                + "(plugin API \(GroupingPlugin.apiVersion)); rebuild the plugin against this dpft.")
        #expect(throws: GroupingPluginError.versionMismatch(path: library, pluginDPFT: DPFTVersion.current,
                                                            pluginAPI: GroupingPlugin.apiVersion,
                                                            hostDPFT: DPFTVersion.current, hostAPI: 99)) {
            try GroupingPluginLoader.load(library, into: &registry, apiVersion: 99)
        }
        #expect(registry.names == GroupingRegistry.builtIn.names)
    }

    @Test func aStrategyNameAlreadyTakenNamesThePluginAndTheExistingOrigin() throws {
        let library = try ExamplePlugin.library()
        var registry = GroupingRegistry.builtIn
        try GroupingPluginLoader.load(library, into: &registry)
        let error = GroupingPluginError.rejected(
            path: library, reason: .duplicateStrategy("param-budget", registeredBy: "plugin \(library)"))
        #expect(throws: error) {
            try GroupingPluginLoader.load(library, into: &registry)
        }
        #expect(error.description == "grouping plugin \(library): a grouping strategy called `param-budget` is already "
                + "registered (plugin \(library)); give the new one another name.")
        #expect(registry.names.filter { $0 == "param-budget" }.count == 1)

        // A name a built-in strategy has.
        var taken = GroupingRegistry()
        try taken.register(RenamedStrategy(name: "param-budget"))
        #expect(throws: GroupingPluginError.rejected(
            path: library, reason: .duplicateStrategy("param-budget", registeredBy: "built-in"))) {
            try GroupingPluginLoader.load(library, into: &taken)
        }

        // The same library named twice (here through `..`) is loaded once.
        let roundabout = URL(fileURLWithPath: library).deletingLastPathComponent()
            .appendingPathComponent("../debug/libGroupingPlugin.so").path
        let both = try GroupingPluginLoader.registry(plugins: [library, roundabout])
        #expect(both.names == GroupingRegistry.builtIn.names + ["param-budget"])
    }

    private struct RenamedStrategy: GroupingStrategy {
        var name: String
        var summary = "a stand-in"
        func groups(for parameters: [ParameterInfo], options: GroupingOptions) throws -> [GroupDraft] {
            [GroupDraft(name: "all", parameters: parameters.map(\.name))]
        }
    }
}
