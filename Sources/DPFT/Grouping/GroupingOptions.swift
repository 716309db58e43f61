import Foundation

/// One JSON value of a grouping option: the JSON layer's value (Support/JSONValue.swift), so
/// options keep their number literals from a recipe or `--grouping-options` to a plugin.
public typealias GroupingOptionValue = JSONValue

/// The type of a strategy option, for documentation (`dpft plugins list`) and for the check
/// the registry makes before a strategy sees its options.
public enum GroupingOptionType: Sendable, Equatable, CustomStringConvertible {
    case string
    /// A whole number (JSON number without a fraction).
    case integer
    case number
    case boolean
    /// One of the listed strings.
    case choice([String])
    /// A file path (a string), relative to the working directory (in a recipe: to the recipe
    /// file's folder, see `RecipeLocation`).
    case path
    /// An object mapping group names to positive numbers, e.g. `{"attention": 0.8}`.
    case thresholds

    public var description: String {
        switch self {
        case .string: return "string"
        case .integer: return "integer"
        case .number: return "number"
        case .boolean: return "boolean"
        case .choice(let values): return values.map { "\"\($0)\"" }.joined(separator: " | ")
        case .path: return "path"
        case .thresholds: return "{group: threshold}"
        }
    }

    /// Whether `value` has this type.
    func accepts(_ value: GroupingOptionValue) -> Bool {
        switch (self, value) {
        case (.string, .string), (.path, .string), (.number, .number), (.boolean, .bool): return true
        case (.integer, .number(let number)): return GroupingOptions.wholeNumber(number) != nil
        case (.choice(let values), .string(let string)): return values.contains(string)
        case (.thresholds, .object(let values)):
            return values.values.allSatisfy { if case .number = $0 { return true } else { return false } }
        default: return false
        }
    }
}

/// The documentation of one option of a grouping strategy.
public struct GroupingOptionSpec: Sendable, Equatable {
    public var name: String
    public var type: GroupingOptionType
    /// The value used when the option is absent, or nil when there is none.
    public var defaultValue: GroupingOptionValue?
    /// Whether the strategy cannot run without it.
    public var isRequired: Bool
    /// One sentence for `dpft plugins list`.
    public var description: String

    public init(name: String, type: GroupingOptionType, defaultValue: GroupingOptionValue? = nil, isRequired: Bool = false,
                description: String) {
        self.name = name
        self.type = type
        self.defaultValue = defaultValue
        self.isRequired = isRequired
        self.description = description
    }
}

/// The options of a grouping strategy: a JSON object, as given by `--grouping-options
/// '{"per": "block"}'` or a recipe. Typed accessors throw an error naming the option (and the
/// strategy) when a value has the wrong type; absent options read as nil.
public struct GroupingOptions: Sendable, Equatable, Codable, ExpressibleByDictionaryLiteral {
    public var values: [String: GroupingOptionValue]
    /// The strategy these options are for, used in error messages (the registry sets it).
    public var strategy: String = ""

    public init(_ values: [String: GroupingOptionValue] = [:]) {
        self.values = values
    }

    public init(dictionaryLiteral elements: (String, GroupingOptionValue)...) {
        self.init(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }

    /// Parses a JSON object; an empty string means no options.
    public init(json text: String) throws {
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            self.init()
            return
        }
        let value: GroupingOptionValue
        do {
            value = try JSONParser.parse(text, source: "grouping options")
        } catch {
            throw GroupingError.optionsNotJSON(reason: "\(text) is not valid JSON")
        }
        guard case .object(let values) = value else {
            throw GroupingError.optionsNotJSON(reason: "\(text) is not an object")
        }
        self.init(values.dictionary)
    }

    public init(from decoder: Decoder) throws {
        values = try decoder.singleValueContainer().decode([String: GroupingOptionValue].self)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(values)
    }

    /// Option names present, sorted.
    public var names: [String] { values.keys.sorted() }

    public subscript(name: String) -> GroupingOptionValue? {
        get { values[name] }
        set { values[name] = newValue }
    }

    /// These options without the named ones.
    public func removing(_ names: [String]) -> GroupingOptions {
        var copy = self
        for name in names { copy.values[name] = nil }
        return copy
    }

    // MARK: Typed accessors

    /// The error for an absent required option.
    public func missing(_ name: String) -> GroupingError {
        .missingOption(strategy: strategy, option: name)
    }

    /// The error for an option whose value is wrong; `expected` says what would be right.
    public func invalid(_ name: String, expected: String) -> GroupingError {
        .invalidOption(strategy: strategy, option: name, value: values[name]?.description ?? "absent", expected: expected)
    }

    public func string(_ name: String) throws -> String? {
        guard let value = values[name] else { return nil }
        guard case .string(let string) = value else { throw invalid(name, expected: "a string") }
        return string
    }

    /// One of `allowed`, or `defaultValue` when absent.
    public func choice(_ name: String, among allowed: [String], default defaultValue: String) throws -> String {
        guard let string = try string(name) else { return defaultValue }
        guard allowed.contains(string) else {
            throw invalid(name, expected: allowed.map { "\"\($0)\"" }.joined(separator: " or "))
        }
        return string
    }

    public func number(_ name: String) throws -> Double? {
        guard let value = values[name] else { return nil }
        guard case .number(let number) = value else { throw invalid(name, expected: "a number") }
        return number.double
    }

    public func integer(_ name: String) throws -> Int? {
        guard let value = values[name] else { return nil }
        guard case .number(let number) = value, let integer = Self.wholeNumber(number) else {
            throw invalid(name, expected: "a whole number")
        }
        return integer
    }

    /// A number written as a whole number (`3`, `3.0`, `3e0`) below 10^15 in magnitude.
    static func wholeNumber(_ number: JSONNumber) -> Int? {
        let value = number.double
        return value == value.rounded() && abs(value) < 1e15 ? Int(value) : nil
    }

    public func boolean(_ name: String) throws -> Bool? {
        guard let value = values[name] else { return nil }
        guard case .bool(let bool) = value else { throw invalid(name, expected: "true or false") }
        return bool
    }

    /// An object of numbers keyed by group name, e.g. `{"attention": 0.8, "rest": 0.6}`.
    public func thresholds(_ name: String) throws -> [String: Double]? {
        guard let value = values[name] else { return nil }
        guard case .object(let object) = value else { throw invalid(name, expected: "an object {group: threshold}") }
        var result: [String: Double] = [:]
        for (group, entry) in object {
            guard case .number(let number) = entry else {
                throw invalid(name, expected: "a number for every group (group `\(group)` has \(entry))")
            }
            result[group] = number.double
        }
        return result
    }
}
