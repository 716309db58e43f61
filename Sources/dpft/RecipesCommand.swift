import ArgumentParser
import DPFT
import Foundation

/// An error of `dpft recipes` that the user can fix; the message says how.
struct RecipesError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `dpft recipes list|show|copy`: the built-in recipes, as torchtune's `tune ls` / `tune cp`.
struct RecipesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recipes",
        abstract: "The built-in recipes: list them, show one resolved, copy one to edit.",
        discussion: """
            Built-in recipes ship with dpft (PREFIX/share/dpft/recipes for an installed dpft, the \
            source tree's recipes/ for one under .build/). `dpft recipe NAME` runs one; `dpft \
            recipes copy NAME` writes a copy to edit, with its input paths made absolute so that it \
            runs from any directory.
            """,
        subcommands: [List.self, Show.self, Copy.self])

    static func assets() throws -> Assets {
        guard let assets = Assets.located() else {
            let places = Assets.currentExecutable.map { Assets.candidates(forExecutable: $0).map(\.path) } ?? []
            throw RecipesError("this dpft has no built-in recipes (looked in \(places.joined(separator: ", "))); "
                                  + "install it with `make install`, or run the one under the source tree's .build/")
        }
        return assets
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the built-in recipes: name, model, adapter, grouping, ε and what each is for.")

        func run() throws {
            let assets = try RecipesCommand.assets()
            var modelTypes: [String: String] = [:]  // checkpoint path → model_type, each file read once
            var rows = [["NAME", "MODEL", "ADAPTER", "GROUPING", "ε"]]
            var descriptions = [""]
            for name in assets.recipeNames {
                let recipe = try RecipeLocation(file: assets.recipeFile(named: name), builtInName: name).load()
                let checkpoint = recipe.model.checkpoint
                let file = URL(fileURLWithPath: checkpoint).lastPathComponent
                if modelTypes[checkpoint] == nil {
                    let type = (try? Checkpoint.read(from: URL(fileURLWithPath: checkpoint)))?.config.modelType.rawValue
                    modelTypes[checkpoint] = type.map { "\($0) (\(file))" } ?? "\(file): not made yet"
                }
                rows.append([name, modelTypes[checkpoint]!, Self.adapter(recipe.adapter),
                             Self.grouping(recipe.privacy), Self.epsilon(recipe.privacy)])
                descriptions.append(Self.oneLine(recipe.description ?? ""))
            }
            let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max()! }
            print("built-in recipes (\(assets.recipesDirectory.path)); run one with `dpft recipe NAME.json`:")
            for (row, description) in zip(rows, descriptions) {
                print(zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }
                    .joined(separator: "  ").trimmingCharacters(in: .whitespaces))
                if !description.isEmpty { print("    \(description)") }
            }
        }

        static func adapter(_ adapter: Recipe.AdapterSection) -> String {
            switch adapter {
            case .none: return "full"
            case .lora(let lora): return "LoRA r=\(lora.rank)"
            case .patterns(let patterns): return "patterns (\(patterns.count))"
            }
        }

        static func grouping(_ privacy: Recipe.PrivacySection?) -> String {
            guard let privacy else { return "-" }
            if let rules = privacy.rules { return "rules (\(URL(fileURLWithPath: rules).lastPathComponent))" }
            return privacy.grouping
        }

        static func epsilon(_ privacy: Recipe.PrivacySection?) -> String {
            guard let privacy else { return "non-private" }
            if let target = privacy.targetEpsilon { return String(format: "%g", target) }
            return String(format: "σ = %g", privacy.noiseMultiplier ?? 0)
        }

        /// The description's first sentence, cut at a word to at most 100 characters.
        static func oneLine(_ text: String) -> String {
            let sentence = text.range(of: ". ").map { String(text[..<$0.lowerBound]) + "." } ?? text
            guard sentence.count > 100 else { return sentence }
            let cut = sentence.prefix(99)
            return String(cut.lastIndex(of: " ").map { cut[..<$0] } ?? cut) + " …"
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a recipe resolved: every default filled in, every input path absolute.",
            discussion: "Standard output is the JSON alone; which file it came from goes to standard error.")

        @Argument(help: "A built-in recipe's name (or a recipe file).")
        var name: String

        @Option(name: .customLong("set"), help: "Override one key, e.g. --set training.epochs=2 (repeatable).")
        var overrides: [String] = []

        func run() throws {
            let location = try RecipeLocation.find(name, assets: Assets.located())
            FileHandle.standardError.write(Data((location.summary + "\n").utf8))
            print(try location.load(overrides: overrides).resolvedJSON)
        }
    }

    struct Copy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy a recipe to edit: resolved, with its input paths absolute so that it runs from any directory.",
            discussion: """
                DEST defaults to NAME.json in the current directory; a directory means DEST/NAME.json. \
                A copy under another file name takes that name as its "name" (and runs/<name> as its \
                output directory when the original used the default).
                """)

        @Argument(help: "A built-in recipe's name (or a recipe file).")
        var name: String

        @Argument(help: "Where to write the copy (default: ./NAME.json).")
        var destination: String?

        @Flag(help: "Replace DEST when it exists.")
        var force = false

        func run() throws {
            let location = try RecipeLocation.find(name, assets: Assets.located())
            var recipe = try location.load()
            let fileName = recipe.name + ".json"
            var target = URL(fileURLWithPath: destination ?? fileName)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: target.path, isDirectory: &isDirectory), isDirectory.boolValue {
                target = target.appendingPathComponent(fileName)
            }
            if FileManager.default.fileExists(atPath: target.path) && !force {
                throw RecipesError("\(target.relativePath) exists; give another DEST, or --force to replace it")
            }
            let newName = target.deletingPathExtension().lastPathComponent
            if newName != recipe.name {
                if recipe.output.directory == "runs/\(recipe.name)" { recipe.output.directory = "runs/\(newName)" }
                recipe.name = newName
            }
            try FileManager.default.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data((recipe.resolvedJSON + "\n").utf8).write(to: target, options: .atomic)
            print("copied \(location.summary) to \(target.relativePath)")
            print("its input paths are absolute; output.directory \"\(recipe.output.directory)\" is relative to where you run it")
            print("edit it, then: dpft recipe \(target.relativePath)")
        }
    }
}
