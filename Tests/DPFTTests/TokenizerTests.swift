import Foundation
import Testing
@testable import DPFT

/// One model's reference made by tools/make_tokenizer_fixture.py with Python sentencepiece.
private struct TokenizerReference: Decodable {
    struct Case: Decodable {
        var text: String
        var ids: [Int]
        var pieces: [String]
        var decoded: String
    }

    var model: String
    var modelType: String
    var sentencepieceVersion: String
    var vocabSize: Int
    var bosId: Int
    var eosId: Int
    var padId: Int
    var unkId: Int
    var cases: [Case]

    static func load(_ name: String) throws -> TokenizerReference {
        let data = try Data(contentsOf: Fixtures.url("tokenizer/\(name)"))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(TokenizerReference.self, from: data)
    }

    var modelURL: URL { Fixtures.url("tokenizer/\(model)") }
}

private let referenceFiles = ["expected.json", "expected-unigram.json"]

@Suite("Tokenizer against Python sentencepiece")
struct TokenizerReferenceTests {
    @Test("special ids and vocabulary size match", arguments: referenceFiles)
    func specialIds(referenceFile: String) throws {
        let reference = try TokenizerReference.load(referenceFile)
        let tokenizer = try Tokenizer(contentsOf: reference.modelURL)
        #expect(tokenizer.vocabularySize == reference.vocabSize)
        #expect(tokenizer.bosId == reference.bosId)
        #expect(tokenizer.eosId == reference.eosId)
        #expect(tokenizer.padId == reference.padId)
        #expect(tokenizer.unkId == reference.unkId)
    }

    @Test("ids, pieces and decoded text equal Python's for every case", arguments: referenceFiles)
    func encodeDecode(referenceFile: String) throws {
        let reference = try TokenizerReference.load(referenceFile)
        let tokenizer = try Tokenizer(contentsOf: reference.modelURL)
        for example in reference.cases {
            let ids = try tokenizer.encode(example.text)
            #expect(ids == example.ids, "ids of \(String(reflecting: example.text)) (\(reference.model))")
            #expect(ids.map { tokenizer.piece(for: $0) } == example.pieces.map { Optional($0) },
                    "pieces of \(String(reflecting: example.text)) (\(reference.model))")
            let decoded = try tokenizer.decode(example.ids)
            #expect(decoded == example.decoded, "decoded \(String(reflecting: example.text)) (\(reference.model))")
        }
    }

    @Test("loading from bytes equals loading from the file", arguments: referenceFiles)
    func bytesEqualFile(referenceFile: String) throws {
        let reference = try TokenizerReference.load(referenceFile)
        let fromFile = try Tokenizer(contentsOf: reference.modelURL)
        let bytes = [UInt8](try Data(contentsOf: reference.modelURL))
        let fromBytes = try Tokenizer(modelBytes: bytes)
        #expect(fromFile.modelBytes == bytes)
        #expect(fromBytes.modelBytes == bytes)
        #expect(fromBytes.vocabularySize == fromFile.vocabularySize)
        let bytesSpecialIds: [Int] = [fromBytes.bosId, fromBytes.eosId, fromBytes.padId, fromBytes.unkId]
        let fileSpecialIds: [Int] = [fromFile.bosId, fromFile.eosId, fromFile.padId, fromFile.unkId]
        #expect(bytesSpecialIds == fileSpecialIds)
        for example in reference.cases {
            #expect(try fromBytes.encode(example.text) == fromFile.encode(example.text))
        }
        for id in 0..<fromFile.vocabularySize {
            #expect(fromBytes.piece(for: id) == fromFile.piece(for: id))
        }
    }

    @Test("BOS, EOS and PAD decode to nothing; every single id decodes")
    func controlPieces() throws {
        let tokenizer = try Tokenizer(contentsOf: try TokenizerReference.load("expected-unigram.json").modelURL)
        let hello = try tokenizer.encode("the model")
        #expect(try tokenizer.decode([tokenizer.bosId] + hello + [tokenizer.eosId, tokenizer.padId])
                == "the model")
        for id in 0..<tokenizer.vocabularySize {
            _ = try tokenizer.decode([id]) // lone byte pieces give U+FFFD, never an error
        }
    }
}

