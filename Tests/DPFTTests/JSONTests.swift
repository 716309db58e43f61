import Foundation
import Testing
@testable import DPFT

/// The strict JSON layer (Support/JSON*.swift): what it rejects and where it says the fault is,
/// exact round trips of member order and number literals, typed getters and the `Decoder`.
@Suite struct JSONTests {
    static func parseError(_ text: String, maximumDepth: Int = JSONParser.defaultMaximumDepth) -> JSONParseError? {
        do {
            let value = try JSONParser.parse(text, source: "test.json", maximumDepth: maximumDepth)
            Issue.record("expected an error, got \(value)")
        } catch {
            return error
        }
        return nil
    }

    static func parseError(bytes: [UInt8]) -> JSONParseError? {
        do {
            let value = try JSONParser.parse(bytes, source: "test.json")
            Issue.record("expected an error, got \(value)")
        } catch {
            return error
        }
        return nil
    }

    // MARK: Rejections, with line and column

    @Test func duplicateKeysAreRejectedWithLineAndColumn() throws {
        let error = try #require(Self.parseError("{\n  \"a\": {\"b\": 1,\n        \"b\": 2}}"))
        #expect(error.kind == .duplicateKey(key: "b", keyPath: "a.b"))
        #expect(error.line == 3)
        #expect(error.column == 9)
        #expect(error.description == "test.json:3:9: key \"a.b\" appears more than once")
    }

    @Test func duplicateKeysInsideArraysNameTheIndex() throws {
        let error = try #require(Self.parseError("{\"rules\": [{}, {\"x\": 1, \"x\": 1}]}"))
        #expect(error.kind == .duplicateKey(key: "x", keyPath: "rules[1].x"))
        #expect((error.line, error.column) == (1, 25))
    }

