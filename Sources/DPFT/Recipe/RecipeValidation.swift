import Foundation

// Reading and writing recipes: a small JSON parser that keeps number literals exact and
// rejects duplicate keys, `--set` overrides applied to the parsed tree, a reader that tracks
// the key path of every value it converts, and the resolved form written back.

// MARK: - Schema

/// The keys each recipe object may hold: the one list that unknown-key checks, suggestions and
/// `Recipe.knownKeys` share. Keys that apply only to some variants (e.g. `momentum`) are listed;
/// the section reader rejects them where they do not apply.
enum RecipeSchema {
    static let sections: [String: [String]] = [
        "": ["name", "description", "model", "adapter", "data", "privacy", "training", "output", "plugins"],
        "model": ["checkpoint", "tokenizer"],
        "adapter": ["type", "rank", "alpha", "targets", "trainable"],
        "data": ["train", "eval", "format", "template", "chat_template", "max_length", "train_on", "on_malformed",
                 "add_bos", "add_eos"],
        "data.template": ["prompt", "prompt_no_input", "response"],
        "data.chat_template": ["system", "user", "assistant"],
        "privacy": ["target_epsilon", "noise_multiplier", "delta", "accountant", "clipping", "gamma", "threshold",
                    "grouping", "grouping_options", "rules", "noise_seed", "sampling"],
        "training": ["epochs", "steps", "batch_size", "physical_batch_size", "optimizer", "schedule", "seed",
                     "eval_every", "eval_examples", "generate_examples", "max_new_tokens"],
        "training.optimizer": ["name", "learning_rate", "momentum", "beta1", "beta2", "epsilon", "weight_decay"],
        "training.schedule": ["name", "warmup_steps", "min_learning_rate"],
        "output": ["directory", "checkpoint_every", "export"],
        "output.export": ["format", "merge_lora"],
    ]

    static let allKeyPaths: [String] = sections.flatMap { section, keys in keys.map { join(section, $0) } }.sorted()

    /// Names other tools use for our keys (normalized: lowercase, no `_`, `-` or spaces).
    static let aliases: [String: String] = [
        "lr": "learning_rate", "sigma": "noise_multiplier", "noise": "noise_multiplier",
        "epsilon": "target_epsilon", "eps": "target_epsilon", "targeteps": "target_epsilon",
        "maxgradnorm": "threshold", "clipnorm": "threshold", "clippingthreshold": "threshold",
        "clippingnorm": "threshold", "r": "rank", "loraalpha": "alpha", "targetmodules": "targets",
        "loratargets": "targets", "maxsteps": "steps", "numsteps": "steps", "numepochs": "epochs",
        "numtrainepochs": "epochs", "maxseqlen": "max_length", "maxseqlength": "max_length",
        "seqlen": "max_length", "maxlen": "max_length", "microbatchsize": "physical_batch_size",
        "outputdir": "directory", "outdir": "directory", "optim": "optimizer", "scheduler": "schedule",
        "lrscheduler": "schedule", "warmup": "warmup_steps", "wd": "weight_decay", "validation": "eval",
        "valid": "eval", "test": "eval", "groups": "grouping", "kind": "type",
    ]

    static func join(_ section: String, _ key: String) -> String {
        section.isEmpty ? key : section + "." + key
    }

    /// The known key path a misspelt or misplaced `key` (found in `section`) most likely meant:
    /// an alias or a close spelling among its siblings, else the one key of that name elsewhere.
    static func suggestion(for key: String, in section: String) -> String? {
        let wanted = normalized(key)
        let siblings = sections[section] ?? []
        if let alias = aliases[wanted], siblings.contains(alias) { return join(section, alias) }
        let limit = max(1, min(3, wanted.count / 4))
        let scored = siblings.map { ($0, editDistance(wanted, normalized($0))) }.filter { $0.1 <= limit }
        if let best = scored.min(by: { $0.1 < $1.1 }) { return join(section, best.0) }
        if wanted.count >= 4, let longer = siblings.first(where: { normalized($0).hasPrefix(wanted) }) {
            return join(section, longer)  // "batch" for "batch_size"
        }
        let elsewhere = allKeyPaths.filter { path in
            let leaf = String(path.split(separator: ".").last!)
            return normalized(leaf) == wanted || aliases[wanted] == leaf
        }
        return elsewhere.count == 1 ? elsewhere[0] : nil
    }

    static func normalized(_ key: String) -> String {
        String(key.lowercased().filter { $0 != "_" && $0 != "-" && $0 != " " })
    }

    /// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[a.count][b.count]
    }
}

// MARK: - JSON tree