/// Training touches SentencePiece's process-wide log level, so these run one at a time.
@Suite("Tokenizer training and errors", .serialized)
struct TokenizerTrainingTests {
    /// A small corpus with accents and digits; every line is already in normal form, so a
    /// model trained on it must give each line back unchanged.
    static let corpusLines: [String] = (0..<400).map { index in
        let subjects = ["The model", "A café", "Our naïve baseline", "Every résumé", "Zürich"]
        let verbs = ["reads", "clips", "remembers", "encodes", "protects"]
        let objects = ["the gradient", "\(index) tokens", "each sentence", "the budget", "crème brûlée"]
        return "\(subjects[index % 5]) \(verbs[(index / 5) % 5]) \(objects[(index / 25) % 5]) at step \(index * 7 % 113)."
    }

    static func writeCorpus(in directory: URL) throws -> URL {
        let url = directory.appendingPathComponent("corpus.txt")
        try (corpusLines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    @Test("a model trained from Swift round-trips its corpus", arguments: TokenizerModelType.allCases)
    func trainRoundTrip(modelType: TokenizerModelType) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let corpus = try Self.writeCorpus(in: directory)
        let output = directory.appendingPathComponent("tok.model")

        let trained = try Tokenizer.train(input: corpus, vocabularySize: 120, modelType: modelType,
                                          output: output)
        #expect(trained.vocabularySize == 120)
        let specialIds: [Int] = [trained.unkId, trained.bosId, trained.eosId, trained.padId]
        #expect(specialIds == [0, 1, 2, -1]) // SentencePiece's defaults
        // Only the model is left: no temporary prefix files, no .vocab unless asked for.
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(files == ["corpus.txt", "tok.model"])

        let loaded = try Tokenizer(contentsOf: output)
        #expect(loaded.modelBytes == trained.modelBytes)
        for line in Self.corpusLines {
            let ids = try loaded.encode(line)
            #expect(!ids.contains(loaded.unkId), "no <unk> in \(line)")
            #expect(try loaded.decode(ids) == line)
        }
    }

    @Test("training replaces an existing output and can keep the .vocab file")
    func trainReplacesOutputAndWritesVocabulary() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let corpus = try Self.writeCorpus(in: directory)
        let output = directory.appendingPathComponent("tok.model")
        try Data("old".utf8).write(to: output)

        let trained = try Tokenizer.train(input: corpus, vocabularySize: 100, modelType: .unigram,
                                          output: output, writeVocabularyFile: true,
                                          extraOptions: ["pad_id": "3", "num_threads": "1"])
        #expect(trained.padId == 3)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(files == ["corpus.txt", "tok.model", "tok.vocab"])
        let vocabulary = try String(contentsOf: directory.appendingPathComponent("tok.vocab"), encoding: .utf8)
        #expect(vocabulary.split(separator: "\n").count == 100)
        #expect(try Tokenizer(contentsOf: output).padId == 3)
    }

