// The one JSON value of dpft: recipes, rule files, grouping options, safetensors headers,
// config.json and the plugin wire format all parse into it (JSONParser.swift), are read through
// its typed getters or its `Decoder` (JSONDecoding.swift) and are written by its writer
// (JSONWriter.swift).
//
// A value keeps what a file says exactly: objects keep their members in file order and numbers
// keep their literal text, so `1e-5` and `2.0` are written back as they were read, and a 64-bit
// seed is never rounded through a Double.

/// A JSON number as its literal text (RFC 8259 grammar), e.g. `2`, `-0.5`, `1e-5`, `2.0`.
public struct JSONNumber: Sendable, CustomStringConvertible {
    /// The text as written in the file, or as produced by the initialisers below.
    public let literal: String

    /// A literal checked against the JSON grammar; nil when `literal` is not a JSON number.
    public init?(literal: String) {
        guard JSONNumber.isValidLiteral(Array(literal.utf8)) else { return nil }
        self.literal = literal
    }

    /// A literal the parser has already checked.
    init(uncheckedLiteral literal: String) {
        self.literal = literal
    }

    /// The decimal literal of `value`, exactly.
    public init<Integer: BinaryInteger>(_ value: Integer) {
        literal = String(value)
    }

    /// The shortest text that reads back as `value` (Swift's `description`, e.g. `1e-05`,
    /// `0.001`, `2.0`). `value` must be finite: JSON has no NaN or infinity.
    public init(_ value: Double) {
        precondition(value.isFinite, "JSON has no \(value); check values before writing them")
        literal = value.description
    }

    public var description: String { literal }

    /// Whether the literal is written as an integer: digits with an optional minus, no
    /// fraction and no exponent.
    public var isIntegerLiteral: Bool {
        !literal.contains { $0 == "." || $0 == "e" || $0 == "E" }
    }

    /// The value as a Double (correctly rounded; may be ±infinity for huge literals).
    public var double: Double { Double(literal) ?? .nan }

    /// The value as `Integer` when the literal is an integer literal in its range, else nil.
    public func integer<Integer: FixedWidthInteger>(as type: Integer.Type) -> Integer? {
        isIntegerLiteral ? Integer(literal) : nil
    }

    /// The value as an Int when it is a whole number: an integer literal in range, or a literal
    /// such as `1e3` or `8.0` whose value is whole and at most 2^53 in magnitude.
    public var wholeNumber: Int? {
        if let value = integer(as: Int.self) { return value }
        let value = double
        guard value == value.rounded(), abs(value) <= 9_007_199_254_740_992 else { return nil }
        return Int(value)
    }

    static func isValidLiteral(_ bytes: [UInt8]) -> Bool {
        var index = 0
        func digits() -> Int {
            let start = index
            while index < bytes.count, (0x30...0x39).contains(bytes[index]) { index += 1 }
            return index - start
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count else { return false }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else if digits() == 0 {
            return false
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { return false }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits() > 0 else { return false }
        }
        return index == bytes.count
    }
}

extension JSONNumber: Equatable {
    /// Numbers are equal when their values are: `2`, `2.0` and `2e0` are one number. Integer
    /// literals compare exactly (so 2^64 − 1 and 2^64 − 2 differ); others compare as Doubles.
    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        if lhs.literal == rhs.literal { return true }
        if lhs.isIntegerLiteral, rhs.isIntegerLiteral {
            if let a = lhs.integer(as: Int64.self), let b = rhs.integer(as: Int64.self) { return a == b }
            if let a = lhs.integer(as: UInt64.self), let b = rhs.integer(as: UInt64.self) { return a == b }
        }
        return lhs.double == rhs.double
    }
}

