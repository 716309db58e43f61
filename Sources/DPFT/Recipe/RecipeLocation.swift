import Foundation

/// Which recipe file a `dpft recipe ARGUMENT` means, and the rule for the paths inside it.
///
/// **Which file.** A file at `ARGUMENT` (relative to the current directory) always wins. Else a
/// bare name, `NAME` or `NAME.json`, means the built-in recipe `recipes/NAME.json` of the
/// shipped assets (`Assets`). Anything else is an error listing the built-in names and the
/// closest one.
///
/// **Paths inside a recipe** (`model.checkpoint`, `model.tokenizer`, `data.train`, `data.eval`,
/// `privacy.rules`, the strategy's path options such as `grouping_options.file`, `plugins`) are
/// relative to the directory of the recipe file that holds them — for a built-in recipe, a
/// directory of the shipped assets, so `"../checkpoints/base.h5"` is the shipped base model
/// wherever dpft runs. Paths given with `--set` are relative to the current directory, like any
/// path on a command line. `output.directory` stays relative to the current directory: a run
/// writes where the user runs it.
public struct RecipeLocation: Sendable, Equatable {
    /// The recipe file.
    public let file: URL
    /// The built-in recipe's name when the argument was found by name, nil for a file.
    public let builtInName: String?

    public init(file: URL, builtInName: String? = nil) {
        self.file = file
        self.builtInName = builtInName
    }

    /// What is run, for the first line of output: `built-in recipe lora-layerwise
    /// (/usr/local/share/dpft/recipes/lora-layerwise.json)` or `recipe file my.json`.
    public var summary: String {
        if let builtInName { return "built-in recipe \(builtInName) (\(file.path))" }
        return "recipe file \(file.relativePath)"
    }

    /// The recipe `argument` means (see the type's documentation). `assets` nil means a binary
    /// without shipped assets: only files work.
    public static func find(_ argument: String, assets: Assets?,
                            currentDirectory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)) throws -> RecipeLocation {
        let candidate = URL(fileURLWithPath: argument, relativeTo: URL(fileURLWithPath: currentDirectory.path, isDirectory: true))
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: candidate.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            return RecipeLocation(file: candidate)
        }
        let name = argument.hasSuffix(".json") ? String(argument.dropLast(".json".count)) : argument
        let isName = !name.isEmpty && !name.contains("/")
        guard let assets else {
            throw RecipeLocationError.noSuchRecipe(argument: argument, isName: isName, builtIn: [], suggestion: nil,
                                                   assets: nil)
        }
        let known = assets.recipeNames
        if isName, known.contains(name) {
            return RecipeLocation(file: assets.recipeFile(named: name), builtInName: name)
        }
        // A path that is not there: suggest by its last component (`recipes/lora-layerwise.json`
        // typed outside the repository means the built-in lora-layerwise).
        let typed = URL(fileURLWithPath: name).lastPathComponent
        let suggestion = known.contains(typed) ? typed : ClosestName.closest(to: typed, among: known)
        throw RecipeLocationError.noSuchRecipe(argument: argument, isName: isName, builtIn: known, suggestion: suggestion,
                                               assets: assets.root.path)
    }

    /// Loads the recipe, applies `overrides`, adds `extraPlugins` (`--plugin`, relative to
    /// the current directory) and resolves every input path (`Recipe.resolvingPaths`). The
    /// recipe's plugins are loaded here only when its grouping strategy is one of theirs, to
    /// learn which of its options are paths.
    public func load(overrides: [String] = [], extraPlugins: [String] = [],
                     currentDirectory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)) throws -> Recipe {
        try loaded(overrides: overrides, extraPlugins: extraPlugins, currentDirectory: currentDirectory).resolved
    }

    /// `load`, then checks that every input file exists (`Recipe.checkInputsExist`, quoting
    /// each path as the recipe file wrote it): what `dpft recipe` runs. The file is read once.
    public func loadCheckingInputs(overrides: [String] = [], extraPlugins: [String] = [],
                                   currentDirectory: URL = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)) throws -> Recipe {
        let result = try loaded(overrides: overrides, extraPlugins: extraPlugins, currentDirectory: currentDirectory)
        try result.resolved.checkInputsExist(original: result.original, source: file.relativePath,
                                             pathOptions: result.pathOptions)
        return result.resolved
    }

    /// The recipe as written (with `overrides`), the same with its paths resolved, and the
    /// grouping strategy's path options used for both.
    private func loaded(overrides: [String], extraPlugins: [String],
                        currentDirectory: URL) throws -> (original: Recipe, resolved: Recipe, pathOptions: Set<String>) {
        let recipe = try Recipe.load(from: file, overrides: overrides)
        let commandLinePlugins = extraPlugins.map { Self.absolutePath($0, against: currentDirectory) }
        func resolved(pathOptions: Set<String>) -> Recipe {
            var result = recipe.resolvingPaths(against: file.deletingLastPathComponent(), overrides: overrides,
                                               currentDirectory: currentDirectory, pathOptions: pathOptions)
            for path in commandLinePlugins where !result.plugins.contains(path) { result.plugins.append(path) }
            return result
        }
        let builtIn = GroupingRegistry.builtIn
        let pathOptions: Set<String>
        if let grouping = recipe.privacy?.grouping, !builtIn.names.contains(grouping) {
            let registry = try GroupingPluginLoader.registry(plugins: resolved(pathOptions: []).plugins)
            pathOptions = Self.pathOptions(of: grouping, in: registry)
        } else {
            pathOptions = Self.pathOptions(of: recipe.privacy?.grouping, in: builtIn)
        }
        return (recipe, resolved(pathOptions: pathOptions), pathOptions)
    }

    /// `path` when absolute (or empty), else `path` below `base`, without `.` and `..` parts.
    static func absolutePath(_ path: String, against base: URL) -> String {
        path.hasPrefix("/") || path.isEmpty ? path : base.appendingPathComponent(path).standardizedFileURL.path
    }

    /// The options of strategy `grouping` whose type is `.path` (e.g. `file` of `rules`); none
    /// for an unknown strategy (the runner reports that one).
    public static func pathOptions(of grouping: String?, in registry: GroupingRegistry) -> Set<String> {
        guard let grouping, let strategy = try? registry.strategy(named: grouping) else { return [] }
        return Set(registry.allowedOptions(of: strategy).filter { $0.type == .path }.map(\.name))
    }
}

