import Foundation

/// A data file read, checked and tokenized by `ExampleLoader`: a recipe's training or eval
/// split, `dpft eval`'s file, `dpft norms`' examples.
public struct TrainingData {
    /// Tokenized examples in file order.
    public var examples: [TokenizedExample]
    /// The records they came from (for generation-based evaluation).
    public var records: [DataRecord]
    /// Lines skipped as malformed (with `on_malformed: skip`), by line number.
    public var skippedLines: [Int]
    /// Examples cut to the length limit.
    public var truncated: Int
    /// Examples dropped because they hold no scored token after templating/truncation, with why.
    public var dropped: [DroppedExample]
    /// How many examples were dropped for holding no scored token.
    public var empty: Int { dropped.count }

    /// Reads `path` as the recipe's data section says (`format`, `on_malformed`), with
    /// `encoder` (which cuts to `max_length`); at most `limit` examples. With
    /// `vocabularySize`, a token id or label outside the model's vocabulary is an error naming
    /// the line.
    public static func load(path: String, recipe: Recipe.DataSection, encoder: ExampleEncoder,
                            vocabularySize: Int? = nil, limit: Int? = nil) throws -> TrainingData {
        var loader = ExampleLoader(recipe: recipe, encoder: encoder)
        loader.vocabularySize = vocabularySize
        return try loader.load(path: path, limit: limit)
    }

    /// A one-line account of what was read.
    public func summary(path: String) -> String {
        var parts = ["\(examples.count) examples from \(path)"]
        if truncated > 0 { parts.append("\(truncated) truncated") }
        if !dropped.isEmpty { parts.append("\(empty) without trainable tokens dropped: " + DataError.describe(dropped)) }
        if !skippedLines.isEmpty {
            parts.append("\(skippedLines.count) malformed lines skipped (first: line \(skippedLines[0]))")
        }
        return parts.joined(separator: ", ")
    }

    /// True when something was cut, dropped or skipped (worth a note to the user).
    public var hasDrops: Bool { truncated > 0 || empty > 0 || !skippedLines.isEmpty }
}

/// The one way examples are read from a JSON Lines file, with one set of rules for what is
/// kept, cut, dropped and reported — the same for training, evaluation and `dpft norms`:
/// - a line longer than `JSONLReader.maximumLineBytes` stops the read with an error naming it;
/// - a line that is not a record of the expected `format` is malformed: with `on_malformed:
///   stop` it stops the read with an error naming the line, with `skip` it is skipped and its
///   number kept;
/// - with `vocabularySize`, a token id or label outside the vocabulary stops the read, naming
///   the line and the id (before any model sees it);
/// - an example longer than the limit (the encoder's `maxLength`, and `maxLength` here) is cut
///   and counted;
/// - an example left with no scored token (fewer than two tokens, or no label ≠ −100 after the
///   first: labels are shifted) is dropped and counted, with why: nothing in the record is
///   trained on (e.g. no assistant turn), or the cut removed it;
/// - at most `limit` examples are kept, in file order; lines after them are not read.
public struct ExampleLoader {
    /// Record shape every line must have (`.auto`: any of the four).
    public var format: Recipe.DataSection.Format
    /// What a malformed line does.
    public var onMalformed: Recipe.DataSection.MalformedLinePolicy
    /// Templates, BOS/EOS and label masks; nil: only pre-tokenized `{"input_ids"}` records
    /// can be read (others are an error naming the line).
    public var encoder: ExampleEncoder?
    /// Cut examples to this many tokens (e.g. the model's positions) besides the encoder's own limit.
    public var maxLength: Int?
    /// The model's vocab_size: ids and labels must lie below it (nil: not checked).
    public var vocabularySize: Int?
    /// The longest line read, in bytes.
    public var maximumLineBytes = JSONLReader.maximumLineBytes

    public init(format: Recipe.DataSection.Format = .auto, onMalformed: Recipe.DataSection.MalformedLinePolicy = .stop,
                encoder: ExampleEncoder?, maxLength: Int? = nil, vocabularySize: Int? = nil) {
        self.format = format
        self.onMalformed = onMalformed
        self.encoder = encoder
        self.maxLength = maxLength
        self.vocabularySize = vocabularySize
    }

    /// The rules of a recipe's data section.
    public init(recipe: Recipe.DataSection, encoder: ExampleEncoder?, maxLength: Int? = nil, vocabularySize: Int? = nil) {
        self.init(format: recipe.format, onMalformed: recipe.onMalformed, encoder: encoder, maxLength: maxLength,
                  vocabularySize: vocabularySize)
    }

