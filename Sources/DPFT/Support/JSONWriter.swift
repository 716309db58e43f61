// Writing JSON values: members in their order, number literals as they are, strings escaped
// (quote, backslash and control characters; every other character as is, so the bytes of a
// name survive a round trip).

/// How `JSONValue.text(_:)` lays values out.
public enum JSONStyle: Sendable, Equatable {
    /// No whitespace: `{"a":1,"b":[1,2]}` (safetensors headers, the plugin wire format).
    case compact
    /// One line with a space after `:` and `,`: `{"a": 1, "b": [1, 2]}` (messages).
    case line
    /// One member or item per line, indented by `indent` spaces per level; an array of scalars
    /// stays on one line when that line is at most `inlineArrayWidth` characters (0: never).
    case pretty(indent: Int = 2, inlineArrayWidth: Int = 0)
}

extension JSONValue {
    /// The value as JSON text in `style`; no trailing newline.
    public func text(_ style: JSONStyle = .compact) -> String {
        var output = ""
        write(to: &output, style: style, indent: "")
        return output
    }

    private func write(to output: inout String, style: JSONStyle, indent: String) {
        switch self {
        case .null: output += "null"
        case .bool(let value): output += value ? "true" : "false"
        case .number(let number): output += number.literal
        case .string(let string): output += JSONValue.quoted(string)
        case .array(let items): Self.writeArray(items, to: &output, style: style, indent: indent)
        case .object(let object): Self.writeObject(object, to: &output, style: style, indent: indent)
        }
    }

    private static func writeArray(_ items: [JSONValue], to output: inout String, style: JSONStyle, indent: String) {
        guard !items.isEmpty else { return output += "[]" }
        switch style {
        case .compact, .line:
            output += "["
            for (index, item) in items.enumerated() {
                if index > 0 { output += style == .compact ? "," : ", " }
                item.write(to: &output, style: style, indent: indent)
            }
            output += "]"
        case .pretty(let width, let inlineArrayWidth):
            if inlineArrayWidth > 0, items.allSatisfy(\.isScalar) {
                let line = JSONValue.array(items).text(.line)
                if line.count <= inlineArrayWidth { return output += line }
            }
            let inner = indent + String(repeating: " ", count: width)
            output += "[\n"
            for (index, item) in items.enumerated() {
                if index > 0 { output += ",\n" }
                output += inner
                item.write(to: &output, style: style, indent: inner)
            }
            output += "\n" + indent + "]"
        }
    }

    private static func writeObject(_ object: JSONObject, to output: inout String, style: JSONStyle, indent: String) {
        guard !object.isEmpty else { return output += "{}" }
        switch style {
        case .compact, .line:
            output += "{"
            for (index, (key, value)) in object.enumerated() {
                if index > 0 { output += style == .compact ? "," : ", " }
                output += quoted(key) + (style == .compact ? ":" : ": ")
                value.write(to: &output, style: style, indent: indent)
            }
            output += "}"
        case .pretty(let width, _):
            let inner = indent + String(repeating: " ", count: width)
            output += "{\n"
            for (index, (key, value)) in object.enumerated() {
                if index > 0 { output += ",\n" }
                output += inner + quoted(key) + ": "
                value.write(to: &output, style: style, indent: inner)
            }
            output += "\n" + indent + "}"
        }
    }

    /// `text` as a JSON string literal: `"` and `\` escaped, control characters as `\n`, `\r`,
    /// `\t`, `\b`, `\f` or `\u00XX`, every other character as is.
    public static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case "\u{8}": result += "\\b"
            case "\u{C}": result += "\\f"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                result += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
