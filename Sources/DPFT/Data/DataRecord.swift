import Foundation

/// One line of a JSON Lines data file, in one of the shapes of DESIGN.md §7.
public enum DataRecord: Sendable, Equatable {
    /// `{"text": …}`: plain language modelling; every token is trained on.
    case text(String)
    /// `{"input_ids": […], "labels"?: […]}`: pre-tokenized; labels aligned with the ids
    /// (−100 = not trained on); no labels = the ids.
    case tokens(ids: [Int], labels: [Int]?)
    /// `{"instruction", "input"?, "output"}`: Alpaca-style instruction data.
    case instruction(instruction: String, input: String?, output: String)
    /// `{"messages": [{"role", "content"}, …]}`: a conversation.
    case chat([ChatMessage])

    public struct ChatMessage: Sendable, Equatable, Codable {
        public var role: String
        public var content: String
    }
}

/// Errors reading data files; each names the file and, for a bad line, its number.
public enum DataError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(path: String)
    case malformedLine(path: String, line: Int, reason: String)
    case noExamples(path: String)
    case needsTokenizer(path: String, line: Int)
    case noTrainableTokens(path: String, dropped: Int, maxLength: Int?)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "\(path): no such data file."
        case .malformedLine(let path, let line, let reason):
            return "\(path):\(line): \(reason)."
        case .noExamples(let path):
            return "\(path): no usable examples (the file is empty or every line was skipped)."
        case .noTrainableTokens(let path, let dropped, let maxLength):
            return "\(path): all \(dropped) examples lost their trained tokens"
                + (maxLength.map { " after templating and truncation to \($0) tokens; raise data.max_length" } ?? "") + "."
        case .needsTokenizer(let path, let line):
            return "\(path):\(line): text needs a tokenizer; the checkpoint has none, so pass --tokenizer TOK.model."
        }
    }
}

/// Reads JSON Lines data files.
public enum JSONLReader {
    /// Every non-blank line of `url` as a record, with its 1-based line number.
    public static func read(_ url: URL) throws -> [(line: Int, record: DataRecord)] {
        try lines(url).map { ($0.line, try parse($0.text, path: url.path, line: $0.line)) }
    }

    /// The non-blank lines of a JSON Lines file (CR/LF tolerated) with their 1-based numbers,
    /// unparsed — for callers that decide per line what a bad one means.
    public static func lines(_ url: URL) throws -> [(line: Int, text: Data)] {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw DataError.fileNotFound(path: url.path)
        }
        var result: [(line: Int, text: Data)] = []
        var lineNumber = 0
        for rawLine in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = rawLine.last == UInt8(ascii: "\r") ? rawLine.dropLast() : rawLine
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
            result.append((lineNumber, Data(line)))
        }
        return result
    }

    /// Parses one line.
    public static func parse(_ line: Data, path: String, line number: Int) throws -> DataRecord {
        func bad(_ reason: String) -> DataError { .malformedLine(path: path, line: number, reason: reason) }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: line)
        } catch {
            throw bad("not valid JSON")
        }
        guard let fields = object as? [String: Any] else { throw bad("expected a JSON object") }
        func integers(_ key: String) throws -> [Int]? {
            guard let value = fields[key], !(value is NSNull) else { return nil }
            guard let array = value as? [Any] else { throw bad("`\(key)` must be an array of integers") }
            return try array.map { element in
                guard let number = element as? NSNumber, String(cString: number.objCType) != "c",
                      let integer = Int(exactly: number.doubleValue) else {
                    throw bad("`\(key)` must hold integers only")
                }
                return integer
            }
        }
        func string(_ key: String, required: Bool) throws -> String? {
            guard let value = fields[key], !(value is NSNull) else {
                if required { throw bad("`\(key)` is missing") }
                return nil
            }
            guard let text = value as? String else { throw bad("`\(key)` must be a string") }
            return text
        }
        if let ids = try integers("input_ids") {
            let labels = try integers("labels")
            if let labels, labels.count != ids.count {
                throw bad("`labels` has \(labels.count) entries but `input_ids` has \(ids.count)")
            }
            if let negative = ids.first(where: { $0 < 0 }) { throw bad("`input_ids` holds \(negative)") }
            if let label = labels?.first(where: { $0 < 0 && $0 != -100 }) {
                throw bad("`labels` holds \(label); use −100 for tokens not trained on")
            }
            return .tokens(ids: ids, labels: labels)
        }
        if fields["messages"] != nil {
            guard let messages = fields["messages"] as? [[String: Any]] else {
                throw bad("`messages` must be an array of {\"role\", \"content\"} objects")
            }
            return .chat(try messages.enumerated().map { index, message in
                guard let role = message["role"] as? String, let content = message["content"] as? String else {
                    throw bad("message \(index) needs string `role` and `content`")
                }
                return DataRecord.ChatMessage(role: role, content: content)
            })
        }
        if fields["instruction"] != nil {
            return .instruction(instruction: try string("instruction", required: true)!,
                                input: try string("input", required: false),
                                output: try string("output", required: true)!)
        }
        if let text = try string("text", required: false) { return .text(text) }
        throw bad("expected one of the keys `text`, `input_ids`, `instruction` or `messages`")
    }
}
