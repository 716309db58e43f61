// A strict RFC 8259 JSON parser over bytes. Every file it reads may be hostile (a downloaded
// safetensors header, a config.json, a plugin's answer), so it accepts exactly the grammar:
// no comments, no trailing commas, no single quotes, no leading zeros, no duplicate keys, no
// invalid UTF-8, no lone surrogates, no raw control characters in strings, nothing after the
// value, and nesting bounded so that deep input cannot exhaust the stack. Errors carry the
// source name, line and column (columns count characters, from 1).

/// Why and where a text is not acceptable JSON.
public struct JSONParseError: Error, Equatable, CustomStringConvertible {
    /// What went wrong, for callers that react to some faults specially.
    public enum Kind: Sendable, Equatable {
        /// An object names `key` twice; `keyPath` is its full path, e.g. `training.seed`.
        case duplicateKey(key: String, keyPath: String)
        /// A `//`, `/*` or `#` comment.
        case comment
        /// Nested deeper than the parser's limit.
        case tooDeep
        /// Bytes that are not UTF-8.
        case invalidUTF8
        /// Any other departure from the grammar (the reason says which).
        case syntax
    }

    /// The file or other origin of the text, as given to the parser.
    public var source: String
    /// What went wrong.
    public var kind: Kind
    /// Line and column (both from 1) of the fault.
    public var line: Int
    public var column: Int
    /// What was wrong and, where it helps, what was expected.
    public var reason: String

    /// `line L, column C: reason` (without the source).
    public var locatedReason: String { "line \(line), column \(column): \(reason)" }

    /// `source:L:C: reason`.
    public var description: String { "\(source):\(line):\(column): \(reason)" }
}

/// Parses JSON text; see the file comment for what it rejects.
public struct JSONParser {
    /// The default nesting limit: deep enough for any real file, shallow enough for any stack.
    public static let defaultMaximumDepth = 128

    private let bytes: [UInt8]
    private let source: String
    private let maximumDepth: Int
    private var position = 0
    private var depth = 0

