import Foundation
import Testing
@testable import DPFT

/// Which file `dpft recipe ARGUMENT` means, and how the paths inside a recipe resolve.
struct RecipeLocationTests {
    static let repository = Fixtures.repository
    static let assets = Assets(root: repository)

    /// A scratch directory holding `files` (relative path → text).
    static func directory(with files: [String: String]) throws -> URL {
        let directory = try makeTemporaryDirectory()
        for (path, text) in files {
            let url = directory.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        return directory
    }

    static let userRecipe = """
        {"model": {"checkpoint": "models/base.h5"}, "data": {"train": "data/train.jsonl", "eval": "/srv/eval.jsonl"},
         "privacy": {"target_epsilon": 8, "rules": "rules.json"}, "training": {"batch_size": 8}, "plugins": ["lib/p.so"]}
        """

    // MARK: Which file

    @Test(arguments: ["lora-layerwise", "lora-layerwise.json"])
    func aNameMeansTheBuiltInRecipe(argument: String) throws {
        let empty = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: empty) }
        let location = try RecipeLocation.find(argument, assets: Self.assets, currentDirectory: empty)
        #expect(location.builtInName == "lora-layerwise")
        #expect(location.file.path == Self.repository.appendingPathComponent("recipes/lora-layerwise.json").path)
        #expect(location.summary.hasPrefix("built-in recipe lora-layerwise ("))
    }

    @Test func aFileThatExistsWins() throws {
        let directory = try Self.directory(with: ["lora-layerwise.json": Self.userRecipe])
        defer { try? FileManager.default.removeItem(at: directory) }
        let location = try RecipeLocation.find("lora-layerwise.json", assets: Self.assets, currentDirectory: directory)
        #expect(location.builtInName == nil)
        #expect(location.file.path == directory.appendingPathComponent("lora-layerwise.json").path)
        #expect(location.summary == "recipe file lora-layerwise.json")
        // Without .json there is no such file, so the name means the built-in recipe.
        #expect(try RecipeLocation.find("lora-layerwise", assets: Self.assets, currentDirectory: directory).builtInName
                == "lora-layerwise")
    }

    @Test func anUnknownNameListsTheBuiltInNamesAndTheClosest() throws {
        let empty = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: empty) }
        let names = Self.assets.recipeNames
        #expect(names.contains("lora-layerwise") && names.contains("rules-example") && names.count >= 9)
        let error = #expect(throws: RecipeLocationError.self) {
            try RecipeLocation.find("lora-layerwse.json", assets: Self.assets, currentDirectory: empty)
        }
        #expect(error == .noSuchRecipe(argument: "lora-layerwse.json", isName: true, builtIn: names,
                                       suggestion: "lora-layerwise", assets: Self.repository.standardizedFileURL.path))
        let message = try #require(error).description
        #expect(message.contains("did you mean \"lora-layerwise\""))
        #expect(message.contains(names.joined(separator: ", ")))
        // A repository path typed elsewhere points at the built-in recipe of that name.
        let path = #expect(throws: RecipeLocationError.self) {
            try RecipeLocation.find("recipes/per-block.json", assets: Self.assets, currentDirectory: empty)
        }
        #expect(path?.description.hasPrefix("recipes/per-block.json: cannot read the recipe (no such file); did you mean \"per-block\"") == true)
        #expect(ClosestName.closest(to: "nothing-like-it", among: names) == nil)
    }

    @Test func withoutAssetsOnlyFilesWork() throws {
        let error = #expect(throws: RecipeLocationError.self) { try RecipeLocation.find("lora-layerwise", assets: nil) }
        #expect(error?.description.contains("make install") == true)
    }

    @Test func assetsAreFoundBesideTheBinary() throws {
        #expect(Assets.candidates(forExecutable: URL(fileURLWithPath: "/opt/x/bin/dpft")).map(\.path)
                == ["/opt/x/share/dpft"])
        #expect(Assets.candidates(forExecutable: URL(fileURLWithPath: "/src/dpft/.build/release/dpft")).map(\.path)
                == ["/src/dpft/.build/share/dpft", "/src/dpft"])
        // The test runner itself lives under .build/, so it finds the source tree.
        #expect(Assets.located()?.root.path == Self.repository.standardizedFileURL.path)
    }

    // MARK: Paths

    /// Built-in recipes: every input path is a shipped file, wherever dpft runs; the output
    /// directory stays relative to the current directory.
    @Test(arguments: ["lora-layerwise", "rules-example", "moe-expert", "chat-dp"])
    func builtInPathsResolveAgainstTheShippedAssets(name: String) throws {
        let elsewhere = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: elsewhere) }
        let location = try RecipeLocation.find(name, assets: Self.assets, currentDirectory: elsewhere)
        let recipe = try location.load(currentDirectory: elsewhere)
        let root = Self.repository.standardizedFileURL.path
        for (keyPath, path) in recipe.inputPaths() {
            #expect(path.hasPrefix(root + "/"), "\(name): \(keyPath) = \(path)")
            #expect(FileManager.default.fileExists(atPath: path), "\(name): \(keyPath) = \(path)")
        }
        #expect(recipe.data.train.hasPrefix(root + "/recipes/data/"))
        #expect(recipe.output.directory == "runs/\(name)")
        try recipe.checkInputsExist(original: try Recipe.load(from: location.file), source: name)
        if name == "rules-example" {
            let rules = root + "/recipes/rules/attention-vs-rest.json"
            #expect(recipe.privacy?.rules == rules && recipe.privacy?.groupingOptions["file"] == .string(rules))
        }
    }

    /// A user's recipe: paths against its own folder, absolute ones kept, `--set` paths against
    /// the current directory.
    @Test func userPathsResolveAgainstTheRecipeFolder() throws {
        let directory = try Self.directory(with: ["project/my.json": Self.userRecipe])
        defer { try? FileManager.default.removeItem(at: directory) }
        let project = directory.standardizedFileURL.path + "/project"
        let location = try RecipeLocation.find("project/my.json", assets: Self.assets, currentDirectory: directory)
        let recipe = try location.load(overrides: ["model.tokenizer=tok/t.model"], extraPlugins: ["/opt/q.so", "lib/r.so"],
                                       currentDirectory: directory)
        #expect(recipe.model.checkpoint == project + "/models/base.h5")
        #expect(recipe.model.tokenizer == directory.standardizedFileURL.path + "/tok/t.model")
        #expect(recipe.data.train == project + "/data/train.jsonl")
        #expect(recipe.data.eval == "/srv/eval.jsonl")
        #expect(recipe.privacy?.rules == project + "/rules.json")
        #expect(recipe.privacy?.groupingOptions["file"] == .string(project + "/rules.json"))
        #expect(recipe.plugins == [project + "/lib/p.so", "/opt/q.so", directory.standardizedFileURL.path + "/lib/r.so"])
        #expect(recipe.output.directory == "runs/my")
        // A whole section set on the command line is the command line's too.
        let overridden = try location.load(overrides: [#"data={"train": "t.jsonl"}"#], currentDirectory: directory)
        #expect(overridden.data.train == directory.standardizedFileURL.path + "/t.jsonl")

        let error = #expect(throws: RecipeLocationError.self) {
            try recipe.checkInputsExist(original: try Recipe.load(from: location.file), source: "project/my.json")
        }
        #expect(error == .missingInput(source: "project/my.json", keyPath: "model.checkpoint", written: "models/base.h5",
                                       resolved: project + "/models/base.h5"))
    }

    /// The hash covers the resolved, absolute paths: the same recipe named three ways — by
    /// name, by path, as a `recipes copy` — is one run for `--resume`; a relative path that
    /// would name other files from another folder is not.
    @Test func theHashFollowsTheResolvedPaths() throws {
        let elsewhere = try Self.directory(with: ["lora-layerwise.json": Self.userRecipe])
        defer { try? FileManager.default.removeItem(at: elsewhere) }
        let byName = try RecipeLocation.find("lora-layerwise", assets: Self.assets, currentDirectory: elsewhere).load()
        let byPath = try RecipeLocation.find("recipes/lora-layerwise.json", assets: Self.assets,
                                             currentDirectory: Self.repository).load(currentDirectory: Self.repository)
        #expect(byName.hash == byPath.hash)
        let copy = elsewhere.appendingPathComponent("copy/lora-layerwise.json")
        try FileManager.default.createDirectory(at: copy.deletingLastPathComponent(), withIntermediateDirectories: true)
        try byName.resolvedJSON.write(to: copy, atomically: true, encoding: .utf8)
        #expect(try RecipeLocation(file: copy).load(currentDirectory: elsewhere).hash == byName.hash)

        let original = try Recipe.load(from: Self.assets.recipeFile(named: "lora-layerwise"))
        #expect(original.hash != byName.hash)
    }
}
