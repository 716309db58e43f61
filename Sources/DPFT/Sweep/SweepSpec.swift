import Foundation

/// A sweep file for `dpft sweep SWEEP.json`: a base recipe, the settings to try (a grid of
/// `--set` overrides, or an explicit list of override sets) and the seeds each is run with.
///
/// ```json
/// {"recipe": "lora-layerwise",
///  "set": {"training.steps": 40},
///  "grid": {"training.optimizer.learning_rate": [0.001, 0.003],
///           "privacy.grouping": ["layer-wise", "all-layer"]},
///  "seeds": [1, 2, 3],
///  "seed_keys": ["training.seed"]}
/// ```
///
/// - `recipe`: a recipe file (relative to the sweep file's folder) or a built-in recipe's
///   name, found as `dpft recipe` finds it (`RecipeLocation.find`).
/// - `set`: overrides applied to every run, keys as in `dpft recipe --set key=value`.
/// - `grid`: key → list of values; one setting per combination, the first key varying
///   slowest. Or `settings`: a list of objects, each one setting's overrides. At most one of
///   the two; neither means the base recipe as it is.
/// - `seeds`: one run per setting and seed (absent: one run per setting, seeds as the recipe
///   says). `seed_keys`: the recipe keys each seed is written to, default `["training.seed"]`
///   (data order, LoRA initialisation). Adding `privacy.noise_seed` makes the Poisson batches
///   and the noise reproducible too — and the run's release not private (its ledger says so).
/// - `output.directory` is the sweep's to choose (`SWEEP_DIR/runs/NAME`), never the file's.
public struct SweepSpec: Sendable {
    /// One `--set` override: a dotted recipe key and its JSON value.
    public struct Override: Sendable, Equatable {
        public var key: String
        public var value: JSONValue

        public init(key: String, value: JSONValue) {
            self.key = key
            self.value = value
        }

        /// `key=value` for `--set`: a string value quoted as JSON, so that "1" stays a string.
        public var setArgument: String { "\(key)=\(value.text(.compact))" }

        /// `key=value` for people: a string value unquoted (`privacy.grouping=per-block`).
        public var display: String {
            if case .string(let string) = value { return "\(key)=\(string)" }
            return "\(key)=\(value.text(.compact))"
        }
    }

    /// The sweep file.
    public let file: URL
    /// The base recipe.
    public let recipe: RecipeLocation
    /// Overrides of every run (`set`).
    public let common: [Override]
    /// One override set per setting, in file order.
    public let settings: [[Override]]
    /// The seeds each setting runs with; empty: once, with the recipe's seeds.
    public let seeds: [UInt64]
    /// The recipe keys a seed is written to.
    public let seedKeys: [String]

    static let knownKeys = ["description", "recipe", "set", "grid", "settings", "seeds", "seed_keys"]

