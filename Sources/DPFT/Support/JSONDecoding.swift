// Reading values out of a parsed JSON tree: typed getters (`JSONReader`) and a Swift `Decoder`
// (`JSONValueDecoder`) for `Codable` types such as Hugging Face configs. Both are strict — a
// string is never read as a number, an integer is read only from an integer literal in range —
// and every error names the source and the key path of the value at fault, e.g.
// `recipe.json: training.optimizer.learning_rate: expected a number, found "x"`.

/// A value the reader could not use: it names the source, the key path and what was wrong.
public struct JSONAccessError: Error, Equatable, CustomStringConvertible {
    /// What kind of fault, for callers that react to some specially.
    public enum Kind: Sendable, Equatable {
        /// A required key is absent.
        case missingKey
        /// A value of another JSON type than expected.
        case wrongType
        /// A number of the right type that does not fit (e.g. 300 as a UInt8, 2.5 as an Int).
        case outOfRange
    }

    /// The file or other origin of the document.
    public var source: String
    /// The path of the value at fault, e.g. `training.optimizer.learning_rate` or
    /// `rules[2].group`; empty for the whole document.
    public var keyPath: String
    /// What kind of fault.
    public var kind: Kind
    /// What was expected and found, e.g. `expected a number, found "x"`.
    public var problem: String

    public var description: String {
        keyPath.isEmpty ? "\(source): \(problem)" : "\(source): \(keyPath): \(problem)"
    }
}

/// Joins a key path and a key: `a` + `b` = `a.b`, `a` + index 2 = `a[2]`.
func jsonKeyPath(_ path: String, _ key: String) -> String { path.isEmpty ? key : path + "." + key }
func jsonKeyPath(_ path: String, index: Int) -> String { "\(path)[\(index)]" }

extension JSONValue {
    /// The value as one line of JSON for messages, cut at about 60 characters.
    public var excerpt: String {
        let text = self.text(.line)
        return text.count <= 60 ? text : String(text.prefix(57)) + "…"
    }
}

// MARK: - Typed getters

/// A value with its source and key path, read through typed getters that throw
/// `JSONAccessError` naming the key path.
public struct JSONReader: Sendable {
    /// The value read.
    public let value: JSONValue
    /// The file or other origin of the document, for errors.
    public let source: String
    /// Where the value sits in the document, e.g. `training.seed` (empty: the whole of it).
    public let keyPath: String

    /// `value`, found at `keyPath` in the document from `source`.
    public init(_ value: JSONValue, source: String, keyPath: String = "") {
        self.value = value
        self.source = source
        self.keyPath = keyPath
    }

    /// Parses `bytes` from `source` and reads the result.
    public init<Bytes: Sequence>(parsing bytes: Bytes, source: String) throws(JSONParseError) where Bytes.Element == UInt8 {
        self.init(try JSONParser.parse(bytes, source: source), source: source)
    }

    /// An error about this value: source and key path filled in.
    public func error(_ kind: JSONAccessError.Kind, _ problem: String) -> JSONAccessError {
        JSONAccessError(source: source, keyPath: keyPath, kind: kind, problem: problem)
    }

    func wrongType(_ expected: String) -> JSONAccessError {
        error(.wrongType, "expected \(expected), found \(value.excerpt)")
    }

    /// The member `key` of this object; nil when this is no object or the key is absent.
    public subscript(key: String) -> JSONReader? {
        guard case .object(let object) = value, let member = object[key] else { return nil }
        return JSONReader(member, source: source, keyPath: jsonKeyPath(keyPath, key))
    }

    /// The member `key`, which must be present (it may be null).
    public func member(_ key: String) throws -> JSONReader {
        _ = try object()
        guard let member = self[key] else {
            throw JSONAccessError(source: source, keyPath: jsonKeyPath(keyPath, key), kind: .missingKey,
                                  problem: "is required but missing")
        }
        return member
    }

    /// The member `key`, or nil when it is absent or null.
    public func optionalMember(_ key: String) throws -> JSONReader? {
        _ = try object()
        guard let member = self[key], !member.value.isNull else { return nil }
        return member
    }