    @Test("SentencePiece's check-failure prefix is dropped from messages")
    func readableStatus() {
        #expect(Tokenizer.readableStatus(
            "Internal: ./src/trainer_interface.cc(660) [(trainer_spec_.vocab_size()) == (model_proto->pieces_size())] Vocabulary size too high (70). Please set it to a value <= 44.")
            == "Vocabulary size too high (70). Please set it to a value <= 44.")
        #expect(Tokenizer.readableStatus("Internal: ./src/trainer_interface.cc(339) [!sentences_.empty()] ")
            == "check failed: !sentences_.empty()")
        #expect(Tokenizer.readableStatus("Not found: unknown field name \"bogus\" in TrainerSpec.")
            == "Not found: unknown field name \"bogus\" in TrainerSpec.")
    }

    @Test("a missing model file is named in the error")
    func missingFile() throws {
        let path = "/nonexistent/dpft/tok.model"
        #expect(throws: TokenizerError.fileNotFound(path: path)) {
            try Tokenizer(contentsOf: URL(fileURLWithPath: path))
        }
        #expect(TokenizerError.fileNotFound(path: path).description.contains(path))
    }

    @Test("a file that is not a model is refused with its name", arguments: ["text", "empty", "json"])
    func notAModel(kind: String) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("not-a-model.\(kind)")
        let contents = ["text": "hello world\nthis is not a SentencePiece model\n", "empty": "",
                        "json": #"{"vocab_size": 256, "bos_id": 1}"#][kind]!
        try Data(contents.utf8).write(to: url)
        do {
            _ = try Tokenizer(contentsOf: url)
            Issue.record("loading \(url.lastPathComponent) should fail")
        } catch let error as TokenizerError {
            switch error {
            case .notASentencePieceModel(let source, _) where kind != "json",
                 // JSON is read as a Hugging Face tokenizer.json, which needs a "model".
                 .malformedTokenizerJSON(let source, "model", _) where kind == "json":
                #expect(source == url.path)
                #expect(error.description.contains(url.path))
            default:
                Issue.record("unexpected error \(error)")
            }
        }
    }

    @Test("an id outside the vocabulary is an error, not a crash")
    func idOutOfRange() throws {
        let tokenizer = try Tokenizer(contentsOf: Fixtures.url("tokenizer/tok.model"))
        let size = tokenizer.vocabularySize
        for bad in [size, -1, Int(Int32.max) + 1] {
            #expect(throws: TokenizerError.idOutOfRange(id: bad, vocabularySize: size, source: tokenizer.source)) {
                try tokenizer.decode([5, bad, 6])
            }
            #expect(tokenizer.piece(for: bad) == nil)
        }
        let message = TokenizerError.idOutOfRange(id: size, vocabularySize: size, source: tokenizer.source).description
        #expect(message.contains("tok.model") && message.contains("0..<\(size)"))
    }

    @Test("a vocabulary too large for the corpus suggests a smaller size", arguments: TokenizerModelType.allCases)
    func vocabularyTooLarge(modelType: TokenizerModelType) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let corpus = directory.appendingPathComponent("tiny.txt")
        try "a tiny corpus\nwith few words\n".write(to: corpus, atomically: true, encoding: .utf8)
        let output = directory.appendingPathComponent("tok.model")
        do {
            try Tokenizer.train(input: corpus, vocabularySize: 5000, modelType: modelType, output: output)
            Issue.record("training a \(modelType) vocabulary of 5000 on two lines should fail")
        } catch let error as TokenizerError {
            guard case .vocabularySizeTooLarge(let requested, let maximum, let input, _) = error else {
                Issue.record("unexpected error \(error)")
                return
            }
            #expect(requested == 5000)
            #expect(input == corpus.path)
            if let maximum { #expect(maximum < 5000) }
            #expect(error.description.contains("smaller") || error.description.contains("or less"))
        }
        #expect(!FileManager.default.fileExists(atPath: output.path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["tiny.txt"])
    }

    @Test("training errors name the corpus or the option")
    func trainingInputErrors() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("tok.model")
        let missing = directory.appendingPathComponent("missing.txt")
        #expect(throws: TokenizerError.fileNotFound(path: missing.path)) {
            try Tokenizer.train(input: missing, vocabularySize: 100, output: output)
        }
        let blank = directory.appendingPathComponent("blank.txt")
        try "\n\n\n".write(to: blank, atomically: true, encoding: .utf8)
        #expect(throws: TokenizerError.emptyCorpus(input: blank.path)) {
            try Tokenizer.train(input: blank, vocabularySize: 100, output: output)
        }
        let corpus = try Self.writeCorpus(in: directory)
        #expect(throws: TokenizerError.self) {
            try Tokenizer.train(input: corpus, vocabularySize: 0, output: output)
        }
        #expect(throws: TokenizerError.self) {
            try Tokenizer.train(input: corpus, vocabularySize: 100, output: output,
                                extraOptions: ["no_such_flag": "1"])
        }
        let nowhere = directory.appendingPathComponent("no/such/dir/tok.model")
        #expect(throws: TokenizerError.outputNotWritable(
            path: nowhere.path, reason: "the directory \(nowhere.deletingLastPathComponent().path) does not exist")) {
            try Tokenizer.train(input: corpus, vocabularySize: 100, output: nowhere)
        }
        // under a regular file: it said the directory did not exist
        let underFile = corpus.appendingPathComponent("tok.model")
        #expect(throws: TokenizerError.outputNotWritable(path: underFile.path,
                                                         reason: "not a directory: \(corpus.path) is a regular file")) {
            try Tokenizer.train(input: corpus, vocabularySize: 100, output: underFile)
        }
        #expect(!FileManager.default.fileExists(atPath: output.path))
    }
}