/// A JSON value as the recipe reader sees it. Numbers keep their literal text, so that integers
/// (seeds up to 2^64 − 1) stay exact and `8` and `8.5` can be told apart.
indirect enum RecipeJSON: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([RecipeJSON])
    case object([String: RecipeJSON])

    static func number(_ value: Double) -> RecipeJSON { .number(value.description) }
    static func number(_ value: Int) -> RecipeJSON { .number(String(value)) }
    static func number(_ value: UInt64) -> RecipeJSON { .number(String(value)) }
    static func optional(_ value: String?) -> RecipeJSON { value.map(RecipeJSON.string) ?? .null }

    /// The literal as an Int: written as an integer, or as a whole number such as `1e3`.
    static func integer(_ literal: String) -> Int? {
        if let value = Int(literal) { return value }
        guard let value = Double(literal), value == value.rounded(), abs(value) <= 9_007_199_254_740_992 else { return nil }
        return Int(value)
    }

    /// The literal as a UInt64: written as an integer, or as a whole number up to 2^53.
    static func unsigned(_ literal: String) -> UInt64? {
        if let value = UInt64(literal) { return value }
        guard let value = Double(literal), value == value.rounded(), value >= 0, value <= 9_007_199_254_740_992 else {
            return nil
        }
        return UInt64(value)
    }

    var isScalar: Bool {
        switch self {
        case .array, .object: return false
        default: return true
        }
    }

    /// Pretty JSON: keys sorted, two-space indent; short lists of scalars on one line.
    func rendered(indent: String = "") -> String {
        let inner = indent + "  "
        switch self {
        case .null: return "null"
        case .bool(let value): return value ? "true" : "false"
        case .number(let literal): return literal
        case .string(let value): return Self.quoted(value)
        case .array(let items):
            if items.isEmpty { return "[]" }
            if items.allSatisfy(\.isScalar) {
                let line = "[" + items.map { $0.rendered() }.joined(separator: ", ") + "]"
                if line.count <= 72 { return line }
            }
            return "[\n" + items.map { inner + $0.rendered(indent: inner) }.joined(separator: ",\n") + "\n" + indent + "]"
        case .object(let members):
            if members.isEmpty { return "{}" }
            return "{\n" + members.keys.sorted().map { key in
                inner + Self.quoted(key) + ": " + members[key]!.rendered(indent: inner)
            }.joined(separator: ",\n") + "\n" + indent + "}"
        }
    }

    /// One-line JSON for messages, cut at about 60 characters.
    var compactText: String {
        let text: String
        switch self {
        case .array(let items): text = "[" + items.map(\.compactText).joined(separator: ", ") + "]"
        case .object(let members):
            text = "{" + members.keys.sorted().map { Self.quoted($0) + ": " + members[$0]!.compactText }
                .joined(separator: ", ") + "}"
        default: text = rendered()
        }
        return text.count <= 60 ? text : String(text.prefix(57)) + "…"
    }

    static func quoted(_ text: String) -> String { jsonStringLiteral(text) }

    /// A grouping option value (numbers become Double).
    var groupingOptionValue: GroupingOptionValue {
        switch self {
        case .null: return .null
        case .bool(let value): return .boolean(value)
        case .number(let literal): return .number(Double(literal) ?? .nan)
        case .string(let value): return .string(value)
        case .array(let items): return .array(items.map(\.groupingOptionValue))
        case .object(let members): return .object(members.mapValues(\.groupingOptionValue))
        }
    }

    init(_ option: GroupingOptionValue) {
        switch option {
        case .null: self = .null
        case .boolean(let value): self = .bool(value)
        case .number(let value):
            self = value == value.rounded() && abs(value) < 1e15 ? .number(String(Int(value))) : .number(value)
        case .string(let value): self = .string(value)
        case .array(let items): self = .array(items.map(RecipeJSON.init))
        case .object(let members): self = .object(members.mapValues(RecipeJSON.init))
        }
    }
}

// MARK: - Parser

/// RFC 8259 JSON, strictly: no comments, no trailing commas, no duplicate keys; errors give
/// line and column.
struct RecipeJSONParser {
    enum Failure: Error {
        case syntax(reason: String, line: Int, column: Int)
        case duplicateKey(keyPath: String)

        var text: String {
            switch self {
            case .syntax(let reason, let line, let column): return "line \(line), column \(column): \(reason)"
            case .duplicateKey(let keyPath): return "key \"\(keyPath)\" appears more than once"
            }
        }
    }

    private let bytes: [UInt8]
    private var position = 0
    private static let maximumDepth = 256

    static func parse(_ text: String) throws(Failure) -> RecipeJSON {
        var parser = RecipeJSONParser(bytes: Array(text.utf8))
        if parser.bytes.starts(with: [0xEF, 0xBB, 0xBF]) { parser.position = 3 }  // byte-order mark
        let value = try parser.value(path: "", depth: 0)
        parser.skipWhitespace()
        if parser.position < parser.bytes.count {
            throw parser.unexpected("the end of the text after the JSON value")
        }
        return value
    }

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    private var current: UInt8? { position < bytes.count ? bytes[position] : nil }

    private func failure(_ reason: String) -> Failure {
        var line = 1, column = 1
        for byte in bytes[..<min(position, bytes.count)] {
            if byte == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
        }
        return .syntax(reason: reason, line: line, column: column)
    }

    private func describeCurrent() -> String {
        guard position < bytes.count else { return "end of text" }
        let character = String(decoding: bytes[position..<min(position + 4, bytes.count)], as: UTF8.self).first!
        return "\"\(character)\""
    }