// MARK: - Path resolution

extension Recipe {
    /// Every path-valued setting that names an input file, as (key path, path): the checkpoint,
    /// tokenizer, data files, rule file, path options of the grouping strategy and plugins.
    public func inputPaths(pathOptions: Set<String> = ["file"]) -> [(keyPath: String, path: String)] {
        var paths: [(String, String)] = [("model.checkpoint", model.checkpoint)]
        if let tokenizer = model.tokenizer { paths.append(("model.tokenizer", tokenizer)) }
        paths.append(("data.train", data.train))
        if let eval = data.eval { paths.append(("data.eval", eval)) }
        if let privacy {
            if let rules = privacy.rules { paths.append(("privacy.rules", rules)) }
            for name in privacy.groupingOptions.names where pathOptions.contains(name) {
                // With `rules`, grouping_options.file is the same path, listed once.
                guard case .string(let path) = privacy.groupingOptions[name], !(name == "file" && privacy.rules != nil) else {
                    continue
                }
                paths.append(("privacy.grouping_options.\(name)", path))
            }
        }
        for (index, plugin) in plugins.enumerated() { paths.append(("plugins[\(index)]", plugin)) }
        return paths
    }

    /// This recipe with every relative input path made absolute: against `directory` (the
    /// recipe file's folder) when the recipe file wrote it, against `currentDirectory` when a
    /// `--set` in `overrides` did. Absolute paths and `output.directory` are kept as written.
    ///
    /// The resolved paths are part of `resolvedJSON`, so of `hash`, which `--resume` compares:
    /// a resumed run must read the same files, and a relative path names different files from
    /// different places. The price is that moving a checkout or an installation between a run
    /// and its `--resume` makes the resume refuse — the safe side for a privacy ledger.
    public func resolvingPaths(against directory: URL, overrides: [String] = [], currentDirectory: URL,
                               pathOptions: Set<String> = ["file"]) -> Recipe {
        let overridden = overrides.map { String($0.prefix { $0 != "=" }).trimmingCharacters(in: .whitespaces) }
        func resolve(_ path: String, keyPath: String) -> String {
            let fromCommandLine = overridden.contains { keyPath == $0 || keyPath.hasPrefix($0 + ".") || keyPath.hasPrefix($0 + "[") }
            return RecipeLocation.absolutePath(path, against: fromCommandLine ? currentDirectory : directory)
        }
        var recipe = self
        recipe.model.checkpoint = resolve(model.checkpoint, keyPath: "model.checkpoint")
        recipe.model.tokenizer = model.tokenizer.map { resolve($0, keyPath: "model.tokenizer") }
        recipe.data.train = resolve(data.train, keyPath: "data.train")
        recipe.data.eval = data.eval.map { resolve($0, keyPath: "data.eval") }
        if var privacy {
            // `rules` is shorthand for grouping_options.file: one value, resolved once.
            privacy.rules = privacy.rules.map { resolve($0, keyPath: "privacy.rules") }
            for name in privacy.groupingOptions.names where pathOptions.contains(name) {
                guard case .string(let path) = privacy.groupingOptions[name] else { continue }
                let resolved = name == "file" && self.privacy?.rules == path
                    ? privacy.rules! : resolve(path, keyPath: "privacy.grouping_options.\(name)")
                privacy.groupingOptions.values[name] = .string(resolved)
            }
            recipe.privacy = privacy
        }
        recipe.plugins = plugins.enumerated().map { resolve($1, keyPath: "plugins[\($0)]") }
        return recipe
    }