/// A JSON object: members in the order they were read or added, keys unique.
public struct JSONObject: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    /// One member: its key and value.
    public typealias Member = (key: String, value: JSONValue)

    /// The members in order.
    public private(set) var members: [Member] = []
    private var indexByKey: [String: Int] = [:]

    /// An empty object.
    public init() {}

    /// Members in the given order; a repeated key keeps its first place and its last value.
    public init<Members: Sequence>(_ members: Members) where Members.Element == Member {
        for (key, value) in members { self[key] = value }
    }

    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements.map { (key: $0.0, value: $0.1) })
    }

    /// The keys, in order.
    public var keys: [String] { members.map(\.key) }
    /// The values, in order of their keys.
    public var values: [JSONValue] { members.map(\.value) }
    /// The members as a dictionary (their order lost).
    public var dictionary: [String: JSONValue] { Dictionary(uniqueKeysWithValues: members.map { ($0.key, $0.value) }) }
    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }

    /// The value of `key`; setting a new key appends it, setting an existing one replaces its
    /// value in place, setting nil removes it.
    public subscript(key: String) -> JSONValue? {
        get { indexByKey[key].map { members[$0].value } }
        set {
            if let index = indexByKey[key] {
                if let newValue {
                    members[index].value = newValue
                } else {
                    members.remove(at: index)
                    indexByKey = Dictionary(uniqueKeysWithValues: members.enumerated().map { ($1.key, $0) })
                }
            } else if let newValue {
                indexByKey[key] = members.count
                members.append((key, newValue))
            }
        }
    }

    /// Adds a member the parser has checked is new.
    mutating func appendNew(_ key: String, _ value: JSONValue) {
        indexByKey[key] = members.count
        members.append((key, value))
    }

    public func makeIterator() -> IndexingIterator<[Member]> { members.makeIterator() }

    /// The same members with keys sorted (Swift `String` order).
    public func sortedByKey() -> JSONObject {
        JSONObject(members.sorted { $0.key < $1.key })
    }
}

extension JSONObject: Equatable {
    /// Objects are equal when they hold the same keys with equal values, in any order (JSON
    /// objects are unordered; the order is kept only so that writing reproduces the file).
    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.count == rhs.count && lhs.members.allSatisfy { rhs[$0.key] == $0.value }
    }
}

/// One JSON value.
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// What kind of value this is, for messages: "a string", "an object", …
    public var kind: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Whether this is `null`.
    public var isNull: Bool { self == .null }

    /// Whether this is neither an array nor an object.
    public var isScalar: Bool {
        switch self {
        case .array, .object: return false
        default: return true
        }
    }

    /// A number from a Swift integer or Double (see `JSONNumber`).
    public static func number(_ value: Int) -> JSONValue { .number(JSONNumber(value)) }
    public static func number(_ value: UInt64) -> JSONValue { .number(JSONNumber(value)) }
    public static func number(_ value: Double) -> JSONValue { .number(JSONNumber(value)) }

    /// `.string(value)`, or `.null` for nil.
    public static func optional(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }

    /// The value with every object's members sorted by key, recursively.
    public func sortedByKey() -> JSONValue {
        switch self {
        case .array(let items): return .array(items.map { $0.sortedByKey() })
        case .object(let object): return .object(JSONObject(object.sortedByKey().members.map { ($0.key, $0.value.sortedByKey()) }))
        default: return self
        }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
                     ExpressibleByBooleanLiteral, ExpressibleByDictionaryLiteral, ExpressibleByArrayLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
    public init(floatLiteral value: Double) { self = .number(JSONNumber(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements.map { (key: $0.0, value: $0.1) }))
    }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

extension JSONValue: CustomStringConvertible {
    /// The value as one line of JSON (`{"a": 1, "b": [true, null]}`), members in order.
    public var description: String { text(.line) }
}

extension JSONValue: Codable {
    /// Reads a value through any `Decoder` (e.g. Foundation's `JSONDecoder`, which loses member
    /// order and number literals; dpft's own files go through `JSONParser`).
    public init(from decoder: Decoder) throws {
        if let own = decoder as? JSONValueDecoder {
            self = own.value
            return
        }
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .number(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            let members = try container.decode([String: JSONValue].self)
            self = .object(JSONObject(members.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }))
        }
    }

    /// Writes the value through any `Encoder`; numbers become Int, UInt64 or Double.
    public func encode(to encoder: Encoder) throws {
        switch self {
        case .null:
            var container = encoder.singleValueContainer()
            try container.encodeNil()
        case .bool(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .number(let number):
            var container = encoder.singleValueContainer()
            if let value = number.integer(as: Int.self) {
                try container.encode(value)
            } else if let value = number.integer(as: UInt64.self) {
                try container.encode(value)
            } else {
                try container.encode(number.double)
            }
        case .string(let value):
            var container = encoder.singleValueContainer()
            try container.encode(value)
        case .array(let items):
            var container = encoder.unkeyedContainer()
            for item in items { try container.encode(item) }
        case .object(let object):
            var container = encoder.container(keyedBy: JSONKey.self)
            for (key, value) in object { try container.encode(value, forKey: JSONKey(key)) }
        }
    }
}

/// A coding key that is any string (or an array index).
struct JSONKey: CodingKey {
    let stringValue: String
    let intValue: Int?

    init(_ string: String) {
        stringValue = string
        intValue = nil
    }

    init(index: Int) {
        stringValue = "[\(index)]"
        intValue = index
    }

    init?(stringValue: String) { self.init(stringValue) }
    init?(intValue: Int) { self.init(index: intValue) }
}