    /// The error for an unexpected character where `expected` should be, with a hint for the
    /// usual non-JSON habits.
    private func unexpected(_ expected: String) -> Failure {
        switch current {
        case UInt8(ascii: "'"): return failure("strings need double quotes, not single quotes")
        case UInt8(ascii: "/"), UInt8(ascii: "#"):
            return failure("JSON has no comments; say what a recipe is for in \"description\"")
        default: return failure("unexpected \(describeCurrent()); expected \(expected)")
        }
    }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 { position += 1 }
    }

    private mutating func value(path: String, depth: Int) throws(Failure) -> RecipeJSON {
        skipWhitespace()
        guard depth < Self.maximumDepth else { throw failure("nested more than \(Self.maximumDepth) levels deep") }
        guard let byte = current else { throw failure("unexpected end of text; expected a value") }
        switch byte {
        case UInt8(ascii: "{"): return try object(path: path, depth: depth)
        case UInt8(ascii: "["): return try array(path: path, depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default: throw unexpected("a value")
        }
    }

    private mutating func literal(_ word: String) throws(Failure) {
        let expected = Array(word.utf8)
        guard bytes[position...].starts(with: expected) else {
            throw failure("unexpected \(describeCurrent()); expected a value (\"\(word)\"?)")
        }
        position += expected.count
    }

    private mutating func object(path: String, depth: Int) throws(Failure) -> RecipeJSON {
        position += 1  // {
        var members: [String: RecipeJSON] = [:]
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else {
                if current == UInt8(ascii: "}") { throw failure("trailing comma before \"}\"") }
                throw unexpected("a key in double quotes")
            }
            let key = try string()
            let keyPath = RecipeSchema.join(path, key)
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw failure("expected \":\" after key \"\(key)\"") }
            position += 1
            let member = try value(path: keyPath, depth: depth + 1)
            guard members.updateValue(member, forKey: key) == nil else { throw .duplicateKey(keyPath: keyPath) }
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return .object(members)
            default: throw unexpected("\",\" or \"}\" after the value of \"\(keyPath)\"")
            }
        }
    }

    private mutating func array(path: String, depth: Int) throws(Failure) -> RecipeJSON {
        position += 1  // [
        var items: [RecipeJSON] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            position += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            if current == UInt8(ascii: "]") { throw failure("trailing comma before \"]\"") }
            items.append(try value(path: "\(path)[\(items.count)]", depth: depth + 1))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; return .array(items)
            default: throw unexpected("\",\" or \"]\" in a list")
            }
        }
    }

    private mutating func string() throws(Failure) -> String {
        position += 1  // "
        var buffer: [UInt8] = []
        while true {
            guard let byte = current else { throw failure("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                return String(decoding: buffer, as: UTF8.self)
            case UInt8(ascii: "\\"):
                position += 1
                guard let escape = current else { throw failure("unterminated string") }
                position += 1
                switch escape {
                case UInt8(ascii: "\""): buffer.append(0x22)
                case UInt8(ascii: "\\"): buffer.append(0x5C)
                case UInt8(ascii: "/"): buffer.append(0x2F)
                case UInt8(ascii: "b"): buffer.append(0x08)
                case UInt8(ascii: "f"): buffer.append(0x0C)
                case UInt8(ascii: "n"): buffer.append(0x0A)
                case UInt8(ascii: "r"): buffer.append(0x0D)
                case UInt8(ascii: "t"): buffer.append(0x09)
                case UInt8(ascii: "u"):
                    var code = try hexQuad()
                    if (0xD800...0xDBFF).contains(code) {
                        guard bytes[position...].starts(with: Array("\\u".utf8)) else {
                            throw failure("a \\u high surrogate must be followed by a \\u low surrogate")
                        }
                        position += 2
                        let low = try hexQuad()
                        guard (0xDC00...0xDFFF).contains(low) else {
                            throw failure("a \\u high surrogate must be followed by a \\u low surrogate")
                        }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let scalar = Unicode.Scalar(code) else { throw failure("\\u escape of a lone surrogate") }
                    buffer.append(contentsOf: String(Character(scalar)).utf8)
                default:
                    position -= 2
                    throw failure("invalid escape in a string (use \\\", \\\\, \\/, \\b, \\f, \\n, \\r, \\t or \\uXXXX)")
                }
            case 0x00..<0x20:
                throw failure("control character in a string; write it as an escape such as \\n")
            default:
                buffer.append(byte)
                position += 1
            }
        }
    }

    private mutating func hexQuad() throws(Failure) -> UInt32 {
        guard position + 4 <= bytes.count,
              let code = UInt32(String(decoding: bytes[position..<position + 4], as: UTF8.self), radix: 16) else {
            throw failure("\\u needs four hex digits")
        }
        position += 4
        return code
    }

    private mutating func number() throws(Failure) -> RecipeJSON {
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
        return .number(String(decoding: bytes[start..<position], as: UTF8.self))
    }
}

// MARK: - Sources and overrides

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

    /// Parses `key.path=value`: the value is JSON when it parses, else a bare string.
    static func parseOverride(_ text: String) throws -> (keys: [String], value: RecipeJSON) {
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
        let value: RecipeJSON
        do {
            value = try RecipeJSONParser.parse(valueText)
        } catch {
            // Text meant as a JSON string, list or object must parse; anything else is a bare string.
            let first = valueText.trimmingCharacters(in: .whitespaces).first
            if first == "\"" || first == "[" || first == "{" {
                throw RecipeError.malformedOverride(override: text, reason: "the value is not valid JSON (\(error.text))")
            }
            value = .string(valueText)
        }
        return (keys, value)
    }

    /// `root` with `value` set at `keys`, creating objects on the way (null counts as absent).
    static func setting(_ value: RecipeJSON, at keys: ArraySlice<String>, in current: RecipeJSON?, path: String,
                        override: String) throws -> RecipeJSON {
        guard let key = keys.first else { return value }
        var members: [String: RecipeJSON]
        switch current {
        case nil, .null?: members = [:]
        case .object(let existing)?: members = existing
        case let other?:
            throw RecipeError.malformedOverride(
                override: override,
                reason: "\"\(path)\" is \(other.compactText), not an object, so it has no key \"\(key)\"; set \"\(path)\" as a whole")
        }
        members[key] = try setting(value, at: keys.dropFirst(), in: members[key], path: RecipeSchema.join(path, key),
                                   override: override)
        return .object(members)
    }
}

// MARK: - Section reader

