// Encoding `Encodable` types into a `JSONValue` (then written by JSONWriter.swift): objects keep
// the order in which the type encodes its keys, integers are written exactly, Doubles and
// Floats in their shortest round-trip form. NaN and infinity are errors: JSON has neither.

/// An `Encoder` whose result is a `JSONValue`.
public struct JSONValueEncoder {
    /// `value` as a JSON value.
    public static func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        let root = Node()
        try Box(node: root, codingPath: []).encodeValue(value)
        return root.resolved
    }

    /// One value under construction; containers fill it in place.
    final class Node {
        enum Content {
            case empty
            case value(JSONValue)
            case object(keys: [String], nodes: [String: Node])
            case array([Node])
        }
        var content = Content.empty

        var resolved: JSONValue {
            switch content {
            case .empty: return .object([:])
            case .value(let value): return value
            case .object(let keys, let nodes): return .object(JSONObject(keys.map { (key: $0, value: nodes[$0]!.resolved) }))
            case .array(let nodes): return .array(nodes.map(\.resolved))
            }
        }

        /// The child node for `key`, making this an object.
        func member(_ key: String) -> Node {
            var keys: [String] = [], nodes: [String: Node] = [:]
            if case .object(let existingKeys, let existingNodes) = content { (keys, nodes) = (existingKeys, existingNodes) }
            if let node = nodes[key] { return node }
            let node = Node()
            keys.append(key)
            nodes[key] = node
            content = .object(keys: keys, nodes: nodes)
            return node
        }

        /// A new last item, making this an array.
        func appendItem() -> Node {
            var nodes: [Node] = []
            if case .array(let existing) = content { nodes = existing }
            let node = Node()
            nodes.append(node)
            content = .array(nodes)
            return node
        }

        var itemCount: Int {
            if case .array(let nodes) = content { return nodes.count }
            return 0
        }
    }

    /// The `Encoder` for one node.
    struct Box: Encoder {
        let node: Node
        let codingPath: [CodingKey]
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
            if case .object = node.content {} else { node.content = .object(keys: [], nodes: [:]) }
            return KeyedEncodingContainer(KeyedContainer<Key>(box: self))
        }

        func unkeyedContainer() -> UnkeyedEncodingContainer {
            if case .array = node.content {} else { node.content = .array([]) }
            return UnkeyedContainer(box: self)
        }

        func singleValueContainer() -> SingleValueEncodingContainer { SingleValueContainer(box: self) }

        /// Stores `value` in this node: scalars directly, anything else through its `encode(to:)`.
        func encodeValue<T: Encodable>(_ value: T) throws {
            switch value {
            case let value as JSONValue: node.content = .value(value)
            case let value as Bool: node.content = .value(.bool(value))
            case let value as String: node.content = .value(.string(value))
            case let value as Double: node.content = .value(.number(try finite(value)))
            case let value as Float: node.content = .value(.number(try finite(value)))
            case let value as any BinaryInteger: node.content = .value(.number(JSONNumber(value)))
            default: try value.encode(to: self)
            }
        }

        private func finite<F: BinaryFloatingPoint & CustomStringConvertible>(_ value: F) throws -> JSONNumber {
            guard value.isFinite else {
                throw EncodingError.invalidValue(value, .init(codingPath: codingPath,
                                                               debugDescription: "\(jsonKeyPath(codingPath)): JSON has no \(value)"))
            }
            return JSONNumber(uncheckedLiteral: value.description)
        }

        func child(_ node: Node, key: CodingKey) -> Box { Box(node: node, codingPath: codingPath + [key]) }
    }

    struct KeyedContainer<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let box: Box
        var codingPath: [CodingKey] { box.codingPath }

        func encodeNil(forKey key: Key) throws { box.node.member(key.stringValue).content = .value(.null) }

        func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            try box.child(box.node.member(key.stringValue), key: key).encodeValue(value)
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type,
                                                   forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
            box.child(box.node.member(key.stringValue), key: key).container(keyedBy: keyType)
        }

        func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
            box.child(box.node.member(key.stringValue), key: key).unkeyedContainer()
        }

        func superEncoder() -> Encoder { box.child(box.node.member("super"), key: JSONKey("super")) }
        func superEncoder(forKey key: Key) -> Encoder { box.child(box.node.member(key.stringValue), key: key) }
    }

    struct UnkeyedContainer: UnkeyedEncodingContainer {
        let box: Box
        var codingPath: [CodingKey] { box.codingPath }
        var count: Int { box.node.itemCount }

        private func next() -> Box {
            let node = box.node.appendItem()
            return box.child(node, key: JSONKey(index: count - 1))
        }

        func encodeNil() throws { box.node.appendItem().content = .value(.null) }
        func encode<T: Encodable>(_ value: T) throws { try next().encodeValue(value) }

        func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            next().container(keyedBy: keyType)
        }

        func nestedUnkeyedContainer() -> UnkeyedEncodingContainer { next().unkeyedContainer() }
        func superEncoder() -> Encoder { next() }
    }

    struct SingleValueContainer: SingleValueEncodingContainer {
        let box: Box
        var codingPath: [CodingKey] { box.codingPath }

        func encodeNil() throws { box.node.content = .value(.null) }
        func encode<T: Encodable>(_ value: T) throws { try box.encodeValue(value) }
    }
}