    /// The members of this object, in order.
    public func object() throws -> [(key: String, value: JSONReader)] {
        guard case .object(let object) = value else { throw wrongType("an object") }
        return object.map { ($0.key, JSONReader($0.value, source: source, keyPath: jsonKeyPath(keyPath, $0.key))) }
    }

    /// The items of this array, in order.
    public func array() throws -> [JSONReader] {
        guard case .array(let items) = value else { throw wrongType("an array") }
        return items.enumerated().map { JSONReader($1, source: source, keyPath: jsonKeyPath(keyPath, index: $0)) }
    }

    /// The value as a string; any other type is an error.
    public func string() throws -> String {
        guard case .string(let string) = value else { throw wrongType("a string") }
        return string
    }

    /// The value as a boolean; any other type is an error.
    public func bool() throws -> Bool {
        guard case .bool(let bool) = value else { throw wrongType("true or false") }
        return bool
    }

    /// The number literal, unconverted.
    public func number() throws -> JSONNumber {
        guard case .number(let number) = value else { throw wrongType("a number") }
        return number
    }

    /// Any number literal as a finite Double.
    public func double() throws -> Double {
        let number = try number()
        guard let double = Double(number.literal), double.isFinite else {
            throw error(.outOfRange, "\(number) is beyond the range of a Double")
        }
        return double
    }

    /// Any number literal as a finite Float (rounded once, from the literal).
    public func float() throws -> Float {
        let number = try number()
        guard let float = Float(number.literal), float.isFinite else {
            throw error(.outOfRange, "\(number) is beyond the range of a Float")
        }
        return float
    }

    /// An integer literal (no fraction, no exponent) in the range of `Integer`.
    public func integer<Integer: FixedWidthInteger>(_ type: Integer.Type = Int.self) throws -> Integer {
        let number = try number()
        guard number.isIntegerLiteral else { throw wrongType("an integer") }
        guard let integer = Integer(number.literal) else {
            throw error(.outOfRange, "\(number) is outside \(Integer.min)...\(Integer.max)")
        }
        return integer
    }

    /// Decodes a `Decodable` type from this value with `JSONValueDecoder`.
    public func decode<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try T(from: JSONValueDecoder(value: value, source: source, codingPath: codingPath(keyPath)))
    }
}

/// The coding path of a key path such as `a.b[2]` (for decoders started inside a document).
private func codingPath(_ keyPath: String) -> [CodingKey] {
    keyPath.isEmpty ? [] : [JSONKey(keyPath)]
}

/// The key path of a coding path: keys joined by `.`, indices as `[i]`.
func jsonKeyPath(_ codingPath: [CodingKey]) -> String {
    codingPath.reduce("") { path, key in
        key.intValue.map { jsonKeyPath(path, index: $0) } ?? jsonKeyPath(path, key.stringValue)
    }
}

// MARK: - Decoder

/// A `Decoder` over a parsed value. Strict: types must match (no string-to-number coercion);
/// integers decode only from integer literals in range; Float and Double from any number
/// literal that is finite in the type. Errors are `JSONAccessError`s naming the key path.
/// Unknown keys are left to the type (as with Foundation's decoder).
public struct JSONValueDecoder: Decoder {
    /// The value this decoder reads.
    public let value: JSONValue
    /// The file or other origin of the document, for errors.
    public let source: String
    public let codingPath: [CodingKey]
    public var userInfo: [CodingUserInfoKey: Any] { [:] }

    /// A decoder of `value` from `source`, found at `codingPath`.
    public init(value: JSONValue, source: String, codingPath: [CodingKey] = []) {
        self.value = value
        self.source = source
        self.codingPath = codingPath
    }

    /// Parses `bytes` and decodes `T` from them; `source` names the text in errors.
    public static func decode<T: Decodable, Bytes: Sequence>(_ type: T.Type, from bytes: Bytes, source: String) throws -> T
    where Bytes.Element == UInt8 {
        try T(from: JSONValueDecoder(value: JSONParser.parse(bytes, source: source), source: source))
    }

    var reader: JSONReader { JSONReader(value, source: source, keyPath: jsonKeyPath(codingPath)) }

