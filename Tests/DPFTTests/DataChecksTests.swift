import Foundation
import Testing
@testable import DPFT

/// What the data stage refuses and how it says so (issue 12, item 14): ids outside the model's
/// vocabulary (before anything is written), lines too long to hold, and examples with nothing
/// to train on — told apart from examples that truncation emptied.
@Suite struct DataChecksTests {
    static func write(_ text: String, to url: URL) throws { try Data(text.utf8).write(to: url) }

    static var tokenizer: Tokenizer { get throws { try Tokenizer(contentsOf: Fixtures.url("tokenizer/tok.model")) } }

    /// An id ≥ vocab_size in the eval split used to surface from the model's forward pass
    /// during the base evaluation, after the run directory was made; a label there was not
    /// caught at all. Now the data stage names the file, line and id, and nothing is written.
    @Test func outOfVocabularyIdsStopTheRunBeforeAnythingIsWritten() throws {
        let workspace = try RecipeRunnerTests.Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let eval = URL(fileURLWithPath: workspace.eval)
        try Self.write("{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [1, 300, 2]}\n", to: eval)
        let recipe = try workspace.recipe(output: "oov")
        let error = #expect(throws: DataError.tokenOutOfVocabulary(path: workspace.eval, line: 2, id: 300, vocabularySize: 256,
                                                                   pretokenized: true)) { try workspace.run(recipe) }
        #expect(error?.description.contains("\(workspace.eval):2: token id 300") == true)
        #expect(!FileManager.default.fileExists(atPath: workspace.directory.appendingPathComponent("oov").path))

        try Self.write("{\"input_ids\": [1, 2, 3], \"labels\": [-100, 2, 256]}\n", to: eval)
        #expect(throws: DataError.tokenOutOfVocabulary(path: workspace.eval, line: 1, id: 256, vocabularySize: 256,
                                                       pretokenized: true)) { try workspace.run(recipe) }
        #expect(!FileManager.default.fileExists(atPath: workspace.directory.appendingPathComponent("oov").path))
    }

    /// A tokenizer with more pieces than the model gives text ids the model has no row for.
    @Test func aTokenizerLargerThanTheModelIsCaughtOnTheLine() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("data.jsonl")
        let texts = ["a", "The model trains on 42 examples."]
        try Self.write(texts.map { #"{"text": "\#($0)"}"# }.joined(separator: "\n"), to: url)
        let tokenizer = try Self.tokenizer
        let vocabulary = 60
        let line = try #require(try texts.firstIndex { try tokenizer.encode($0).contains { $0 >= vocabulary } }) + 1
        let id = try #require(try tokenizer.encode(texts[line - 1]).first { $0 >= vocabulary })
        let loader = ExampleLoader(encoder: try ExampleEncoding.plainEncoder(tokenizer), vocabularySize: vocabulary)
        #expect(throws: DataError.tokenOutOfVocabulary(path: url.path, line: line, id: id, vocabularySize: vocabulary,
                                                       pretokenized: false)) { try loader.load(path: url.path) }
    }

    /// A conversation with no assistant turn was told to "raise data.max_length"; it has
    /// nothing to train on, and the message says so with its line. Truncation that cut every
    /// trained token is still told to raise max_length.
    @Test func anExampleWithNothingToTrainOnIsToldApartFromATruncatedOne() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("chat.jsonl")
        let question = #"{"role": "user", "content": "What colour is the sky?"}"#
        let answer = #"{"role": "assistant", "content": "Blue."}"#
        try Self.write("{\"messages\": [\(question)]}\n\n{\"messages\": [\(question)]}\n", to: url)
        let encoder = try ExampleEncoder(tokenizer: try Self.tokenizer)
        let unanswered = DroppedExample(line: 1, cause: .nothingToTrainOn("the conversation has no assistant turn"))
        let error = #expect(throws: DataError.noTrainableTokens(
            path: url.path, dropped: [unanswered, DroppedExample(line: 3, cause: unanswered.cause)])) {
            try ExampleLoader(encoder: encoder).load(path: url.path)
        }
        #expect(error?.description == "\(url.path): no example has a token to train on or score: 2 have nothing to train on "
                + "(first: line 1, the conversation has no assistant turn).")

        try Self.write("{\"messages\": [\(question)]}\n{\"messages\": [\(question), \(answer)]}\n", to: url)
        let mixed = try ExampleLoader(encoder: encoder).load(path: url.path)
        #expect(mixed.examples.count == 1 && mixed.dropped == [unanswered])
        #expect(mixed.summary(path: "chat.jsonl") == "1 examples from chat.jsonl, 1 without trainable tokens dropped: "
                + "1 has nothing to train on (first: line 1, the conversation has no assistant turn)")

        // The answer lies past the cut: the prompt alone is longer than 8 tokens.
        let prompt = try encoder.encode(.chat([.init(role: "user", content: "What colour is the sky?")])).example.ids.count
        #expect(prompt > 8)
        let truncated = try #require(#expect(throws: DataError.self) {
            try ExampleLoader(encoder: encoder, maxLength: 8).load(path: url.path)
        })
        #expect(truncated == .noTrainableTokens(path: url.path, dropped: [unanswered, DroppedExample(line: 2, cause: .truncated(maxLength: 8))]))
        #expect(truncated.description.contains("1 lost every trained token when cut to 8 tokens (first: line 2) — raise data.max_length"))
    }

    /// A line longer than the limit stops the read, naming it, before it is held whole (a
    /// 50 MB line took 7.1 GB); lines at the limit, across read blocks and with CRLF are read intact.
    @Test func aLineLongerThanTheLimitIsRefusedByNumber() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("long.jsonl")
        let atLimit = #"{"text": "\#(String(repeating: "a", count: 100 - 12))"}"#
        #expect(atLimit.utf8.count == 100)
        try Self.write("\(atLimit)\r\n\n\(atLimit)x\n", to: url)
        var reader = try JSONLLineReader(path: url.path, maximumLineBytes: 100)
        #expect(try reader.next()?.text == Data(atLimit.utf8))
        #expect(throws: DataError.lineTooLong(path: url.path, line: 3, limit: 100)) { try reader.next() }

        // The default limit, 4 MiB, across the reader's 64 KiB blocks.
        let long = #"{"input_ids": [\#(Array(repeating: "1", count: 70_000).joined(separator: ", "))]}"#
        let tooLong = String(repeating: "c", count: JSONLReader.maximumLineBytes + 1)
        try Self.write("\(long)\n\(long)\n\(tooLong)\n\(long)", to: url)
        let error = #expect(throws: DataError.lineTooLong(path: url.path, line: 3, limit: 4 << 20)) {
            try ExampleLoader(encoder: nil).load(path: url.path)
        }
        #expect(error?.description.contains("\(url.path):3: the line is longer than 4 MiB") == true)
        try Self.write("\(long)\n\(long)", to: url)
        #expect(try JSONLReader.lines(url).map(\.text) == [Data(long.utf8), Data(long.utf8)])
    }
}
