import Foundation
import Testing
@testable import DPFT

/// The parts the recipe runner is built from: the micro-batch iterator and the example
/// loader's one set of rules.
@Suite struct TrainingPartsTests {
    static func example(_ ids: [Int], _ labels: [Int]? = nil) -> TokenizedExample { TokenizedExample(ids: ids, labels: labels) }

    @Test func microBatchesCutTheOrderIntoRunsOfAtMostSize() {
        let examples = [[1, 2], [3, 4, 5], [6], [7, 8, 9, 10], [11, 12]].map { Self.example($0) }
        let micro = Array(MicroBatches(examples, order: [4, 0, 3, 1, 2], size: 2))
        #expect(micro.map { Array($0.indices) } == [[4, 0], [3, 1], [2]])
        #expect(micro.map(\.done) == [2, 4, 5])
        #expect(micro.map(\.tokens) == [4, 7, 1])
        #expect(micro.map(\.batch.sequenceLength) == [2, 4, 1])
        #expect(Array(MicroBatches(examples, size: 3)).map { Array($0.indices) } == [[0, 1, 2], [3, 4]])
        #expect(Array(MicroBatches(examples, order: [], size: 3)).isEmpty)
    }

    /// One rule for every reader: malformed lines per policy, examples without a scored token
    /// dropped and counted, cuts counted, at most `limit` examples and no line read after them.
    @Test func exampleLoaderAppliesOneSetOfRules() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("data.jsonl")
        try Data("""
            {"input_ids": [1, 2, 3, 4, 5, 6]}
            {"input_ids": [7]}
            {"input_ids": [1, 2, 3], "labels": [5, -100, -100]}
            not json
            {"input_ids": [4, 5, 6], "labels": [-100, 5, 6]}
            {"input_ids": [1, 2, "x"]}
            """.utf8).write(to: url)
        let skip = ExampleLoader(onMalformed: .skip, encoder: nil, maxLength: 4)
        let all = try skip.load(path: url.path)
        #expect(all.examples.map(\.ids) == [[1, 2, 3, 4], [4, 5, 6]])
        #expect(all.truncated == 1 && all.empty == 2 && all.skippedLines == [4, 6])
        // stop names the first bad line; a limit reached before it never reads it
        #expect(throws: DataError.malformedLine(path: url.path, line: 4, reason: "not valid JSON")) {
            try ExampleLoader(encoder: nil).load(path: url.path)
        }
        #expect(try ExampleLoader(encoder: nil).load(path: url.path, limit: 1).examples.count == 1)
        // a forced format makes other shapes malformed
        #expect(throws: DataError.self) { try ExampleLoader(format: .text, encoder: nil).load(path: url.path) }
        // nothing scored at all: the error says so
        try Data("{\"input_ids\": [3]}\n".utf8).write(to: url)
        #expect(throws: DataError.noTrainableTokens(path: url.path, dropped: 1, maxLength: nil)) {
            try ExampleLoader(encoder: nil).load(path: url.path)
        }
    }
}