/// One JSON object of a recipe and its key path; typed getters return nil for an absent or
/// null key and throw an error naming the key path, the value and what is allowed otherwise.
struct SectionReader {
    let source: RecipeSource
    let path: String
    let members: [String: RecipeJSON]

    func keyPath(_ key: String) -> String { RecipeSchema.join(path, key) }
    func label(_ key: String) -> String { source.label(for: keyPath(key)) }

    /// The value of `key`; nil when absent or null.
    subscript(key: String) -> RecipeJSON? {
        guard let value = members[key], value != .null else { return nil }
        return value
    }

    func checkKnownKeys() throws {
        let known = RecipeSchema.sections[path] ?? []
        for key in members.keys.sorted() where !known.contains(key) {
            throw RecipeError.unknownKey(file: source.label(for: keyPath(key), orBelow: true), keyPath: keyPath(key),
                                         suggestion: RecipeSchema.suggestion(for: key, in: path), known: known)
        }
    }

    /// Rejects those of `keys` that are written, for they apply only to `scope`, not `chosen`.
    func reject(_ keys: [String], appliesOnlyTo scope: String, not chosen: String) throws {
        for key in keys where self[key] != nil {
            throw RecipeError.conflict(file: label(key), keyPath: keyPath(key),
                                       reason: "applies only to \(scope), not \"\(chosen)\"; remove it")
        }
    }

    func required<T>(_ value: T?, _ key: String, hint: String) throws -> T {
        guard let value else { throw RecipeError.missingKey(file: label(key), keyPath: keyPath(key), hint: hint) }
        return value
    }

    private func wrongType(_ key: String, _ value: RecipeJSON, _ expected: String) -> RecipeError {
        .wrongType(file: label(key), keyPath: keyPath(key), value: value.compactText, expected: expected)
    }

    private func invalid(_ key: String, _ value: RecipeJSON, _ allowed: String) -> RecipeError {
        .invalidValue(file: label(key), keyPath: keyPath(key), value: value.compactText, allowed: allowed)
    }

    func section(_ key: String) throws -> SectionReader? {
        guard let value = self[key] else { return nil }
        guard case .object(let members) = value else { throw wrongType(key, value, "an object") }
        return SectionReader(source: source, path: keyPath(key), members: members)
    }

    func string(_ key: String, expected: String = "a non-empty string",
                where isValid: (String) -> Bool = { !$0.isEmpty }) throws -> String? {
        guard let value = self[key] else { return nil }
        guard case .string(let string) = value else { throw wrongType(key, value, expected) }
        guard isValid(string) else { throw invalid(key, value, expected) }
        return string
    }

    func integer(_ key: String, expected: String, where isValid: (Int) -> Bool) throws -> Int? {
        guard let value = self[key] else { return nil }
        guard case .number(let literal) = value, let integer = RecipeJSON.integer(literal) else {
            throw wrongType(key, value, expected)
        }
        guard isValid(integer) else { throw invalid(key, value, expected) }
        return integer
    }

    /// A seed: an integer in 0...2^64 − 1.
    func seed(_ key: String) throws -> UInt64? {
        guard let value = self[key] else { return nil }
        let expected = "an integer in 0...\(UInt64.max)"
        guard case .number(let literal) = value else { throw wrongType(key, value, expected) }
        guard let seed = RecipeJSON.unsigned(literal) else { throw invalid(key, value, expected) }
        return seed
    }

    func number(_ key: String, expected: String, where isValid: (Double) -> Bool) throws -> Double? {
        guard let value = self[key] else { return nil }
        guard case .number(let literal) = value, let number = Double(literal) else { throw wrongType(key, value, expected) }
        guard number.isFinite else { throw invalid(key, value, "a finite number") }
        guard isValid(number) else { throw invalid(key, value, expected) }
        return number
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = self[key] else { return nil }
        guard case .bool(let bool) = value else { throw wrongType(key, value, "true or false") }
        return bool
    }

    func choice<Choice: RawRepresentable & CaseIterable>(_ key: String, of type: Choice.Type) throws -> Choice?
    where Choice.RawValue == String {
        guard let value = self[key] else { return nil }
        let names = Choice.allCases.map { "\"\($0.rawValue)\"" }
        let expected = names.count == 1 ? "\(names[0]) (the only value)" : "one of " + names.joined(separator: ", ")
        guard case .string(let string) = value else { throw wrongType(key, value, expected) }
        guard let choice = Choice(rawValue: string) else { throw invalid(key, value, expected) }
        return choice
    }

    /// A list of non-empty strings; empty only when `allowEmpty`. A bad element is named by
    /// index, e.g. `adapter.targets[1]`.
    func strings(_ key: String, expected: String, allowEmpty: Bool) throws -> [String]? {
        guard let value = self[key] else { return nil }
        guard case .array(let items) = value else { throw wrongType(key, value, expected) }
        guard allowEmpty || !items.isEmpty else { throw invalid(key, value, expected) }
        return try items.enumerated().map { index, item in
            let itemPath = "\(keyPath(key))[\(index)]"
            guard case .string(let string) = item else {
                throw RecipeError.wrongType(file: label(key), keyPath: itemPath, value: item.compactText,
                                            expected: "a non-empty string")
            }
            guard !string.isEmpty else {
                throw RecipeError.invalidValue(file: label(key), keyPath: itemPath, value: item.compactText,
                                               allowed: "a non-empty string")
            }
            return string
        }
    }
}

// MARK: - Recipe from JSON

enum RecipeReading {
    typealias Section = SectionReader