    @Test func nestingIsLimited() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let error = try #require(Self.parseError(deep))
        #expect(error.kind == .tooDeep)
        #expect(error.reason == "nesting deeper than 128 levels")
        #expect((error.line, error.column) == (1, 129))
        // Exactly at the limit is fine.
        let limit = String(repeating: "[", count: 128) + String(repeating: "]", count: 128)
        #expect(throws: Never.self) { try JSONParser.parse(limit, source: "test.json") }
        #expect(Self.parseError("{\"a\": [[1]]}", maximumDepth: 2)?.kind == .tooDeep)
    }

    @Test(arguments: [
        ("{\"a\": 1} x", "line 1, column 10: unexpected \"x\"; expected the end of the text after the JSON value"),
        ("{\"a\": 1,}", "line 1, column 9: trailing comma before \"}\""),
        ("[1, 2,]", "line 1, column 7: trailing comma before \"]\""),
        ("{'a': 1}", "line 1, column 2: strings need double quotes, not single quotes"),
        ("{\n // note\n \"a\": 1}", "line 2, column 2: JSON has no comments"),
        ("[01]", "line 1, column 3: invalid number: leading zeros are not allowed"),
        ("[1.]", "line 1, column 4: invalid number: expected a digit after \".\""),
        ("[1e]", "line 1, column 4: invalid number: expected a digit in the exponent"),
        ("[-]", "line 1, column 3: invalid number: expected a digit"),
        ("[+1]", "line 1, column 2: unexpected \"+\"; expected a value"),
        ("[NaN]", "line 1, column 2: unexpected \"N\"; expected a value"),
        ("[tru]", "line 1, column 2: unexpected \"t\"; expected a value (\"true\"?)"),
        ("", "line 1, column 1: unexpected end of text; expected a value"),
        ("   ", "line 1, column 4: unexpected end of text; expected a value"),
        ("{\"a\" 1}", "line 1, column 6: unexpected \"1\"; expected \":\" after key \"a\""),
        ("{\"a\": 1 \"b\": 2}", "line 1, column 9: unexpected \"\"\"; expected \",\" or \"}\" after the value of \"a\""),
        ("[1 2]", "line 1, column 4: unexpected \"2\"; expected \",\" or \"]\" in a list"),
        ("{1: 2}", "line 1, column 2: unexpected \"1\"; expected a key in double quotes"),
        ("[\"abc", "line 1, column 6: unterminated string"),
        ("[\"a\\x\"]", "line 1, column 4: invalid escape in a string (use \\\", \\\\, \\/, \\b, \\f, \\n, \\r, \\t or \\uXXXX)"),
        ("[\"\\u12\"]", "line 1, column 5: \\u needs four hex digits"),
        ("[\"\\ud800\"]", "line 1, column 3: a \\u high surrogate must be followed by a \\u low surrogate"),
        ("[\"\\ud800\\u0041\"]", "line 1, column 3: a \\u high surrogate must be followed by a \\u low surrogate"),
        ("[\"\\udc00\"]", "line 1, column 3: \\u escape of a lone low surrogate"),
        ("[\"a\tb\"]", "line 1, column 4: control character in a string; write it as an escape such as \\n"),
        ("[\"é\" x]", "line 1, column 6: unexpected \"x\"; expected \",\" or \"]\" in a list"),
    ])
    func everySyntaxErrorSaysWhereAndWhy(text: String, reason: String) throws {
        let error = try #require(Self.parseError(text))
        #expect(error.locatedReason == reason)
        #expect(error.source == "test.json")
    }

    @Test(arguments: [
        [0x22, 0xFF, 0x22],              // a byte that never occurs in UTF-8
        [0x22, 0xC0, 0xAF, 0x22],        // overlong "/"
        [0x22, 0xED, 0xA0, 0x80, 0x22],  // an encoded surrogate
        [0x22, 0xF4, 0x90, 0x80, 0x80, 0x22],  // above U+10FFFF
        [0x22, 0xE2, 0x82, 0x22],        // truncated sequence
        [0x5B, 0xC3, 0xA9, 0x5D],        // "é" outside a string is not JSON either
    ] as [[UInt8]])
    func invalidUTF8IsRejected(bytes: [UInt8]) throws {
        let error = try #require(Self.parseError(bytes: bytes))
        if bytes.first == 0x22 {
            #expect(error.kind == .invalidUTF8)
            #expect((error.line, error.column) == (1, 2))
        } else {
            #expect(error.reason == "unexpected \"é\"; expected a value")
        }
    }

    @Test func byteOrderMarkOnlyWhenAllowed() throws {
        let bytes: [UInt8] = [0xEF, 0xBB, 0xBF] + Array("{}".utf8)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(bytes, source: "x") }
        #expect(try JSONParser.parse(bytes, source: "x", allowsByteOrderMark: true) == .object([:]))
    }

    @Test func stringsDecodeEscapesAndSurrogatePairs() throws {
        let value = try JSONParser.parse(#"["a\"\\\/\b\f\n\r\t", "\u00e9\ud83d\ude00", "é😀"]"#, source: "x")
        #expect(value == ["a\"\\/\u{8}\u{C}\n\r\t", "é😀", "é😀"])
    }

    // MARK: Round trips

    @Test func numberLiteralsAndMemberOrderRoundTrip() throws {
        let text = #"{"z":1e-5,"a":2.0,"m":[0,-0.5,1E+3,18446744073709551615,-12],"s":"x\u0001\"y","n":null,"t":true}"#
        let value = try JSONParser.parse(text, source: "x")
        #expect(value.text(.compact) == text)
        guard case .object(let object) = value else { Issue.record("not an object"); return }
        #expect(object.keys == ["z", "a", "m", "s", "n", "t"])
        guard case .number(let small)? = object["z"], case .number(let two)? = object["a"] else {
            Issue.record("not numbers"); return
        }
        #expect(small.literal == "1e-5")
        #expect(two.literal == "2.0")
        #expect(two == JSONNumber(2))  // equal values, different literals
        #expect(two.integer(as: Int.self) == nil)
        #expect(two.wholeNumber == 2)
    }

    @Test func writerStyles() throws {
        let value: JSONValue = ["b": [1, 2], "a": ["x": "y\n"], "e": [:], "l": []]
        #expect(value.text(.compact) == #"{"b":[1,2],"a":{"x":"y\n"},"e":{},"l":[]}"#)
        #expect(value.text(.line) == #"{"b": [1, 2], "a": {"x": "y\n"}, "e": {}, "l": []}"#)
        #expect(value.text(.pretty()) == "{\n  \"b\": [\n    1,\n    2\n  ],\n  \"a\": {\n    \"x\": \"y\\n\"\n  },\n  \"e\": {},\n  \"l\": []\n}")
        #expect(value.text(.pretty(indent: 2, inlineArrayWidth: 72)).hasPrefix("{\n  \"b\": [1, 2],\n"))
        #expect(value.sortedByKey().text(.compact) == #"{"a":{"x":"y\n"},"b":[1,2],"e":{},"l":[]}"#)
        // Whatever the writer writes, the parser reads back equal, and Foundation accepts it.
        let reparsed = try JSONParser.parse(value.text(.pretty()), source: "x")
        #expect(reparsed == value)
        #expect((try? JSONSerialization.jsonObject(with: Data(value.text().utf8))) != nil)
    }

    @Test func quotedEscapesOnlyWhatJSONRequires() {
        #expect(JSONValue.quoted("a\"b\\c\n\r\t\u{8}\u{C}\u{1}\u{7F}é/") == #""a\"b\\c\n\r\t\b\f\u0001"# + "\u{7F}é/\"")
    }

    @Test func objectsAreEqualInAnyOrderAndKeepTheirOwn() {
        var object: JSONObject = ["a": 1, "b": 2]
        object["c"] = 3
        object["a"] = 4
        #expect(object.keys == ["a", "b", "c"])
        object["b"] = nil
        #expect(object.keys == ["a", "c"])
        #expect(object["c"] == 3)
        #expect(JSONValue.object(["x": 1, "y": 2]) == .object(["y": 2, "x": 1.0]))
        #expect(JSONValue.object(["x": 1]) != .object(["x": 1, "y": 2]))
        #expect(JSONNumber(literal: "18446744073709551615") != JSONNumber(literal: "18446744073709551614"))
        #expect(JSONNumber(literal: "01") == nil)
        #expect(JSONNumber(literal: "-1.5e+3")?.double == -1500)
    }

    // MARK: Typed getters

    static let config = JSONReader(try! JSONParser.parse("""
        {"training": {"optimizer": {"learning_rate": "x", "steps": 2.5, "big": 300}}, "list": [1, "two"]}
        """, source: "recipe.json"), source: "recipe.json")

    @Test func typedGettersNameTheKeyPath() throws {
        let optimizer = try Self.config.member("training").member("optimizer")
        let learningRate = try optimizer.member("learning_rate")
        #expect(throws: JSONAccessError(source: "recipe.json", keyPath: "training.optimizer.learning_rate", kind: .wrongType,
                                        problem: "expected a number, found \"x\"")) { try learningRate.double() }
        do {
            _ = try learningRate.double()
        } catch {
            #expect("\(error)" == "recipe.json: training.optimizer.learning_rate: expected a number, found \"x\"")
        }
        #expect(throws: JSONAccessError(source: "recipe.json", keyPath: "training.optimizer.steps", kind: .wrongType,
                                        problem: "expected an integer, found 2.5")) { try optimizer.member("steps").integer() }
        #expect(throws: JSONAccessError(source: "recipe.json", keyPath: "training.optimizer.big", kind: .outOfRange,
                                        problem: "300 is outside 0...255")) { try optimizer.member("big").integer(UInt8.self) }
        #expect(throws: JSONAccessError(source: "recipe.json", keyPath: "training.optimizer.beta1", kind: .missingKey,
                                        problem: "is required but missing")) { try optimizer.member("beta1") }
        #expect(try optimizer.optionalMember("beta1") == nil)
        let items = try Self.config.member("list").array()
        #expect(try items[0].integer() == 1)
        #expect(throws: JSONAccessError(source: "recipe.json", keyPath: "list[1]", kind: .wrongType,
                                        problem: "expected a number, found \"two\"")) { try items[1].double() }
        #expect(throws: JSONAccessError(source: "recipe.json", keyPath: "list", kind: .wrongType,
                                        problem: "expected an object, found [1, \"two\"]")) { try Self.config.member("list").object() }
    }

    // MARK: Decoder

    struct Config: Decodable, Equatable {
        struct Layer: Decodable, Equatable {
            var size: Int
            var bias: Bool?
        }
        var name: String
        var epsilon: Float
        var scale: Double
        var layers: [Layer]
        var seed: UInt64
        var extra: String?

        enum CodingKeys: String, CodingKey {
            case name, epsilon = "rms_norm_eps", scale, layers, seed, extra
        }
    }

    static func decode(_ text: String) throws -> Config {
        try JSONValueDecoder.decode(Config.self, from: Array(text.utf8), source: "config.json")
    }

    static let goodConfig = """
        {"name": "tiny", "rms_norm_eps": 1e-5, "scale": 2, "seed": 18446744073709551615,
         "layers": [{"size": 4}, {"size": 8, "bias": true}], "unknown": [1, {"deep": null}]}
        """

    @Test func decoderReadsCodableTypes() throws {
        let config = try Self.decode(Self.goodConfig)
        #expect(config == Config(name: "tiny", epsilon: 1e-5, scale: 2, layers: [.init(size: 4), .init(size: 8, bias: true)],
                                 seed: .max, extra: nil))
    }

    @Test(arguments: [
        ("\"layers\": [{\"size\": 4}", "\"layers\": [{\"size\": 4.0}", "layers[0].size", JSONAccessError.Kind.wrongType,
         "expected an integer, found 4.0"),
        ("\"layers\": [{\"size\": 4}", "\"layers\": [{\"size\": 99999999999999999999}", "layers[0].size", .outOfRange,
         "99999999999999999999 is outside \(Int.min)...\(Int.max)"),
        ("\"layers\": [{\"size\": 4}", "\"layers\": [{}", "layers[0].size", .missingKey, "is required but missing"),
        ("\"bias\": true", "\"bias\": \"yes\"", "layers[1].bias", .wrongType, "expected true or false, found \"yes\""),
        ("\"scale\": 2", "\"scale\": \"2\"", "scale", .wrongType, "expected a number, found \"2\""),
        ("\"rms_norm_eps\": 1e-5", "\"rms_norm_eps\": 1e99", "rms_norm_eps", .outOfRange, "1e99 is beyond the range of a Float"),
        ("\"name\": \"tiny\"", "\"name\": 3", "name", .wrongType, "expected a string, found 3"),
        ("\"seed\": 18446744073709551615", "\"seed\": -1", "seed", .outOfRange, "-1 is outside 0...\(UInt64.max)"),
    ])
    func decoderErrorsNameTheKeyPath(original: String, replacement: String, keyPath: String,
                                     kind: JSONAccessError.Kind, problem: String) throws {
        let text = Self.goodConfig.replacingOccurrences(of: original, with: replacement)
        #expect(text != Self.goodConfig)
        #expect(throws: JSONAccessError(source: "config.json", keyPath: keyPath, kind: kind, problem: problem)) {
            try Self.decode(text)
        }
    }

    @Test func decoderPassesParseErrorsThrough() {
        #expect(throws: JSONParseError.self) { try Self.decode("{\"name\": \"a\", \"name\": \"b\"}") }
    }

    @Test func jsonValueDecodesAsItselfAndEncodesThroughFoundation() throws {
        let value = try JSONParser.parse(#"{"b": 1e-5, "a": [true, null, "x", 3]}"#, source: "x")
        let decoded = try JSONReader(value, source: "x").decode(JSONValue.self)
        #expect(decoded.text() == value.text())
        let encoded = try JSONEncoder().encode(value)
        #expect(try JSONDecoder().decode(JSONValue.self, from: encoded) == value)
    }
}

/// The encoder: `Encodable` types become values in their key order; the decoder reads them back.
@Suite struct JSONEncodingTests {
    struct Sample: Codable, Equatable {
        enum Kind: String, Codable { case attention, mlp }
        var name: String
        var shape: [Int]
        var kind: Kind
        var threshold: Double?
        var scale: Float
        var seed: UInt64
        var nested: [String: [Bool]]
    }

    @Test func encodesInKeyOrderAndRoundTrips() throws {
        let sample = Sample(name: "a\"b", shape: [2, 3], kind: .mlp, threshold: nil, scale: 0.1, seed: .max,
                            nested: ["x": [true, false]])
        let value = try JSONValueEncoder.encode(sample)
        #expect(value.text() == #"{"name":"a\"b","shape":[2,3],"kind":"mlp","scale":0.1,"seed":18446744073709551615,"nested":{"x":[true,false]}}"#)
        #expect(try JSONReader(value, source: "x").decode(Sample.self) == sample)
    }

    @Test func nonFiniteNumbersAreErrors() {
        #expect(throws: EncodingError.self) { try JSONValueEncoder.encode([1.0, .nan]) }
        #expect(throws: EncodingError.self) { try JSONValueEncoder.encode(["x": Float.infinity]) }
    }
}