    /// Reads `path`; throws when no example is left.
    public func load(path: String, limit: Int? = nil) throws -> TrainingData {
        var result = TrainingData(examples: [], records: [], skippedLines: [], truncated: 0, dropped: [])
        var lines = try JSONLLineReader(path: path, maximumLineBytes: maximumLineBytes)
        while let next = try lines.next() {
            let (lineNumber, line) = next
            if let limit, result.examples.count >= limit { break }
            do {
                let record = try JSONLReader.parse(line, path: path, line: lineNumber)
                try check(record, path: path, line: lineNumber)
                let (example, truncated, empty) = try encode(record, path: path, line: lineNumber)
                if truncated { result.truncated += 1 }
                if let empty {
                    result.dropped.append(DroppedExample(line: lineNumber, cause: empty))
                    continue
                }
                result.examples.append(example)
                result.records.append(record)
            } catch let error as DataError {
                guard onMalformed == .skip, case .malformedLine = error else { throw error }
                result.skippedLines.append(lineNumber)
            }
        }
        guard !result.examples.isEmpty else {
            if !result.dropped.isEmpty { throw DataError.noTrainableTokens(path: path, dropped: result.dropped) }
            throw DataError.noExamples(path: path)
        }
        return result
    }

    /// Labels are shifted (position t is scored against label t + 1), so an example needs two
    /// tokens and a label ≠ −100 after the first.
    static func hasScoredToken(_ example: TokenizedExample) -> Bool {
        example.ids.count >= 2 && (example.labels?.dropFirst().contains { $0 != -100 } ?? true)
    }

    /// The example, whether it was cut, and why it has no scored token (nil when it has one).
    /// Encoded whole first, so that its ids are checked and the cause of an empty one is known.
    private func encode(_ record: DataRecord, path: String, line: Int)
        throws -> (TokenizedExample, truncated: Bool, empty: EmptyExampleCause?) {
        var example: TokenizedExample
        if var whole = encoder {
            whole.maxLength = nil
            example = try whole.encode(record).example
        } else {
            guard case .tokens(let ids, let labels) = record else { throw DataError.needsTokenizer(path: path, line: line) }
            example = TokenizedExample(ids: ids, labels: labels)
        }
        try checkVocabulary(example, record: record, path: path, line: line)
        guard Self.hasScoredToken(example) else {
            return (example, false, .nothingToTrainOn(Self.nothingToTrainOn(record, example)))
        }
        let limits = [encoder?.maxLength, maxLength].compactMap { $0 }
        guard let length = limits.min(), example.truncate(to: length) else { return (example, false, nil) }
        return (example, true, Self.hasScoredToken(example) ? nil : .truncated(maxLength: length))
    }

    /// Why a record gives no scored token before any cut.
    static func nothingToTrainOn(_ record: DataRecord, _ example: TokenizedExample) -> String {
        switch record {
        case .chat(let messages) where !messages.contains(where: { $0.role == ChatTemplate.assistantRole }):
            return "the conversation has no assistant turn"
        case .instruction(_, _, let output) where output.isEmpty:
            return "its output is empty"
        case _ where example.ids.count < 2:
            return "it has \(example.ids.count) token\(example.ids.count == 1 ? "" : "s"); "
                + "an example needs two (each token is scored against the next)"
        default:
            return "every label after the first is −100"
        }
    }

    /// Every id and label (−100 aside) must be below the model's vocab_size.
    private func checkVocabulary(_ example: TokenizedExample, record: DataRecord, path: String, line: Int) throws {
        guard let vocabularySize else { return }
        let outside = example.ids.first { $0 >= vocabularySize }
            ?? example.labels?.first { $0 >= vocabularySize }
        guard let outside else { return }
        var pretokenized = false
        if case .tokens = record { pretokenized = true }
        throw DataError.tokenOutOfVocabulary(path: path, line: line, id: outside, vocabularySize: vocabularySize,
                                             pretokenized: pretokenized)
    }

    private func check(_ record: DataRecord, path: String, line: Int) throws {
        let shape: Recipe.DataSection.Format
        switch record {
        case .text: shape = .text
        case .tokens: shape = .tokens
        case .instruction: shape = .alpaca
        case .chat: shape = .chat
        }
        guard format == .auto || format == shape else {
            throw DataError.malformedLine(path: path, line: line,
                                          reason: "a \(shape.rawValue) record, but the recipe says data.format = \"\(format.rawValue)\"")
        }
    }
}