    static func recipe(from text: String, file: String, defaultName: String, overrides: [String]) throws -> Recipe {
        var root: RecipeJSON
        do {
            root = try RecipeJSONParser.parse(text)
        } catch .duplicateKey(let keyPath) {
            throw RecipeError.duplicateKey(file: file, keyPath: keyPath)
        } catch {
            throw RecipeError.notJSON(file: file, reason: error.text)
        }
        guard case .object = root else {
            throw RecipeError.wrongType(file: file, keyPath: "", value: root.compactText, expected: "a JSON object")
        }
        var source = RecipeSource(file: file)
        for override in overrides {
            let (keys, value) = try RecipeSource.parseOverride(override)
            root = try RecipeSource.setting(value, at: keys[...], in: root, path: "", override: override)
            source.overrides.append((keys.joined(separator: "."), override))
        }
        guard case .object(let members) = root else { preconditionFailure("overrides keep the root an object") }
        return try read(Section(source: source, path: "", members: members), defaultName: defaultName)
    }

    private static func read(_ root: Section, defaultName: String) throws -> Recipe {
        try root.checkKnownKeys()
        let name = try root.string("name", expected: "a non-empty name without \"/\"") {
            !$0.isEmpty && !$0.contains("/")
        } ?? defaultName
        let description = try root.string("description", expected: "a string") { _ in true }
        let model = try readModel(root.required(root.section("model"), "model",
                                                hint: "e.g. \"model\": {\"checkpoint\": \"checkpoints/base.h5\"}"))
        let adapter = try root.section("adapter").map(readAdapter) ?? .none
        let data = try readData(root.required(root.section("data"), "data",
                                              hint: "e.g. \"data\": {\"train\": \"data/train.jsonl\"}"))
        let privacy: Recipe.PrivacySection?
        switch root.members["privacy"] {
        case nil:
            throw RecipeError.missingKey(
                file: root.label("privacy"), keyPath: "privacy",
                hint: "give a budget, e.g. \"privacy\": {\"target_epsilon\": 8}, or write \"privacy\": null for non-private training")
        case .null?:
            privacy = nil
        default:
            privacy = try readPrivacy(root.section("privacy")!)
        }
        let training = try readTraining(root.required(root.section("training"), "training",
                                                      hint: "at least the batch size, e.g. \"training\": {\"batch_size\": 64}"))
        let output = try root.section("output").map { try readOutput($0, name: name) }
        let plugins = try root.strings("plugins", expected: "a list of shared-library paths", allowEmpty: true) ?? []
        return Recipe(name: name, description: description, model: model, adapter: adapter, data: data,
                      privacy: privacy, training: training, output: output, plugins: plugins)
    }

    private static func readModel(_ section: Section) throws -> Recipe.ModelSection {
        try section.checkKnownKeys()
        let checkpoint = try section.required(section.string("checkpoint", expected: "a non-empty path"), "checkpoint",
                                              hint: "the base model, e.g. \"checkpoints/gpt2-tiny.h5\"")
        let tokenizer = try section.string("tokenizer", expected: "a non-empty path or null (the checkpoint's own)")
        return Recipe.ModelSection(checkpoint: checkpoint, tokenizer: tokenizer)
    }

    private enum AdapterType: String, CaseIterable {
        case none, lora, patterns
    }

    private static func readAdapter(_ section: Section) throws -> Recipe.AdapterSection {
        try section.checkKnownKeys()
        let type = try section.required(section.choice("type", of: AdapterType.self), "type",
                                        hint: "one of \"none\", \"lora\", \"patterns\"")
        let loraKeys = ["rank", "alpha", "targets"], patternKeys = ["trainable"]
        switch type {
        case .none:
            try section.reject(loraKeys, appliesOnlyTo: "adapter type \"lora\"", not: "none")
            try section.reject(patternKeys, appliesOnlyTo: "adapter type \"patterns\"", not: "none")
            return .none
        case .lora:
            try section.reject(patternKeys, appliesOnlyTo: "adapter type \"patterns\"", not: "lora")
            let rank = try section.required(section.integer("rank", expected: "an integer ≥ 1") { $0 >= 1 }, "rank",
                                            hint: "the LoRA rank, e.g. 8")
            let alpha = try section.required(section.number("alpha", expected: "a number > 0") { $0 > 0 }, "alpha",
                                             hint: "the LoRA scale numerator (scale = alpha / rank), e.g. 16")
            let targets = try section.required(
                section.strings("targets", expected: "a non-empty list of module names", allowEmpty: false), "targets",
                hint: "the linear modules to adapt, e.g. [\"q_proj\", \"v_proj\"]")
            return .lora(LoRAConfig(rank: rank, alpha: alpha, targets: targets))
        case .patterns:
            try section.reject(loraKeys, appliesOnlyTo: "adapter type \"lora\"", not: "patterns")
            let patterns = try section.required(
                section.strings("trainable", expected: "a non-empty list of glob patterns", allowEmpty: false),
                "trainable", hint: "glob patterns of the tensors to train, e.g. [\"*.ln_*\", \"lm_head.*\"]")
            return .patterns(patterns)
        }
    }