    /// Reads the sweep file at `file`; a built-in recipe name is looked up in `assets`.
    public init(contentsOf file: URL, assets: Assets?) throws {
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw SweepError.unreadable(file: file.path, reason: FileProblem.reason(for: error, path: file.path))
        }
        let root: JSONReader
        do { root = try JSONReader(parsing: data, source: file.path) } catch {
            throw SweepError.invalid(file: file.path, problem: error.locatedReason)
        }
        do {
            try self.init(root, file: file, assets: assets)
        } catch let error as JSONAccessError {
            throw SweepError.invalid(file: file.path, problem: error.keyPath.isEmpty ? error.problem : "\(error.keyPath): \(error.problem)")
        }
    }

    private init(_ root: JSONReader, file: URL, assets: Assets?) throws {
        self.file = file
        for (key, member) in try root.object() where !Self.knownKeys.contains(key) {
            let hint = ClosestName.closest(to: key, among: Self.knownKeys).map { " (did you mean \"\($0)\"?)" } ?? ""
            throw member.error(.wrongType, "is not a sweep key\(hint); the keys are \(Self.knownKeys.joined(separator: ", "))")
        }
        recipe = try RecipeLocation.find(try root.member("recipe").string(), assets: assets,
                                         currentDirectory: file.deletingLastPathComponent())
        common = try Self.overrides(root.optionalMember("set"))
        let grid = try root.optionalMember("grid"), list = try root.optionalMember("settings")
        if let grid, list != nil { throw grid.error(.wrongType, "give \"grid\" or \"settings\", not both") }
        if let grid {
            settings = try Self.product(grid)
        } else if let list {
            settings = try list.array().map { try Self.overrides($0) }
        } else {
            settings = [[]]
        }
        seeds = try root.optionalMember("seeds")?.array().map { try $0.integer(UInt64.self) } ?? []
        seedKeys = try root.optionalMember("seed_keys")?.array().map { try $0.string() } ?? ["training.seed"]
        try check(root)
    }

    /// The overrides of an object `key → value`, in order.
    private static func overrides(_ object: JSONReader?) throws -> [Override] {
        try object?.object().map { Override(key: $0.key, value: $0.value.value) } ?? []
    }

    /// Every combination of the grid's values, the first key varying slowest.
    private static func product(_ grid: JSONReader) throws -> [[Override]] {
        var result: [[Override]] = [[]]
        for (key, values) in try grid.object() {
            let items = try values.array()
            guard !items.isEmpty else { throw values.error(.wrongType, "is empty; give at least one value") }
            result = result.flatMap { prefix in items.map { prefix + [Override(key: key, value: $0.value)] } }
        }
        return result
    }

    /// Rejects what the sweep chooses itself (`output.directory`) and settings that repeat.
    private func check(_ root: JSONReader) throws {
        let keys = common.map(\.key) + settings.flatMap { $0.map(\.key) } + seedKeys
        if keys.contains("output.directory") {
            throw root.error(.wrongType, "sets output.directory; the sweep puts each run in SWEEP_DIR/runs/NAME")
        }
        if !seeds.isEmpty, seedKeys.isEmpty { throw root.error(.wrongType, "has seeds but an empty \"seed_keys\"") }
        if Set(seeds).count != seeds.count { throw root.error(.wrongType, "seeds: a seed is listed twice") }
    }

    /// Every run of the sweep, settings in order and seeds within each; names are checked to
    /// be distinct.
    public var runs: [SweepRun] {
        get throws {
            let settingKeys = settings.flatMap { $0.map(\.key) }
            var runs: [SweepRun] = []
            var seen: [String: String] = [:]
            for setting in settings {
                for seed in seeds.isEmpty ? [nil] : seeds.map(Optional.some) {
                    let run = SweepRun(setting: setting, seed: seed, seedKeys: seedKeys, common: common,
                                       keys: settingKeys)
                    if let other = seen[run.name] {
                        throw SweepError.sameRunName(file: file.path, name: run.name, first: other, second: run.label)
                    }
                    seen[run.name] = run.label
                    runs.append(run)
                }
            }
            return runs
        }
    }
}

/// One run of a sweep: its setting, its seed, and the directory name derived from both.
public struct SweepRun: Sendable, Equatable {
    /// The setting's overrides (without the seed).
    public let setting: [SweepSpec.Override]
    public let seed: UInt64?
    /// Every override the run is given: the sweep's common ones, the setting, the seed keys.
    public let overrides: [SweepSpec.Override]
    /// The run's directory name under `runs/`: stable, from the setting and the seed, e.g.
    /// `learning_rate-0.001_grouping-layer-wise_seed-1`.
    public let name: String

    init(setting: [SweepSpec.Override], seed: UInt64?, seedKeys: [String], common: [SweepSpec.Override],
         keys: [String]) {
        self.setting = setting
        self.seed = seed
        let seedOverrides = seed.map { seed in seedKeys.map { SweepSpec.Override(key: $0, value: .number(JSONNumber(seed))) } } ?? []
        overrides = common + setting + seedOverrides
        var parts = setting.map { "\(Self.shortKey($0.key, among: keys))-\(Self.sanitized($0.value))" }
        if let seed { parts.append("seed-\(seed)") }
        name = parts.isEmpty ? "base" : parts.joined(separator: "_")
    }

    /// The setting as `key=value, key=value` (the base recipe: `base`).
    public var label: String {
        setting.isEmpty ? "base" : setting.map(\.display).joined(separator: ", ")
    }

    /// The last component of `key`, or the whole key with `.` as `-` when another key of the
    /// sweep ends the same way.
    static func shortKey(_ key: String, among keys: [String]) -> String {
        let last = key.split(separator: ".").last.map(String.init) ?? key
        let clash = Set(keys).contains { $0 != key && $0.split(separator: ".").last.map(String.init) == last }
        return clash ? key.replacingOccurrences(of: ".", with: "-") : last
    }

    /// A value as a file-name part: letters, digits, `.`, `+` and `-` kept, runs of anything
    /// else one `_` (`{"per": "block"}` → `per_block`).
    static func sanitized(_ value: JSONValue) -> String {
        var result = ""
        for character in value.text(.compact) {
            if character.isASCII, character.isLetter || character.isNumber || "+-.".contains(character) {
                result.append(character)
            } else if !result.isEmpty, result.last != "_" {
                result.append("_")
            }
        }
        while result.last == "_" { result.removeLast() }
        return result.isEmpty ? "empty" : String(result.prefix(60))
    }
}
