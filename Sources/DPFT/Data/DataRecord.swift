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

/// Why an example holds no token to train on (it is dropped, and counted).
public enum EmptyExampleCause: Sendable, Equatable {
    /// The record itself has nothing to train on; the words say why, e.g. "the conversation has
    /// no assistant turn".
    case nothingToTrainOn(String)
    /// Cutting the example to `maxLength` tokens removed every trained token.
    case truncated(maxLength: Int)
}

/// An example dropped for holding no token to train on: its line and why.
public struct DroppedExample: Sendable, Equatable {
    public var line: Int
    public var cause: EmptyExampleCause

    public init(line: Int, cause: EmptyExampleCause) {
        self.line = line
        self.cause = cause
    }
}

/// Errors reading data files; each names the file and, for a bad line, its number.
public enum DataError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(path: String)
    /// The file exists but cannot be read (the reason in words, from `FileProblem`).
    case unreadable(path: String, reason: String)
    case malformedLine(path: String, line: Int, reason: String)
    /// A line longer than `limit` bytes (`JSONLReader.maximumLineBytes`).
    case lineTooLong(path: String, line: Int, limit: Int)
    case noExamples(path: String)
    case needsTokenizer(path: String, line: Int)
    /// Every example was dropped for holding no token to train on.
    case noTrainableTokens(path: String, dropped: [DroppedExample])
    /// A token id or label the model's embedding has no row for (≥ vocab_size).
    case tokenOutOfVocabulary(path: String, line: Int, id: Int, vocabularySize: Int, pretokenized: Bool)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "\(path): no such data file."
        case .unreadable(let path, let reason):
            return "\(path): cannot read the data file: \(reason)."
        case .malformedLine(let path, let line, let reason):
            return "\(path):\(line): \(reason)."
        case .lineTooLong(let path, let line, let limit):
            return "\(path):\(line): the line is longer than \(limit / (1 << 20)) MiB, the most dpft reads as one record "
                + "(one example is cut to the model's positions anyway); split the text into several records."
        case .noExamples(let path):
            return "\(path): no usable examples (the file is empty or every line was skipped)."
        case .noTrainableTokens(let path, let dropped):
            return "\(path): no example has a token to train on or score: " + Self.describe(dropped) + "."
        case .needsTokenizer(let path, let line):
            return "\(path):\(line): text needs a tokenizer; the checkpoint has none, so pass --tokenizer TOK.model."
        case .tokenOutOfVocabulary(let path, let line, let id, let vocabularySize, let pretokenized):
            return "\(path):\(line): token id \(id) is outside the model's vocabulary (vocab_size \(vocabularySize): ids 0…\(vocabularySize - 1)); "
                + (pretokenized ? "the data was tokenized for another model — tokenize it with this model's tokenizer."
                                : "the tokenizer has more pieces than the model — use the tokenizer the model was made with.")
        }
    }

    /// "3 have nothing to train on (first: line 2, the conversation has no assistant turn); 1
    /// lost every trained token when cut to 64 tokens (first: line 5) — raise data.max_length".
    static func describe(_ dropped: [DroppedExample]) -> String {
        var parts: [String] = []
        let empty = dropped.filter { if case .nothingToTrainOn = $0.cause { true } else { false } }
        if let first = empty.first, case .nothingToTrainOn(let why) = first.cause {
            parts.append("\(empty.count) \(empty.count == 1 ? "has" : "have") nothing to train on (first: line \(first.line), \(why))")
        }
        let cut = dropped.filter { if case .truncated = $0.cause { true } else { false } }
        if let first = cut.first, case .truncated(let maxLength) = first.cause {
            parts.append("\(cut.count) lost every trained token when cut to \(maxLength) tokens (first: line \(first.line)) "
                         + "— raise data.max_length, or shorten the prompts")
        }
        return parts.joined(separator: "; ")
    }
}

/// Reads JSON Lines data files one line at a time, never more than `maximumLineBytes` of a
/// line: a record is one example, cut to the model's positions, so a longer line is a mistake
/// (a whole corpus on one line), and parsing or tokenizing it would take memory in proportion
/// (a 50 MB line took 7.1 GB).
public enum JSONLReader {
    /// The longest line read: 4 MiB (a 128k-token pre-tokenized example takes under 1 MiB).
    public static let maximumLineBytes = 4 << 20

