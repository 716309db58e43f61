import Foundation
import Testing
@testable import DPFT

/// Replays the committed fuzz corpus (Fuzz/Corpus/<target>/, README "Fuzzing") through the
/// parse functions the fuzz targets call (`FuzzTarget.parse`): every input must parse or throw
/// its parser's typed error. A trap would crash the test runner, so that fails too. No fuzzing
/// happens here; `make fuzz` does that.
@Suite struct FuzzCorpusTests {
    static let corpus = Fixtures.repository.appendingPathComponent("Fuzz/Corpus")

    /// Inputs that crashed, hung or ran out of memory under fuzzing before their fix; each must
    /// stay in the corpus (and so be replayed here).
    static let regressionInputs: [FuzzTarget: [String]] = [:]

    static func inputs(of target: FuzzTarget) throws -> [URL] {
        let directory = corpus.appendingPathComponent(target.rawValue)
        return try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// Whether `error` is one the target's parser is documented to throw, rather than, say, a
    /// Foundation error leaking through without naming the file.
    static func isTypedError(_ error: any Error, of target: FuzzTarget) -> Bool {
        switch target {
        case .safetensors: error is SafeTensorsError
        case .json: error is JSONParseError
        case .jsonl: error is DataError
        case .recipe: error is RecipeError
        case .rules: error is GroupingError
        case .config: error is ConfigError
        case .plugin: false  // tries every message kind and throws nothing
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func everyCorpusInputParsesOrThrowsATypedError(target: FuzzTarget) throws {
        let inputs = try Self.inputs(of: target)
        #expect(!inputs.isEmpty, "Fuzz/Corpus/\(target.rawValue) holds no seed input")
        for input in inputs {
            let bytes = try [UInt8](Data(contentsOf: input))
            do {
                try target.parse(bytes)
            } catch {
                #expect(Self.isTypedError(error, of: target),
                        "\(target.rawValue)/\(input.lastPathComponent) threw \(type(of: error)): \(error)")
            }
        }
    }

    /// Every target has both inputs its parser accepts and inputs it refuses, so the replay
    /// covers the success path and the error path.
    @Test(arguments: FuzzTarget.allCases.filter { $0 != .plugin })
    func corpusHoldsValidAndInvalidInputs(target: FuzzTarget) throws {
        var accepted = 0, refused = 0
        for input in try Self.inputs(of: target) {
            do {
                try target.parse([UInt8](Data(contentsOf: input)))
                accepted += 1
            } catch {
                refused += 1
            }
        }
        #expect(accepted > 0 && refused > 0, "\(target.rawValue): \(accepted) accepted, \(refused) refused")
    }

    @Test func regressionInputsArePresent() throws {
        for (target, names) in Self.regressionInputs {
            let present = Set(try Self.inputs(of: target).map(\.lastPathComponent))
            for name in names {
                #expect(present.contains(name), "Fuzz/Corpus/\(target.rawValue)/\(name) is missing")
            }
        }
    }
}