    private static func readData(_ section: Section) throws -> Recipe.DataSection {
        typealias DataSection = Recipe.DataSection
        try section.checkKnownKeys()
        let train = try section.required(section.string("train", expected: "a non-empty path"), "train",
                                         hint: "the training examples, a JSON Lines file")
        var data = DataSection(train: train, eval: try section.string("eval", expected: "a non-empty path or null"))
        data.format = try section.choice("format", of: DataSection.Format.self) ?? data.format
        if let template = section["template"] {
            let expected = "\"alpaca\" or an object {\"prompt\", \"prompt_no_input\", \"response\"}"
            switch template {
            case .string("alpaca"): data.template = .alpaca
            case .string:
                throw RecipeError.invalidValue(file: section.label("template"), keyPath: section.keyPath("template"),
                                               value: template.compactText, allowed: expected)
            case .object: data.template = try readInstructionTemplate(section.section("template")!)
            default:
                throw RecipeError.wrongType(file: section.label("template"), keyPath: section.keyPath("template"),
                                            value: template.compactText, expected: expected)
            }
        }
        if let chat = try section.section("chat_template") {
            try chat.checkKnownKeys()
            func part(_ key: String) throws -> String? {
                try chat.string(key, expected: "a string containing {content}") { $0.contains("{content}") }
            }
            data.chatTemplate.system = try part("system") ?? data.chatTemplate.system
            data.chatTemplate.user = try part("user") ?? data.chatTemplate.user
            data.chatTemplate.assistant = try part("assistant") ?? data.chatTemplate.assistant
        }
        data.maxLength = try section.integer("max_length", expected: "an integer in 8...65536") {
            (8...65536).contains($0)
        } ?? data.maxLength
        data.trainOn = try section.choice("train_on", of: DataSection.TrainOn.self) ?? data.trainOn
        data.onMalformed = try section.choice("on_malformed", of: DataSection.MalformedLinePolicy.self) ?? data.onMalformed
        data.addBOS = try section.bool("add_bos") ?? data.addBOS
        data.addEOS = try section.bool("add_eos") ?? data.addEOS
        return data
    }

    private static func readInstructionTemplate(_ section: Section) throws -> Recipe.DataSection.InstructionTemplate {
        try section.checkKnownKeys()
        let prompt = try section.required(
            section.string("prompt", expected: "a string containing {instruction} and {input}") {
                $0.contains("{instruction}") && $0.contains("{input}")
            }, "prompt", hint: "the prompt for examples with an input, containing {instruction} and {input}")
        let promptNoInput = try section.required(
            section.string("prompt_no_input", expected: "a string containing {instruction} and not {input}") {
                $0.contains("{instruction}") && !$0.contains("{input}")
            }, "prompt_no_input", hint: "the prompt for examples without an input, containing {instruction}")
        let response = try section.required(
            section.string("response", expected: "a string containing {output}") { $0.contains("{output}") },
            "response", hint: "the trained-on text, e.g. \"{output}\"")
        return .init(prompt: prompt, promptNoInput: promptNoInput, response: response)
    }

    private enum ClippingStyle: String, CaseIterable {
        case abadi, automatic
    }

    private static func readPrivacy(_ section: Section) throws -> Recipe.PrivacySection {
        try section.checkKnownKeys()
        let targetEpsilon = try section.number("target_epsilon", expected: "a number > 0") { $0 > 0 }
        let noiseMultiplier = try section.number("noise_multiplier", expected: "a number ≥ 0") { $0 >= 0 }
        let noise: Recipe.PrivacySection.Noise
        switch (targetEpsilon, noiseMultiplier) {
        case (let epsilon?, nil): noise = .targetEpsilon(epsilon)
        case (nil, let sigma?): noise = .noiseMultiplier(sigma)
        default:
            let keys = ["target_epsilon", "noise_multiplier"]
            throw RecipeError.exclusiveKeys(
                file: keys.map(section.label).first { $0 != section.source.file } ?? section.source.file,
                keyPath: section.path, keys: keys, required: true, found: keys.filter { section[$0] != nil })
        }
        var privacy = Recipe.PrivacySection(noise: noise)
        privacy.delta = try section.number("delta", expected: "in (0, 1)") { $0 > 0 && $0 < 1 } ?? privacy.delta
        privacy.accountant = try section.choice("accountant", of: Accountant.self) ?? privacy.accountant
        switch try section.choice("clipping", of: ClippingStyle.self) ?? .automatic {
        case .abadi:
            try section.reject(["gamma"], appliesOnlyTo: "clipping \"automatic\"", not: "abadi")
            privacy.clipping = .abadi
        case .automatic:
            let gamma = try section.number("gamma", expected: "a number > 0") { $0 > 0 }
            privacy.clipping = .automatic(gamma: gamma ?? 0.01)
        }
        privacy.threshold = try section.number("threshold", expected: "a number > 0") { $0 > 0 } ?? privacy.threshold
        let grouping = try section.string("grouping", expected: "a grouping strategy name (see `dpft plugins list`)")
        if let value = section["grouping_options"] {
            guard case .object(let options) = value else {
                throw RecipeError.wrongType(file: section.label("grouping_options"),
                                            keyPath: section.keyPath("grouping_options"), value: value.compactText,
                                            expected: "an object of the strategy's options, e.g. {\"per\": \"block\"}")
            }
            privacy.groupingOptions = GroupingOptions(options.mapValues(\.groupingOptionValue))
        }
        privacy.grouping = grouping ?? privacy.grouping
        privacy.rules = try section.string("rules", expected: "a non-empty path to a rule file")
        if let rules = privacy.rules {
            if let grouping, grouping != "rules" {
                throw RecipeError.conflict(
                    file: section.label("rules"), keyPath: section.keyPath("rules"),
                    reason: "is shorthand for \"grouping\": \"rules\", but \"grouping\" is \"\(grouping)\"; keep one of them")
            }
            if let file = privacy.groupingOptions["file"], file != .string(rules) {
                throw RecipeError.conflict(
                    file: section.label("rules"), keyPath: section.keyPath("rules"),
                    reason: "names \"\(rules)\" but \"grouping_options.file\" is \(file); keep one of them")
            }
            privacy.grouping = "rules"
            privacy.groupingOptions["file"] = .string(rules)
        }
        privacy.noiseSeed = try section.seed("noise_seed")
        privacy.sampling = try section.choice("sampling", of: Recipe.PrivacySection.Sampling.self) ?? privacy.sampling
        return privacy
    }

