// One row of the recipe key table (RecipeKeys.swift): everything dpft knows about one key,
// written once — its path, the values it takes, whether it is required, when it applies, its
// help text, how a read value goes into a `Recipe` and how a `Recipe` writes it back. The
// schema (RecipeSchema.swift), the reader (RecipeResolution.swift) and the resolved-recipe
// writer all walk the same rows; the defaults are those of the section initialisers in
// Recipe.swift, which the table reads back (`RecipeKeys.defaults`) rather than repeat.

/// A value that passed its key's rule, in the Swift type the rule promises.
enum RecipeValue {
    case string(String)
    case integer(Int)
    case unsigned(UInt64)
    case number(Double)
    case bool(Bool)
    case strings([String])
    /// A JSON object kept as it is (`privacy.grouping_options`).
    case object(JSONObject)
    /// A section written as an object; its keys follow as rows of their own.
    case section

    var string: String { if case .string(let value) = self { return value }; preconditionFailure("\(self) is no string") }
    var integer: Int { if case .integer(let value) = self { return value }; preconditionFailure("\(self) is no integer") }
    var unsigned: UInt64 { if case .unsigned(let value) = self { return value }; preconditionFailure("\(self) is no seed") }
    var number: Double { if case .number(let value) = self { return value }; preconditionFailure("\(self) is no number") }
    var bool: Bool { if case .bool(let value) = self { return value }; preconditionFailure("\(self) is no boolean") }
    var strings: [String] { if case .strings(let value) = self { return value }; preconditionFailure("\(self) is no list") }
}

/// What a key's value must be. `expected` texts are what error messages quote ("must be …").
enum RecipeValueRule: Sendable {
    /// A string for which `valid` holds.
    case string(expected: String, valid: @Sendable (String) -> Bool)
    /// A whole number (`8`, `8.0`, `1e3`) for which `valid` holds.
    case integer(expected: String, valid: @Sendable (Int) -> Bool)
    /// A seed: an integer in 0...2^64 − 1.
    case seed
    /// A finite number for which `valid` holds; `expected` and `valid` may depend on the keys
    /// read before (e.g. `min_learning_rate` ≤ `learning_rate`).
    case number(expected: @Sendable (Recipe) -> String, valid: @Sendable (Double, Recipe) -> Bool)
    case bool
    /// One of the strings `choices`.
    case choice([String])
    /// A list of non-empty strings; empty only when `allowsEmpty`.
    case strings(expected: String, allowsEmpty: Bool)
    /// Any JSON object, kept as it is.
    case object(expected: String)

    static func number(_ expected: String, where valid: @escaping @Sendable (Double) -> Bool) -> RecipeValueRule {
        .number(expected: { _ in expected }, valid: { value, _ in valid(value) })
    }

    static func choice<Choice: RawRepresentable & CaseIterable>(of type: Choice.Type) -> RecipeValueRule
    where Choice.RawValue == String {
        .choice(Choice.allCases.map(\.rawValue))
    }

    /// What the rule accepts, for messages and help: `one of "a", "b"`, `an integer ≥ 1`, …
    func expected(in recipe: Recipe) -> String {
        switch self {
        case .string(let expected, _), .integer(let expected, _), .strings(let expected, _), .object(let expected):
            return expected
        case .seed: return "an integer in 0...\(UInt64.max)"
        case .number(let expected, _): return expected(recipe)
        case .bool: return "true or false"
        case .choice(let names):
            let quoted = names.map { "\"\($0)\"" }
            return quoted.count == 1 ? "\(quoted[0]) (the only value)" : "one of " + quoted.joined(separator: ", ")
        }
    }
}

/// When a key applies: only while the key `discriminator` (a sibling) has one of `values`.
/// Written elsewhere, the key is an error ("applies only to `scope`, not …"); the resolved
/// recipe leaves it out.
struct RecipeCondition: Sendable {
    var discriminator: String
    var values: [String]
    /// How messages name the variants the key belongs to, e.g. `optimizers "adam" and "adamw"`.
    var scope: String
}

/// Two keys of a section that are alternatives: at most one (or, when `required`, exactly one)
/// may be given.
struct RecipeAlternatives: Sendable {
    var keys: [String]
    var required: Bool
}

/// One key of the recipe schema: a section (a JSON object of keys) or a leaf value.
struct RecipeKey: Sendable {
    enum Shape: Sendable {
        /// An object of further keys. `alternative` is a rule for a non-object value that may
        /// stand in for the object (`data.template`: `"alpaca"`); `nullable` lets `null` mean
        /// something other than "absent" (`privacy`: non-private training).
        case section(alternative: RecipeValueRule?, nullable: Bool, alternatives: RecipeAlternatives?)
        case leaf(RecipeValueRule)
    }

    /// The full key path, e.g. `training.optimizer.learning_rate`.
    var path: String
    var shape: Shape
    /// For the help text and `dpft recipe --keys`: what the key means.
    var help: String
    /// Set when the key is required (in a section that is present): what to write.
    var requiredHint: String?
    var condition: RecipeCondition?
    /// Puts a checked value into the recipe (`.section` for a section written as an object;
    /// nil for `null` on a nullable section). Rows run in table order, so a row may rely on the
    /// rows before it (e.g. `batch_size` before the `physical_batch_size` default it sets).
    var read: @Sendable (inout Recipe, RecipeValue?, RecipeReadContext) throws -> Void
    /// The key's value in the resolved recipe; nil leaves the key out. A section returns an
    /// empty object (its rows fill it), `null`, or the alternative value.
    var write: @Sendable (Recipe) -> JSONValue?
    /// Names other tools use for this key, normalized (lowercase, no `_`, `-` or spaces), for
    /// the suggestion an unknown key gets: `lr` for `learning_rate`.
    var aliases: [String] = []

    /// The section holding this key ("" for the top level) and the key within it.
    var parent: String { path.split(separator: ".").dropLast().joined(separator: ".") }
    var name: String { String(path.split(separator: ".").last!) }

    var isSection: Bool {
        if case .section = shape { return true }
        return false
    }
}

/// What a row's `read` may need beyond its value: the section's raw members (for
/// shorthands that check their siblings) and errors that name the right file and key.
struct RecipeReadContext {
    let section: RecipeSectionReader
}