    /// Parses `bytes` (UTF-8, one value, surrounding whitespace allowed, and a leading byte-order
    /// mark when `allowsByteOrderMark`); `source` names the text in errors.
    public static func parse<Bytes: Sequence>(_ bytes: Bytes, source: String,
                                              maximumDepth: Int = defaultMaximumDepth,
                                              allowsByteOrderMark: Bool = false) throws(JSONParseError) -> JSONValue
    where Bytes.Element == UInt8 {
        var parser = JSONParser(bytes: Array(bytes), source: source, maximumDepth: maximumDepth)
        if allowsByteOrderMark, parser.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.position = 3 }
        let value = try parser.value(path: "")
        parser.skipWhitespace()
        if parser.position < parser.bytes.count {
            throw parser.unexpected("the end of the text after the JSON value")
        }
        return value
    }

    /// Parses `text`; see `parse(_:source:maximumDepth:allowsByteOrderMark:)`.
    public static func parse(_ text: String, source: String,
                             maximumDepth: Int = defaultMaximumDepth) throws(JSONParseError) -> JSONValue {
        try parse(text.utf8, source: source, maximumDepth: maximumDepth)
    }

    private init(bytes: [UInt8], source: String, maximumDepth: Int) {
        self.bytes = bytes
        self.source = source
        self.maximumDepth = maximumDepth
    }

    // MARK: Errors

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private func failure(_ reason: String, kind: JSONParseError.Kind = .syntax, at offset: Int? = nil) -> JSONParseError {
        var line = 1, column = 1
        for byte in bytes[..<min(offset ?? position, bytes.count)] {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return JSONParseError(source: source, kind: kind, line: line, column: column, reason: reason)
    }

    private func describeCurrent() -> String {
        guard let byte = current else { return "end of text" }
        if byte < 0x20 || byte == 0x7F { return "byte 0x" + String(byte, radix: 16, uppercase: true) }
        if byte < 0x80 { return "\"\(Character(Unicode.Scalar(byte)))\"" }
        let text = String(decoding: bytes[position..<min(position + 4, bytes.count)], as: UTF8.self)
        return text.first.map { $0 == "\u{FFFD}" ? "byte 0x" + String(byte, radix: 16, uppercase: true) : "\"\($0)\"" }!
    }

    /// The error for an unexpected character where `expected` should be, with a hint for the
    /// usual non-JSON habits.
    private func unexpected(_ expected: String) -> JSONParseError {
        switch current {
        case UInt8(ascii: "'"): return failure("strings need double quotes, not single quotes")
        case UInt8(ascii: "/"), UInt8(ascii: "#"): return failure("JSON has no comments", kind: .comment)
        case nil: return failure("unexpected end of text; expected \(expected)")
        default: return failure("unexpected \(describeCurrent()); expected \(expected)")
        }
    }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 }
    }

    // MARK: Values

    private mutating func value(path: String) throws(JSONParseError) -> JSONValue {
        skipWhitespace()
        guard let byte = current else { throw failure("unexpected end of text; expected a value") }
        switch byte {
        case UInt8(ascii: "{"): return try object(path: path)
        case UInt8(ascii: "["): return try array(path: path)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default: throw unexpected("a value")
        }
    }

    private mutating func literal(_ word: String) throws(JSONParseError) {
        let expected = Array(word.utf8)
        guard bytes[position...].starts(with: expected) else {
            throw failure("unexpected \(describeCurrent()); expected a value (\"\(word)\"?)")
        }
        position += expected.count
    }

    /// Steps into an array or object, refusing to go deeper than `maximumDepth`.
    private mutating func enter() throws(JSONParseError) {
        guard depth < maximumDepth else {
            throw failure("nesting deeper than \(maximumDepth) levels", kind: .tooDeep)
        }
        depth += 1
        position += 1
    }

    private mutating func object(path: String) throws(JSONParseError) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        var object = JSONObject()
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            position += 1
            return .object(object)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else {
                if current == UInt8(ascii: "}") { throw failure("trailing comma before \"}\"") }
                throw unexpected("a key in double quotes")
            }
            let keyStart = position
            let key = try string()
            let keyPath = path.isEmpty ? key : path + "." + key
            guard object[key] == nil else {
                throw failure("key \"\(keyPath)\" appears more than once", kind: .duplicateKey(key: key, keyPath: keyPath),
                              at: keyStart)
            }
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw unexpected("\":\" after key \"\(key)\"") }
            position += 1
            object.appendNew(key, try value(path: keyPath))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return .object(object)
            default: throw unexpected("\",\" or \"}\" after the value of \"\(keyPath)\"")
            }
        }
    }

    private mutating func array(path: String) throws(JSONParseError) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        var items: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            position += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            if current == UInt8(ascii: "]") { throw failure("trailing comma before \"]\"") }
            items.append(try value(path: "\(path)[\(items.count)]"))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; return .array(items)
            default: throw unexpected("\",\" or \"]\" in a list")
            }
        }
    }

    // MARK: Strings

    private mutating func string() throws(JSONParseError) -> String {
        position += 1  // "
        var buffer: [UInt8] = []
        while true {
            guard let byte = current else { throw failure("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: buffer, as: UTF8.self)  // valid: every sequence was checked
            case UInt8(ascii: "\\"):
                try escape(into: &buffer)
            case 0x00..<0x20:
                throw failure("control character in a string; write it as an escape such as \\n")
            case 0x80...:
                let length = try utf8SequenceLength()
                buffer.append(contentsOf: bytes[position..<position + length])
                position += length
            default:
                buffer.append(byte)
                position += 1
            }
        }
    }

    private mutating func escape(into buffer: inout [UInt8]) throws(JSONParseError) {
        position += 1  // backslash
        guard let escape = current else { throw failure("unterminated string") }
        position += 1
        switch escape {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): buffer.append(escape)
        case UInt8(ascii: "b"): buffer.append(0x08)
        case UInt8(ascii: "f"): buffer.append(0x0C)
        case UInt8(ascii: "n"): buffer.append(0x0A)
        case UInt8(ascii: "r"): buffer.append(0x0D)
        case UInt8(ascii: "t"): buffer.append(0x09)
        case UInt8(ascii: "u"):
            let start = position - 2
            var code = try hexQuad()
            if (0xDC00...0xDFFF).contains(code) {
                throw failure("\\u escape of a lone low surrogate", at: start)
            }
            if (0xD800...0xDBFF).contains(code) {
                guard bytes[position...].starts(with: Array("\\u".utf8)) else {
                    throw failure("a \\u high surrogate must be followed by a \\u low surrogate", at: start)
                }
                position += 2
                let low = try hexQuad()
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw failure("a \\u high surrogate must be followed by a \\u low surrogate", at: start)
                }
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
            }
            buffer.append(contentsOf: String(Character(Unicode.Scalar(code)!)).utf8)
        default:
            position -= 2
            throw failure("invalid escape in a string (use \\\", \\\\, \\/, \\b, \\f, \\n, \\r, \\t or \\uXXXX)")
        }
    }

    private mutating func hexQuad() throws(JSONParseError) -> UInt32 {
        var code: UInt32 = 0
        for offset in 0..<4 {
            guard position + offset < bytes.count,
                  let digit = Character(Unicode.Scalar(bytes[position + offset])).hexDigitValue else {
                throw failure("\\u needs four hex digits")
            }
            code = code * 16 + UInt32(digit)
        }
        position += 4
        return code
    }

    /// The length of the well-formed UTF-8 sequence at `position` (Unicode Table 3-7: no
    /// overlong forms, no surrogates, nothing above U+10FFFF).
    private func utf8SequenceLength() throws(JSONParseError) -> Int {
        let lead = bytes[position]
        let length: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        switch lead {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; secondRange = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; secondRange = 0x80...0x9F
        case 0xF0: length = 4; secondRange = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; secondRange = 0x80...0x8F
        default: throw failure("invalid UTF-8 (byte 0x\(String(lead, radix: 16, uppercase: true)))", kind: .invalidUTF8)
        }
        for offset in 1..<length {
            let range = offset == 1 ? secondRange : 0x80...0xBF
            guard position + offset < bytes.count, range.contains(bytes[position + offset]) else {
                throw failure("invalid UTF-8 (a truncated or malformed multi-byte sequence)", kind: .invalidUTF8)
            }
        }
        return length
    }

    // MARK: Numbers

    private mutating func number() throws(JSONParseError) -> JSONNumber {
        let start = position
        func isDigit(_ byte: UInt8?) -> Bool { byte.map { (0x30...0x39).contains($0) } ?? false }
        if current == UInt8(ascii: "-") { position += 1 }
        guard isDigit(current) else { throw failure("invalid number: expected a digit") }
        if current == UInt8(ascii: "0") {
            position += 1
            if isDigit(current) { throw failure("invalid number: leading zeros are not allowed") }
        } else {
            while isDigit(current) { position += 1 }
        }
        if current == UInt8(ascii: ".") {
            position += 1
            guard isDigit(current) else { throw failure("invalid number: expected a digit after \".\"") }
            while isDigit(current) { position += 1 }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard isDigit(current) else { throw failure("invalid number: expected a digit in the exponent") }
            while isDigit(current) { position += 1 }
        }
        return JSONNumber(uncheckedLiteral: String(decoding: bytes[start..<position], as: UTF8.self))
    }
}
