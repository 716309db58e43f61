// Validation (the second step, after torchtune's config/_validate.py): one recipe object at a
// time, checking its keys against the schema and each value against its key's rule from the
// table. Every error names the file (with the `--set` that wrote the value, if one did), the
// key path, the value and what is allowed.

/// One JSON object of a recipe and its key path. Checks return nil for an absent or null key
/// and throw a `RecipeError` otherwise when the value breaks the rule.
struct RecipeSectionReader {
    let source: RecipeSource
    let path: String
    let members: JSONObject

    func keyPath(_ key: String) -> String { jsonKeyPath(path, key) }
    func label(_ key: String) -> String { source.label(for: keyPath(key)) }

    /// The value of `key`; nil when absent or null.
    subscript(key: String) -> JSONValue? {
        guard let value = members[key], value != .null else { return nil }
        return value
    }

    // MARK: Errors

    func wrongType(_ key: String, _ value: JSONValue, _ expected: String) -> RecipeError {
        .wrongType(file: label(key), keyPath: keyPath(key), value: value.recipeExcerpt, expected: expected)
    }

    func invalid(_ key: String, _ value: JSONValue, _ allowed: String) -> RecipeError {
        .invalidValue(file: label(key), keyPath: keyPath(key), value: value.recipeExcerpt, allowed: allowed)
    }

    func missing(_ key: String, hint: String) -> RecipeError {
        .missingKey(file: label(key), keyPath: keyPath(key), hint: hint)
    }

    func conflict(_ key: String, reason: String) -> RecipeError {
        .conflict(file: label(key), keyPath: keyPath(key), reason: reason)
    }

    // MARK: Checks

    /// Rejects keys the schema does not have in this section (first in sorted order), naming
    /// the closest known key.
    func checkKnownKeys() throws {
        let known = RecipeSchema.sections[path] ?? []
        for key in members.keys.sorted() where !known.contains(key) {
            throw RecipeError.unknownKey(file: source.label(for: keyPath(key), orBelow: true), keyPath: keyPath(key),
                                         suggestion: RecipeSchema.suggestion(for: key, in: path), known: known)
        }
    }

    /// Rejects more than one of `alternatives.keys`, or none when one is required.
    func check(_ alternatives: RecipeAlternatives) throws {
        let found = alternatives.keys.filter { self[$0] != nil }
        guard found.count > 1 || (alternatives.required && found.isEmpty) else { return }
        throw RecipeError.exclusiveKeys(file: alternatives.keys.map(label).first { $0 != source.file } ?? source.file,
                                        keyPath: path, keys: alternatives.keys, required: alternatives.required,
                                        found: found)
    }

    /// Rejects `key` when it is written but does not apply to the variant `chosen`.
    func check(_ condition: RecipeCondition, for key: String, chosen: String) throws {
        guard self[key] != nil, !condition.values.contains(chosen) else { return }
        throw conflict(key, reason: "applies only to \(condition.scope), not \"\(chosen)\"; remove it")
    }

    /// The value of `key` checked against `rule` (`recipe` holds the keys read before, for rules
    /// that depend on them); nil when absent or null.
    func check(_ rule: RecipeValueRule, _ key: String, in recipe: Recipe) throws -> RecipeValue? {
        guard let value = self[key] else { return nil }
        let expected = rule.expected(in: recipe)
        switch (rule, value) {
        case (.string(_, let valid), .string(let string)):
            guard valid(string) else { throw invalid(key, value, expected) }
            return .string(string)
        case (.integer(_, let valid), .number(let number)):
            guard let integer = number.wholeNumber else { throw wrongType(key, value, expected) }
            guard valid(integer) else { throw invalid(key, value, expected) }
            return .integer(integer)
        case (.seed, .number(let number)):
            guard let seed = Self.unsigned(number) else { throw invalid(key, value, expected) }
            return .unsigned(seed)
        case (.number(_, let valid), .number(let number)):
            let double = number.double
            guard double.isFinite else { throw invalid(key, value, "a finite number") }
            guard valid(double, recipe) else { throw invalid(key, value, expected) }
            return .number(double)
        case (.bool, .bool(let bool)):
            return .bool(bool)
        case (.choice(let names), .string(let string)):
            guard names.contains(string) else { throw invalid(key, value, expected) }
            return .string(string)
        case (.strings(_, let allowsEmpty), .array(let items)):
            guard allowsEmpty || !items.isEmpty else { throw invalid(key, value, expected) }
            return .strings(try strings(items, key))
        case (.object, .object(let object)):
            return .object(object)
        default:
            throw wrongType(key, value, expected)
        }
    }

    /// A list's items as non-empty strings; a bad item is named by index, e.g. `adapter.targets[1]`.
    private func strings(_ items: [JSONValue], _ key: String) throws -> [String] {
        try items.enumerated().map { index, item in
            let itemPath = jsonKeyPath(keyPath(key), index: index)
            guard case .string(let string) = item else {
                throw RecipeError.wrongType(file: label(key), keyPath: itemPath, value: item.recipeExcerpt,
                                            expected: "a non-empty string")
            }
            guard !string.isEmpty else {
                throw RecipeError.invalidValue(file: label(key), keyPath: itemPath, value: item.recipeExcerpt,
                                               allowed: "a non-empty string")
            }
            return string
        }
    }

    /// A seed: written as an integer in 0...2^64 − 1, or as a whole number up to 2^53 (`1e6`).
    private static func unsigned(_ number: JSONNumber) -> UInt64? {
        if let value = number.integer(as: UInt64.self) { return value }
        let value = number.double
        guard value == value.rounded(), value >= 0, value <= 9_007_199_254_740_992 else { return nil }
        return UInt64(value)
    }
}
