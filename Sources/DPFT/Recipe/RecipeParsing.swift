// Parsing (the first of three steps, after torchtune's config/_parse.py): recipe text into a
// JSON tree with the strict JSON layer, then the `--set key.path=value` overrides applied to
// the tree, remembering which override wrote what so that errors can name it. Validation
// (RecipeValidation.swift) and resolution into a `Recipe` (RecipeResolution.swift) follow.

/// Where values came from, for error messages: the file, or the file with the `--set` override
/// that wrote the value at fault.
struct RecipeSource {
    let file: String
    /// Applied overrides in order: the key path each wrote, and its text.
    var overrides: [(keyPath: String, text: String)] = []

    /// The label for an error at `keyPath`: the last override that wrote it or a value around it
    /// (with `orBelow`, also one that wrote a value inside it, for an unknown key an override
    /// created).
    func label(for keyPath: String, orBelow: Bool = false) -> String {
        for override in overrides.reversed() {
            let path = override.keyPath
            if keyPath == path || keyPath.hasPrefix(path + ".") || (orBelow && path.hasPrefix(keyPath + ".")) {
                return "\(file) with --set \(override.text)"
            }
        }
        return file
    }
}

enum RecipeParsing {
    /// The recipe text as a JSON object with `overrides` applied, and where each value came
    /// from.
    static func tree(from text: String, file: String, overrides: [String]) throws -> (JSONObject, RecipeSource) {
        var root: JSONValue
        do {
            root = try JSONParser.parse(text.utf8, source: file, allowsByteOrderMark: true)
        } catch {
            throw recipeError(error, file: file)
        }
        guard case .object = root else {
            throw RecipeError.wrongType(file: file, keyPath: "", value: root.recipeExcerpt, expected: "a JSON object")
        }
        var source = RecipeSource(file: file)
        for override in overrides {
            let (keys, value) = try parseOverride(override)
            root = try setting(value, at: keys[...], in: root, path: "", override: override)
            source.overrides.append((keys.joined(separator: "."), override))
        }
        guard case .object(let members) = root else { preconditionFailure("overrides keep the root an object") }
        return (members, source)
    }

    /// A JSON error as the recipe error that names the file.
    static func recipeError(_ error: JSONParseError, file: String) -> RecipeError {
        switch error.kind {
        case .duplicateKey(_, let keyPath):
            return .duplicateKey(file: file, keyPath: keyPath, line: error.line, column: error.column)
        case .comment:
            return .notJSON(file: file, reason: "line \(error.line), column \(error.column): "
                            + "JSON has no comments; say what a recipe is for in \"description\"")
        default:
            return .notJSON(file: file, reason: error.locatedReason)
        }
    }

    /// Parses `key.path=value`: the value is JSON when it parses, else a bare string.
    static func parseOverride(_ text: String) throws -> (keys: [String], value: JSONValue) {
        guard let equals = text.firstIndex(of: "=") else {
            throw RecipeError.malformedOverride(override: text, reason: "no \"=\"")
        }
        let path = text[..<equals].trimmingCharacters(in: .whitespaces)
        let valueText = String(text[text.index(after: equals)...])
        guard !path.isEmpty else { throw RecipeError.malformedOverride(override: text, reason: "empty key path") }
        let keys = path.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard keys.allSatisfy({ !$0.isEmpty }) else {
            throw RecipeError.malformedOverride(override: text, reason: "empty key in key path \"\(path)\"")
        }
        do {
            return (keys, try JSONParser.parse(valueText, source: "--set \(text)"))
        } catch {
            // Text meant as a JSON string, list or object must parse; anything else is a bare string.
            let first = valueText.trimmingCharacters(in: .whitespaces).first
            if first == "\"" || first == "[" || first == "{" {
                throw RecipeError.malformedOverride(override: text,
                                                    reason: "the value is not valid JSON (\(error.locatedReason))")
            }
            return (keys, .string(valueText))
        }
    }

    /// `current` with `value` set at `keys`, creating objects on the way (null counts as absent).
    static func setting(_ value: JSONValue, at keys: ArraySlice<String>, in current: JSONValue?, path: String,
                        override: String) throws -> JSONValue {
        guard let key = keys.first else { return value }
        var members: JSONObject
        switch current {
        case nil, .null?: members = [:]
        case .object(let existing)?: members = existing
        case let other?:
            throw RecipeError.malformedOverride(
                override: override,
                reason: "\"\(path)\" is \(other.recipeExcerpt), not an object, so it has no key \"\(key)\"; set \"\(path)\" as a whole")
        }
        members[key] = try setting(value, at: keys.dropFirst(), in: members[key], path: jsonKeyPath(path, key),
                                   override: override)
        return .object(members)
    }
}

extension JSONValue {
    /// One-line JSON for recipe messages (object keys sorted), cut at about 60 characters.
    var recipeExcerpt: String { sortedByKey().excerpt }
}