    /// Every non-blank line of `url` as a record, with its 1-based line number.
    public static func read(_ url: URL) throws -> [(line: Int, record: DataRecord)] {
        try lines(url).map { ($0.line, try parse($0.text, path: url.path, line: $0.line)) }
    }

    /// The non-blank lines of a JSON Lines file (CR/LF tolerated) with their 1-based numbers,
    /// unparsed — for callers that decide per line what a bad one means.
    public static func lines(_ url: URL) throws -> [(line: Int, text: Data)] {
        var reader = try JSONLLineReader(path: url.path)
        var result: [(line: Int, text: Data)] = []
        while let line = try reader.next() { result.append(line) }
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

/// The non-blank lines of a JSON Lines file, read in blocks (CR/LF tolerated), each at most
/// `maximumLineBytes` long (a longer one is `DataError.lineTooLong`, found before it is held).
public struct JSONLLineReader {
    public let path: String
    public let maximumLineBytes: Int
    private let closer: FileCloser
    private var file: UnsafeMutablePointer<FILE> { closer.file }
    private var block: [UInt8] = []
    private var blockStart = 0
    private var lineNumber = 0

    /// Owns the `FILE` and closes it when the last copy of the reader goes.
    private final class FileCloser {
        let file: UnsafeMutablePointer<FILE>
        init(_ file: UnsafeMutablePointer<FILE>) { self.file = file }
        deinit { fclose(file) }
    }

    /// Opens `path`; a missing or unreadable file is a `DataError` with the reason in words.
    public init(path: String, maximumLineBytes: Int = JSONLReader.maximumLineBytes) throws {
        if let problem = FileProblem.readProblem(at: path) {
            throw problem == "no such file" ? DataError.fileNotFound(path: path) : DataError.unreadable(path: path, reason: problem)
        }
        guard let file = fopen(path, "rb") else {
            throw DataError.unreadable(path: path, reason: FileProblem.reason(for: POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO), path: path))
        }
        self.path = path
        self.maximumLineBytes = maximumLineBytes
        closer = FileCloser(file)
    }

    /// The next non-blank line and its 1-based number; nil at the end of the file.
    public mutating func next() throws -> (line: Int, text: Data)? {
        while let line = try nextLine() {
            lineNumber += 1
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { continue }
            return (lineNumber, Data(line))
        }
        return nil
    }

    /// The bytes up to the next newline (without it, nor a CR before it), nil at the end of the
    /// file. Holds at most `maximumLineBytes` + 1 bytes of a line.
    private mutating func nextLine() throws -> [UInt8]? {
        var line: [UInt8] = []
        while true {
            if blockStart == block.count, try !readBlock() {
                return line.isEmpty ? nil : try checked(line)
            }
            let rest = block[blockStart...]
            let newline = rest.firstIndex(of: UInt8(ascii: "\n"))
            line += rest[..<(newline ?? block.count)]
            blockStart = newline.map { $0 + 1 } ?? block.count
            if newline != nil { return try checked(line) }
            if line.count > maximumLineBytes + 1 { throw tooLong }
        }
    }

    private var tooLong: DataError { .lineTooLong(path: path, line: lineNumber + 1, limit: maximumLineBytes) }

    /// `line` without a final CR, refused when still longer than the limit.
    private func checked(_ line: [UInt8]) throws -> [UInt8] {
        let text = line.last == UInt8(ascii: "\r") ? Array(line.dropLast()) : line
        guard text.count <= maximumLineBytes else { throw tooLong }
        return text
    }

    /// Reads the next block of the file; false at its end.
    private mutating func readBlock() throws -> Bool {
        block = [UInt8](repeating: 0, count: 1 << 16)
        let count = fread(&block, 1, block.count, file)
        if count == 0 && ferror(file) != 0 {
            throw DataError.unreadable(path: path, reason: String(cString: strerror(errno)).lowercased())
        }
        block.removeLast(block.count - count)
        blockStart = 0
        return count > 0
    }
}