    public func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let object) = value else { throw reader.wrongType("an object") }
        return KeyedDecodingContainer(KeyedContainer<Key>(decoder: self, object: object))
    }

    public func unkeyedContainer() throws -> UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw reader.wrongType("an array") }
        return UnkeyedContainer(decoder: self, items: items)
    }

    public func singleValueContainer() throws -> SingleValueDecodingContainer { SingleValueContainer(decoder: self) }

    func child(_ value: JSONValue, key: CodingKey) -> JSONValueDecoder {
        JSONValueDecoder(value: value, source: source, codingPath: codingPath + [key])
    }

    /// A scalar of `type` decoded from this value.
    func decodeScalar<T: Decodable>(_ type: T.Type) throws -> T {
        let reader = self.reader
        switch type {
        case is Bool.Type: return try reader.bool() as! T
        case is String.Type: return try reader.string() as! T
        case is Double.Type: return try reader.double() as! T
        case is Float.Type: return try reader.float() as! T
        case is Int.Type: return try reader.integer(Int.self) as! T
        case is Int8.Type: return try reader.integer(Int8.self) as! T
        case is Int16.Type: return try reader.integer(Int16.self) as! T
        case is Int32.Type: return try reader.integer(Int32.self) as! T
        case is Int64.Type: return try reader.integer(Int64.self) as! T
        case is UInt.Type: return try reader.integer(UInt.self) as! T
        case is UInt8.Type: return try reader.integer(UInt8.self) as! T
        case is UInt16.Type: return try reader.integer(UInt16.self) as! T
        case is UInt32.Type: return try reader.integer(UInt32.self) as! T
        case is UInt64.Type: return try reader.integer(UInt64.self) as! T
        case is JSONValue.Type: return value as! T
        default: return try T(from: self)
        }
    }

    private struct KeyedContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let decoder: JSONValueDecoder
        let object: JSONObject
        var codingPath: [CodingKey] { decoder.codingPath }
        var allKeys: [Key] { object.keys.compactMap { Key(stringValue: $0) } }

        func contains(_ key: Key) -> Bool { object[key.stringValue] != nil }

        func child(_ key: Key) throws -> JSONValueDecoder {
            guard let value = object[key.stringValue] else {
                throw JSONAccessError(source: decoder.source, keyPath: jsonKeyPath(codingPath + [key]), kind: .missingKey,
                                      problem: "is required but missing")
            }
            return decoder.child(value, key: key)
        }

        func decodeNil(forKey key: Key) throws -> Bool { try child(key).value.isNull }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try child(key).decodeScalar(type) }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type,
                                                   forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            try child(key).container(keyedBy: type)
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> UnkeyedDecodingContainer {
            try child(key).unkeyedContainer()
        }

        func superDecoder() throws -> Decoder { decoder }
        func superDecoder(forKey key: Key) throws -> Decoder { try child(key) }
    }

    private struct UnkeyedContainer: UnkeyedDecodingContainer {
        let decoder: JSONValueDecoder
        let items: [JSONValue]
        var currentIndex = 0
        var codingPath: [CodingKey] { decoder.codingPath }
        var count: Int? { items.count }
        var isAtEnd: Bool { currentIndex >= items.count }

        mutating func next() throws -> JSONValueDecoder {
            guard !isAtEnd else {
                throw JSONAccessError(source: decoder.source, keyPath: jsonKeyPath(codingPath), kind: .missingKey,
                                      problem: "has only \(items.count) items; more were expected")
            }
            defer { currentIndex += 1 }
            return decoder.child(items[currentIndex], key: JSONKey(index: currentIndex))
        }

        mutating func decodeNil() throws -> Bool {
            guard !isAtEnd, items[currentIndex].isNull else { return false }
            currentIndex += 1
            return true
        }

        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next().decodeScalar(type) }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws
            -> KeyedDecodingContainer<NestedKey> {
            try next().container(keyedBy: type)
        }

        mutating func nestedUnkeyedContainer() throws -> UnkeyedDecodingContainer { try next().unkeyedContainer() }
        mutating func superDecoder() throws -> Decoder { try next() }
    }

    private struct SingleValueContainer: SingleValueDecodingContainer {
        let decoder: JSONValueDecoder
        var codingPath: [CodingKey] { decoder.codingPath }

        func decodeNil() -> Bool { decoder.value.isNull }
        func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeScalar(type) }
    }
}
