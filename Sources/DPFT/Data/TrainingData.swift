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
    /// Examples dropped because they hold no scored token after templating/truncation.
    public var empty: Int

    /// Reads `path` as the recipe's data section says (`format`, `on_malformed`), with
    /// `encoder` (which cuts to `max_length`); at most `limit` examples.
    public static func load(path: String, recipe: Recipe.DataSection, encoder: ExampleEncoder,
                            limit: Int? = nil) throws -> TrainingData {
        try ExampleLoader(recipe: recipe, encoder: encoder).load(path: path, limit: limit)
    }

    /// A one-line account of what was read.
    public func summary(path: String) -> String {
        var parts = ["\(examples.count) examples from \(path)"]
        if truncated > 0 { parts.append("\(truncated) truncated") }
        if empty > 0 { parts.append("\(empty) without trainable tokens dropped") }
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
/// - a line that is not a record of the expected `format` is malformed: with `on_malformed:
///   stop` it stops the read with an error naming the line, with `skip` it is skipped and its
///   number kept;
/// - an example longer than the limit (the encoder's `maxLength`, and `maxLength` here) is cut
///   and counted;
/// - an example left with no scored token (fewer than two tokens, or no label ≠ −100 after the
///   first: labels are shifted) is dropped and counted;
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

    public init(format: Recipe.DataSection.Format = .auto, onMalformed: Recipe.DataSection.MalformedLinePolicy = .stop,
                encoder: ExampleEncoder?, maxLength: Int? = nil) {
        self.format = format
        self.onMalformed = onMalformed
        self.encoder = encoder
        self.maxLength = maxLength
    }

    /// The rules of a recipe's data section.
    public init(recipe: Recipe.DataSection, encoder: ExampleEncoder?, maxLength: Int? = nil) {
        self.init(format: recipe.format, onMalformed: recipe.onMalformed, encoder: encoder, maxLength: maxLength)
    }

    /// Reads `path`; throws when no example is left.
    public func load(path: String, limit: Int? = nil) throws -> TrainingData {
        var result = TrainingData(examples: [], records: [], skippedLines: [], truncated: 0, empty: 0)
        for (lineNumber, line) in try JSONLReader.lines(URL(fileURLWithPath: path)) {
            if let limit, result.examples.count >= limit { break }
            do {
                let record = try JSONLReader.parse(line, path: path, line: lineNumber)
                try check(record, path: path, line: lineNumber)
                let (example, truncated) = try encode(record, path: path, line: lineNumber)
                if truncated { result.truncated += 1 }
                guard Self.hasScoredToken(example) else {
                    result.empty += 1
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
            if result.empty > 0 {
                throw DataError.noTrainableTokens(path: path, dropped: result.empty, maxLength: encoder?.maxLength ?? maxLength)
            }
            throw DataError.noExamples(path: path)
        }
        return result
    }

    /// Labels are shifted (position t is scored against label t + 1), so an example needs two
    /// tokens and a label ≠ −100 after the first.
    static func hasScoredToken(_ example: TokenizedExample) -> Bool {
        example.ids.count >= 2 && (example.labels?.dropFirst().contains { $0 != -100 } ?? true)
    }

    private func encode(_ record: DataRecord, path: String, line: Int) throws -> (TokenizedExample, truncated: Bool) {
        var example: TokenizedExample, truncated = false
        if let encoder {
            (example, truncated) = try encoder.encode(record)
        } else {
            guard case .tokens(let ids, let labels) = record else { throw DataError.needsTokenizer(path: path, line: line) }
            example = TokenizedExample(ids: ids, labels: labels)
        }
        if let maxLength, example.truncate(to: maxLength) { truncated = true }
        return (example, truncated)
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