    /// Throws for the first input file that does not exist, naming its key, the path as
    /// written in `original` and where it was looked for.
    public func checkInputsExist(original: Recipe, source: String, pathOptions: Set<String> = ["file"]) throws {
        let written = Dictionary(original.inputPaths(pathOptions: pathOptions).map { ($0.keyPath, $0.path) },
                                 uniquingKeysWith: { first, _ in first })
        for (keyPath, path) in inputPaths(pathOptions: pathOptions) where !FileManager.default.fileExists(atPath: path) {
            throw RecipeLocationError.missingInput(source: source, keyPath: keyPath, written: written[keyPath] ?? path,
                                                   resolved: path)
        }
    }
}

// MARK: - Errors

/// A recipe argument that names nothing, or a recipe whose input files are not there.
public enum RecipeLocationError: Error, CustomStringConvertible, Equatable {
    /// No file `argument` and no built-in recipe of that name. `builtIn` lists the built-in
    /// names, `suggestion` the closest; `assets` is where they were looked for (nil: this
    /// binary has no shipped assets).
    case noSuchRecipe(argument: String, isName: Bool, builtIn: [String], suggestion: String?, assets: String?)
    /// An input file of the recipe `source` does not exist.
    case missingInput(source: String, keyPath: String, written: String, resolved: String)

    public var description: String {
        switch self {
        case .noSuchRecipe(let argument, let isName, let builtIn, let suggestion, let assets):
            var text = isName ? "\(argument): no such file, and no built-in recipe of that name"
                : "\(argument): cannot read the recipe (no such file)"
            if let suggestion { text += "; did you mean \"\(suggestion)\" (dpft recipe \(suggestion).json)?" }
            if let assets {
                text += "\nbuilt-in recipes (in \(assets)/recipes; `dpft recipes list` describes them): "
                    + builtIn.joined(separator: ", ")
            } else {
                text += "\nthis dpft has no built-in recipes: install it with `make install`, or run it from the source tree's .build/"
            }
            return text
        case .missingInput(let source, let keyPath, let written, let resolved):
            let place = written == resolved ? "" : " (looked for \(resolved))"
            return "\(source): \"\(keyPath)\" = \"\(written)\": no such file\(place). "
                + "Paths in a recipe are relative to the recipe file's folder; paths given with --set to the current directory."
        }
    }
}
