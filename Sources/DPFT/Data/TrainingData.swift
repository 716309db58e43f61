import Foundation

/// A recipe's data split read, checked and tokenized (DESIGN.md §7).
public struct TrainingData {
    /// Tokenized examples in file order.
    public var examples: [TokenizedExample]
    /// The records they came from (for generation-based evaluation).
    public var records: [DataRecord]
    /// Lines skipped as malformed (with `on_malformed: skip`), by line number.
    public var skippedLines: [Int]
    /// Examples cut to `max_length`.
    public var truncated: Int
    /// Examples dropped because they hold no trainable token after templating/truncation.
    public var empty: Int

    /// Reads `path` as the recipe says: records must have the recipe's `format` (any of the four
    /// shapes for `auto`); a bad line stops with an error naming it, or is skipped and counted.
    public static func load(path: String, recipe: Recipe.DataSection, encoder: ExampleEncoder,
                            limit: Int? = nil) throws -> TrainingData {
        var result = TrainingData(examples: [], records: [], skippedLines: [], truncated: 0, empty: 0)
        for (lineNumber, line) in try JSONLReader.lines(URL(fileURLWithPath: path)) {
            if let limit, result.examples.count >= limit { break }
            do {
                let record = try JSONLReader.parse(line, path: path, line: lineNumber)
                try check(record, format: recipe.format, path: path, line: lineNumber)
                let (example, truncated) = try encoder.encode(record)
                if truncated { result.truncated += 1 }
                guard example.ids.count >= 2, example.labels?.dropFirst().contains(where: { $0 != -100 }) ?? true else {
                    result.empty += 1
                    continue
                }
                result.examples.append(example)
                result.records.append(record)
            } catch let error as DataError {
                guard recipe.onMalformed == .skip, case .malformedLine = error else { throw error }
                result.skippedLines.append(lineNumber)
            }
        }
        guard !result.examples.isEmpty else {
            if result.empty > 0 { throw DataError.noTrainableTokens(path: path, dropped: result.empty, maxLength: encoder.maxLength) }
            throw DataError.noExamples(path: path)
        }
        return result
    }

    private static func check(_ record: DataRecord, format: Recipe.DataSection.Format, path: String, line: Int) throws {
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
}