    private static func readTraining(_ section: Section) throws -> Recipe.TrainingSection {
        typealias TrainingSection = Recipe.TrainingSection
        try section.checkKnownKeys()
        let epochs = try section.number("epochs", expected: "a number > 0") { $0 > 0 }
        let steps = try section.integer("steps", expected: "an integer ≥ 1") { $0 >= 1 }
        let length: TrainingSection.Length
        switch (epochs, steps) {
        case (nil, nil): length = .epochs(1)
        case (let epochs?, nil): length = .epochs(epochs)
        case (nil, let steps?): length = .steps(steps)
        case (.some, .some):
            let keys = ["epochs", "steps"]
            throw RecipeError.exclusiveKeys(
                file: keys.map(section.label).first { $0 != section.source.file } ?? section.source.file,
                keyPath: section.path, keys: keys, required: false, found: keys)
        }
        let batchSize = try section.required(section.integer("batch_size", expected: "an integer ≥ 1") { $0 >= 1 },
                                             "batch_size", hint: "the expected logical batch size, e.g. 64")
        let physicalBatchSize = try section.integer("physical_batch_size", expected: "an integer ≥ 1") { $0 >= 1 }
        var training = TrainingSection(length: length, batchSize: batchSize, physicalBatchSize: physicalBatchSize)
        if let optimizer = try section.section("optimizer") { training.optimizer = try readOptimizer(optimizer) }
        if let schedule = try section.section("schedule") {
            training.schedule = try readSchedule(schedule, learningRate: training.optimizer.learningRate)
        }
        training.seed = try section.seed("seed") ?? training.seed
        training.evalEvery = try section.integer("eval_every", expected: "an integer ≥ 0 (0 = only at the end)") {
            $0 >= 0
        } ?? training.evalEvery
        training.evalExamples = try section.integer("eval_examples", expected: "an integer ≥ 0") { $0 >= 0 }
            ?? training.evalExamples
        training.generateExamples = try section.integer("generate_examples", expected: "an integer ≥ 0") { $0 >= 0 }
            ?? training.generateExamples
        training.maxNewTokens = try section.integer("max_new_tokens", expected: "an integer ≥ 1") { $0 >= 1 }
            ?? training.maxNewTokens
        return training
    }

    private static func readOptimizer(_ section: Section) throws -> Recipe.TrainingSection.OptimizerSection {
        try section.checkKnownKeys()
        let name = try section.choice("name", of: Recipe.TrainingSection.OptimizerSection.Name.self) ?? .adamw
        var optimizer = Recipe.TrainingSection.OptimizerSection(name: name)
        optimizer.learningRate = try section.number("learning_rate", expected: "a number > 0") { $0 > 0 }
            ?? optimizer.learningRate
        let unitInterval = "a number in [0, 1)"
        if name == .sgd {
            try section.reject(["beta1", "beta2", "epsilon"], appliesOnlyTo: "optimizers \"adam\" and \"adamw\"", not: "sgd")
            optimizer.momentum = try section.number("momentum", expected: unitInterval) { $0 >= 0 && $0 < 1 }
                ?? optimizer.momentum
        } else {
            try section.reject(["momentum"], appliesOnlyTo: "optimizer \"sgd\"", not: name.rawValue)
            optimizer.beta1 = try section.number("beta1", expected: unitInterval) { $0 >= 0 && $0 < 1 } ?? optimizer.beta1
            optimizer.beta2 = try section.number("beta2", expected: unitInterval) { $0 >= 0 && $0 < 1 } ?? optimizer.beta2
            optimizer.epsilon = try section.number("epsilon", expected: "a number > 0") { $0 > 0 } ?? optimizer.epsilon
        }
        optimizer.weightDecay = try section.number("weight_decay", expected: "a number ≥ 0") { $0 >= 0 }
            ?? optimizer.weightDecay
        return optimizer
    }

    private static func readSchedule(_ section: Section, learningRate: Double) throws -> Recipe.TrainingSection.ScheduleSection {
        try section.checkKnownKeys()
        var schedule = Recipe.TrainingSection.ScheduleSection()
        schedule.name = try section.choice("name", of: Recipe.TrainingSection.ScheduleSection.Name.self) ?? schedule.name
        schedule.warmupSteps = try section.integer("warmup_steps", expected: "an integer ≥ 0") { $0 >= 0 }
            ?? schedule.warmupSteps
        if schedule.name == .constant {
            try section.reject(["min_learning_rate"], appliesOnlyTo: "schedules \"linear\" and \"cosine\"", not: "constant")
        } else {
            schedule.minLearningRate = try section.number(
                "min_learning_rate", expected: "a number in [0, \(learningRate)] (up to training.optimizer.learning_rate)"
            ) { $0 >= 0 && $0 <= learningRate } ?? schedule.minLearningRate
        }
        return schedule
    }

    private static func readOutput(_ section: Section, name: String) throws -> Recipe.OutputSection {
        try section.checkKnownKeys()
        var output = Recipe.OutputSection(directory: try section.string("directory", expected: "a non-empty path")
                                                     ?? "runs/\(name)")
        output.checkpointEvery = try section.integer("checkpoint_every", expected: "an integer ≥ 0 (0 = only the final)") {
            $0 >= 0
        } ?? output.checkpointEvery
        if let export = try section.section("export") {
            try export.checkKnownKeys()
            var settings = Recipe.OutputSection.ExportSection()
            settings.format = try export.choice("format", of: ExportFormat.self) ?? settings.format
            settings.mergeLoRA = try export.bool("merge_lora") ?? settings.mergeLoRA
            output.export = settings
        }
        return output
    }

    // MARK: JSON from recipe

    /// The resolved form: every setting written, in the shape the reader accepts.
    static func json(of recipe: Recipe) -> RecipeJSON {
        let adapter: RecipeJSON
        switch recipe.adapter {
        case .none:
            adapter = .object(["type": .string("none")])
        case .lora(let lora):
            adapter = .object(["type": .string("lora"), "rank": .number(lora.rank), "alpha": .number(lora.alpha),
                               "targets": .array(lora.targets.map(RecipeJSON.string))])
        case .patterns(let patterns):
            adapter = .object(["type": .string("patterns"), "trainable": .array(patterns.map(RecipeJSON.string))])
        }

        let data = recipe.data
        let template: RecipeJSON = data.template == .alpaca ? .string("alpaca") : .object([
            "prompt": .string(data.template.prompt), "prompt_no_input": .string(data.template.promptNoInput),
            "response": .string(data.template.response),
        ])
        let dataJSON: RecipeJSON = .object([
            "train": .string(data.train), "eval": .optional(data.eval), "format": .string(data.format.rawValue),
            "template": template,
            "chat_template": .object(["system": .string(data.chatTemplate.system), "user": .string(data.chatTemplate.user),
                                      "assistant": .string(data.chatTemplate.assistant)]),
            "max_length": .number(data.maxLength), "train_on": .string(data.trainOn.rawValue),
            "on_malformed": .string(data.onMalformed.rawValue), "add_bos": .bool(data.addBOS),
            "add_eos": .bool(data.addEOS),
        ])

        var privacyJSON = RecipeJSON.null
        if let privacy = recipe.privacy {
            var members: [String: RecipeJSON] = [
                "delta": .number(privacy.delta), "accountant": .string(privacy.accountant.rawValue),
                "threshold": .number(privacy.threshold), "grouping": .string(privacy.grouping),
                "grouping_options": .object(privacy.groupingOptions.values.mapValues(RecipeJSON.init)),
                "rules": .optional(privacy.rules), "noise_seed": privacy.noiseSeed.map(RecipeJSON.number) ?? .null,
                "sampling": .string(privacy.sampling.rawValue),
            ]
            switch privacy.noise {
            case .targetEpsilon(let epsilon): members["target_epsilon"] = .number(epsilon)
            case .noiseMultiplier(let sigma): members["noise_multiplier"] = .number(sigma)
            }
            switch privacy.clipping {
            case .abadi: members["clipping"] = .string("abadi")
            case .automatic(let gamma):
                members["clipping"] = .string("automatic")
                members["gamma"] = .number(gamma)
            }
            privacyJSON = .object(members)
        }

        let training = recipe.training
        let optimizer = training.optimizer
        var optimizerMembers: [String: RecipeJSON] = [
            "name": .string(optimizer.name.rawValue), "learning_rate": .number(optimizer.learningRate),
            "weight_decay": .number(optimizer.weightDecay),
        ]
        if optimizer.name == .sgd {
            optimizerMembers["momentum"] = .number(optimizer.momentum)
        } else {
            optimizerMembers["beta1"] = .number(optimizer.beta1)
            optimizerMembers["beta2"] = .number(optimizer.beta2)
            optimizerMembers["epsilon"] = .number(optimizer.epsilon)
        }
        var scheduleMembers: [String: RecipeJSON] = [
            "name": .string(training.schedule.name.rawValue), "warmup_steps": .number(training.schedule.warmupSteps),
        ]
        if training.schedule.name != .constant {
            scheduleMembers["min_learning_rate"] = .number(training.schedule.minLearningRate)
        }
        var trainingMembers: [String: RecipeJSON] = [
            "batch_size": .number(training.batchSize), "physical_batch_size": .number(training.physicalBatchSize),
            "optimizer": .object(optimizerMembers), "schedule": .object(scheduleMembers), "seed": .number(training.seed),
            "eval_every": .number(training.evalEvery), "eval_examples": .number(training.evalExamples),
            "generate_examples": .number(training.generateExamples), "max_new_tokens": .number(training.maxNewTokens),
        ]
        switch training.length {
        case .epochs(let epochs): trainingMembers["epochs"] = .number(epochs)
        case .steps(let steps): trainingMembers["steps"] = .number(steps)
        }

        let output = recipe.output
        let export: RecipeJSON = output.export.map {
            .object(["format": .string($0.format.rawValue), "merge_lora": .bool($0.mergeLoRA)])
        } ?? .null

        return .object([
            "name": .string(recipe.name),
            "description": .optional(recipe.description),
            "model": .object(["checkpoint": .string(recipe.model.checkpoint), "tokenizer": .optional(recipe.model.tokenizer)]),
            "adapter": adapter,
            "data": dataJSON,
            "privacy": privacyJSON,
            "training": .object(trainingMembers),
            "output": .object(["directory": .string(output.directory), "checkpoint_every": .number(output.checkpointEvery),
                               "export": export]),
            "plugins": .array(recipe.plugins.map(RecipeJSON.string)),
        ])
    }
}
