import CSentencePiece
import Foundation

/// The segmentation algorithm a trained SentencePiece model uses.
public enum TokenizerModelType: String, Sendable, CaseIterable, Codable {
    /// Byte-pair encoding: merges the most frequent adjacent pair, vocabulary grows bottom-up.
    case bpe
    /// Unigram language model: prunes a large seed vocabulary by likelihood (SentencePiece's
    /// default, used by T5 and ALBERT).
    case unigram
}

/// Which kind of file a tokenizer was read from.
public enum TokenizerKind: String, Sendable, Equatable {
    /// A SentencePiece `.model` file (protobuf).
    case sentencePiece
    /// A Hugging Face `tokenizer.json` with a byte-level BPE model.
    case bytePairJSON

    /// The file name Hugging Face model folders use for this kind.
    public var fileName: String {
        switch self {
        case .sentencePiece: return "tokenizer.model"
        case .bytePairJSON: return "tokenizer.json"
        }
    }
}

/// Errors from loading, using or training a tokenizer.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The model (or training corpus) file does not exist.
    case fileNotFound(path: String)
    /// The file exists but could not be read (permissions, a directory, …).
    case unreadableFile(path: String, reason: String)
    /// The bytes are not a serialized SentencePiece model. `source` is a path or a label.
    case notASentencePieceModel(source: String, reason: String)
    /// A token id that is not in the model's vocabulary.
    case idOutOfRange(id: Int, vocabularySize: Int, source: String)
    /// SentencePiece refused to encode or decode (not expected for valid input).
    case processingFailed(source: String, reason: String)
    /// A training option is invalid before SentencePiece is even asked.
    case invalidTrainingOption(name: String, value: String, reason: String)
    /// The corpus has no text to learn from (empty, or only blank lines).
    case emptyCorpus(input: String)
    /// The corpus cannot support the requested vocabulary.
    case vocabularySizeTooLarge(requested: Int, maximum: Int?, input: String, message: String)
    /// The vocabulary cannot hold every character the corpus needs at this character coverage.
    case vocabularySizeTooSmall(requested: Int, input: String, message: String)
    /// Any other failure reported by SentencePiece's trainer.
    case trainingFailed(input: String, message: String)
    /// The trained model could not be moved to its destination.
    case outputNotWritable(path: String, reason: String)
    /// A `tokenizer.json` names a component (or a setting of one) dpft does not implement;
    /// `key` is its path in the file, e.g. `pre_tokenizer.type`.
    case unsupportedComponent(source: String, key: String, value: String, supported: String)
    /// A `tokenizer.json` (or `tokenizer_config.json`) is not JSON or lacks what it must hold.
    case malformedTokenizerJSON(source: String, key: String, reason: String)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "no such file: \(path)"
        case .unreadableFile(let path, let reason):
            return "cannot read \(path): \(reason)"
        case .notASentencePieceModel(let source, let reason):
            return "\(source) is not a SentencePiece model (\(reason)); "
                + "pass a .model file written by SentencePiece or `dpft tokenizer train`"
        case .idOutOfRange(let id, let vocabularySize, let source):
            return "token id \(id) is outside the vocabulary of \(source): "
                + "ids must be in 0..<\(vocabularySize)"
        case .processingFailed(let source, let reason):
            return "SentencePiece failed with \(source): \(reason)"
        case .invalidTrainingOption(let name, let value, let reason):
            return "invalid tokenizer training option \(name) = \(value): \(reason)"
        case .emptyCorpus(let input):
            return "the corpus \(input) has no text to train on (it is empty or only blank lines)"
        case .vocabularySizeTooLarge(let requested, let maximum, let input, let message):
            let hint = maximum.map { "use --vocab-size \($0) or less" }
                ?? "use a smaller --vocab-size"
            return "vocabulary size \(requested) is too large for the corpus \(input): "
                + "\(hint), or train on more text (SentencePiece: \(message))"
        case .vocabularySizeTooSmall(let requested, let input, let message):
            return "vocabulary size \(requested) cannot hold every character of \(input): "
                + "use a larger --vocab-size or a character coverage below 1 "
                + "(SentencePiece: \(message))"
        case .trainingFailed(let input, let message):
            return "training a tokenizer on \(input) failed: \(message)"
        case .outputNotWritable(let path, let reason):
            return "cannot write the tokenizer model to \(path): \(reason)"
        case .unsupportedComponent(let source, let key, let value, let supported):
            return "\(source): \"\(key)\": \(value) is not supported (dpft reads \(supported)); "
                + "use a byte-level BPE tokenizer.json or a SentencePiece .model, or pre-tokenize the data into input_ids"
        case .malformedTokenizerJSON(let source, let key, let reason):
            return "\(source): \(key.isEmpty ? "" : "\"\(key)\" ")\(reason). "
                + "dpft reads tokenizer.json as Hugging Face tokenizers writes it (Tokenizer.save)"
        }
    }
}

/// A tokenizer of either kind dpft reads — a SentencePiece model (BPE or unigram) or a
/// Hugging Face byte-level BPE `tokenizer.json` — loaded from a file or its bytes. The kind is
/// told by the bytes themselves: a `tokenizer.json` starts with `{`, which no SentencePiece
/// model (a protobuf whose first field is tag 1) can.
///
/// The model is immutable once loaded; SentencePiece's encode/decode are const and
/// thread-safe and the BPE cache is locked, so one tokenizer may be shared across tasks.
public final class Tokenizer: @unchecked Sendable {
    /// The serialized model, exactly as loaded; a checkpoint stores these bytes (DESIGN.md §6).
    public let modelBytes: [UInt8]
    /// The kind of file `modelBytes` is.
    public let kind: TokenizerKind
    /// A `tokenizer_config.json` given with a `tokenizer.json` (its BOS/EOS names), as loaded.
    public let configBytes: [UInt8]?
    /// Where the model came from (a path, or a label given at load), used in error messages.
    public let source: String
    /// Number of pieces; valid ids are `0..<vocabularySize`.
    public let vocabularySize: Int
    /// Beginning-of-sequence id, or -1 when the model defines none (as SentencePiece reports).
    public let bosId: Int
    /// End-of-sequence id, or -1 when none.
    public let eosId: Int
    /// Padding id, or -1 when none (SentencePiece's default).
    public let padId: Int
    /// Unknown-piece id, or -1 when none.
    public let unkId: Int

    private enum Backend {
        case sentencePiece(OpaquePointer) // dpft_spm *
        case bytePair(BPETokenizer)
    }
    private let backend: Backend

    /// Loads the model file at `url`: a SentencePiece `.model` or a `tokenizer.json`. A
    /// `tokenizer_config.json` beside a `tokenizer.json` is read for the BOS/EOS names.
    public convenience init(contentsOf url: URL) throws {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw TokenizerError.fileNotFound(path: path)
        }
        if isDirectory.boolValue {
            throw TokenizerError.unreadableFile(path: path, reason: "it is a directory")
        }
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TokenizerError.unreadableFile(path: path, reason: FileProblem.reason(for: error, path: path))
        }
        let configURL = url.deletingLastPathComponent().appendingPathComponent("tokenizer_config.json")
        let config = Self.isJSON([UInt8](data)) ? FileManager.default.contents(atPath: configURL.path) : nil
        try self.init(modelBytes: [UInt8](data), configBytes: config.map { [UInt8]($0) }, source: path)
    }

    /// The kind of tokenizer file `bytes` are: JSON text is a `tokenizer.json`, anything else
    /// is taken for a SentencePiece protobuf.
    public static func kind(ofFile bytes: [UInt8]) -> TokenizerKind {
        isJSON(bytes) ? .bytePairJSON : .sentencePiece
    }

    /// Whether `bytes` are JSON text (a `tokenizer.json`) rather than a protobuf.
    static func isJSON(_ bytes: [UInt8]) -> Bool {
        let first = bytes.drop { [0x20, 0x09, 0x0A, 0x0D, 0xEF, 0xBB, 0xBF].contains($0) }.first
        return first == UInt8(ascii: "{")
    }

    /// Loads a model from its serialized bytes (a `.model` or `tokenizer.json` file's contents).
    ///
    /// - Parameters:
    ///   - configBytes: a `tokenizer_config.json`, read for `bos_token` and `eos_token` when
    ///     the model is a `tokenizer.json` (ignored for SentencePiece, whose model has its ids).
    ///   - modelEndOfSequence: the model's `eos_token_id` (config.json), the EOS of a
    ///     `tokenizer.json` whose `tokenizer_config.json` names none (see `BytePairSpecialTokens`).
    ///   - source: names the bytes in error messages, e.g. "checkpoint run.h5 /tokenizer".
    public init(modelBytes: [UInt8], configBytes: [UInt8]? = nil, modelEndOfSequence: Int? = nil,
                source: String? = nil) throws {
        let source = source ?? "the given model bytes (\(modelBytes.count) bytes)"
        self.modelBytes = modelBytes
        self.source = source
        if Self.isJSON(modelBytes) {
            let bpe = try BPETokenizer(json: modelBytes, source: source)
            let specials = try BytePairSpecialTokens(bpe, configBytes: configBytes,
                                                     modelEndOfSequence: modelEndOfSequence, source: source)
            self.backend = .bytePair(bpe)
            self.kind = .bytePairJSON
            self.configBytes = configBytes
            self.vocabularySize = bpe.vocabularySize
            (self.bosId, self.eosId, self.padId, self.unkId) = (specials.bos, specials.eos, specials.pad, specials.unk)
            return
        }
        self.kind = .sentencePiece
        self.configBytes = nil
        if modelBytes.isEmpty {
            throw TokenizerError.notASentencePieceModel(source: source, reason: "it is empty")
        }
        var message = [CChar](repeating: 0, count: 1024)
        let loaded = modelBytes.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                dpft_spm_load(chars.baseAddress, chars.count, &message, message.count)
            }
        }
        guard let loaded else {
            // Usually "check failed: model_proto->ParseFromArray(…)": say it in words.
            let status = Self.readableStatus(Self.string(message))
            let reason = status.contains("ParseFromArray") ? "its bytes do not parse as one" : status
            throw TokenizerError.notASentencePieceModel(source: source, reason: reason)
        }
        // Protobuf accepts some non-model bytes (stray bytes can parse as an empty message);
        // a model with no pieces is never useful, so refuse it here.
        guard dpft_spm_vocab_size(loaded) > 0 else {
            dpft_spm_free(loaded)
            throw TokenizerError.notASentencePieceModel(source: source,
                                                        reason: "it has no pieces")
        }
        self.backend = .sentencePiece(loaded)
        self.vocabularySize = Int(dpft_spm_vocab_size(loaded))
        self.bosId = Int(dpft_spm_bos_id(loaded))
        self.eosId = Int(dpft_spm_eos_id(loaded))
        self.padId = Int(dpft_spm_pad_id(loaded))
        self.unkId = Int(dpft_spm_unk_id(loaded))
    }

    deinit {
        if case .sentencePiece(let handle) = backend { dpft_spm_free(handle) }
    }

    /// The ids of `text`'s pieces, without BOS/EOS (add them where a template needs them).
    public func encode(_ text: String) throws -> [Int] {
        let handle: OpaquePointer
        switch backend {
        case .bytePair(let bpe): return bpe.encode(text)
        case .sentencePiece(let sentencePiece): handle = sentencePiece
        }
        let utf8 = Array(text.utf8)
        if utf8.isEmpty { return [] }
        guard utf8.count < Int(Int32.max) / 2 else {
            throw TokenizerError.processingFailed(
                source: source, reason: "a text of \(utf8.count) bytes is too long to encode at once")
        }
        var message = [CChar](repeating: 0, count: 512)
        // With byte fallback an unknown character costs one id per byte, plus the "▁" prefix;
        // the C call reports the true count, so one retry always suffices.
        var capacity = utf8.count + 8
        while true {
            var ids = [Int32](repeating: 0, count: capacity)
            let count = utf8.withUnsafeBufferPointer { bytes in
                bytes.withMemoryRebound(to: CChar.self) { chars in
                    dpft_spm_encode(handle, chars.baseAddress, chars.count,
                                    &ids, Int32(capacity), &message, message.count)
                }
            }
            if count < 0 {
                throw TokenizerError.processingFailed(source: source, reason: Self.string(message))
            }
            if Int(count) <= capacity {
                return ids.prefix(Int(count)).map(Int.init)
            }
            capacity = Int(count)
        }
    }

    /// The text of `ids`. SentencePiece: as it detokenizes (unknown pieces become " ⁇ ",
    /// control pieces such as BOS/EOS/PAD become nothing). `tokenizer.json`: the bytes of the
    /// tokens, special tokens included (transformers' `decode` default); a sequence cut inside
    /// a character gives U+FFFD.
    public func decode(_ ids: [Int]) throws -> String {
        if let bad = ids.first(where: { $0 < 0 || $0 >= vocabularySize }) {
            throw TokenizerError.idOutOfRange(id: bad, vocabularySize: vocabularySize,
                                              source: source)
        }
        let handle: OpaquePointer
        switch backend {
        case .bytePair(let bpe):
            guard let text = bpe.decode(ids) else {
                throw TokenizerError.idOutOfRange(id: ids.first { bpe.decode([$0]) == nil }!,
                                                  vocabularySize: vocabularySize, source: source)
            }
            return text
        case .sentencePiece(let sentencePiece): handle = sentencePiece
        }
        if ids.isEmpty { return "" }
        let ids32 = ids.map { Int32($0) }
        var message = [CChar](repeating: 0, count: 512)
        var capacity = ids.count * 8 + 64
        while true {
            var text = [UInt8](repeating: 0, count: capacity)
            let length = text.withUnsafeMutableBufferPointer { bytes in
                bytes.withMemoryRebound(to: CChar.self) { chars in
                    dpft_spm_decode(handle, ids32, Int32(ids32.count), chars.baseAddress,
                                    chars.count, &message, message.count)
                }
            }
            if length < 0 {
                throw TokenizerError.processingFailed(source: source, reason: Self.string(message))
            }
            if Int(length) <= capacity {
                // Lone byte-fallback pieces can form invalid UTF-8: those become U+FFFD.
                return String(decoding: text.prefix(Int(length)), as: UTF8.self)
            }
            capacity = Int(length)
        }
    }

    /// The piece string for `id` (e.g. "▁model", "<unk>", "<0x41>"; "Ġmodel" in a
    /// `tokenizer.json`), or nil when out of range.
    public func piece(for id: Int) -> String? {
        guard id >= 0 && id < vocabularySize else { return nil }
        let handle: OpaquePointer
        switch backend {
        case .bytePair(let bpe): return bpe.piece(for: id)
        case .sentencePiece(let sentencePiece): handle = sentencePiece
        }
        var buffer = [CChar](repeating: 0, count: 64)
        var length = dpft_spm_id_to_piece(handle, Int32(id), &buffer, buffer.count)
        if length >= buffer.count {
            buffer = [CChar](repeating: 0, count: Int(length) + 1)
            length = dpft_spm_id_to_piece(handle, Int32(id), &buffer, buffer.count)
        }
        return length < 0 ? nil : Self.string(buffer)
    }

    private static func string(_ cString: [CChar]) -> String {
        String(decoding: cString.prefix { $0 != 0 }.map(UInt8.init(bitPattern:)), as: UTF8.self)
    }

    /// SentencePiece's failed checks read "Internal: ./src/trainer_interface.cc(660)
    /// [(a) == (b)] Vocabulary size too high …": keep only the sentence after the check,
    /// or the check itself when no sentence follows.
    static func readableStatus(_ status: String) -> String {
        let check = #/^[A-Za-z ]+: \S+\(\d+\) \[(.*?)\](?: |$)/#
        guard let match = status.firstMatch(of: check) else { return status }
        let sentence = status[match.range.upperBound...].trimmingCharacters(in: .whitespaces)
        return sentence.isEmpty ? "check failed: \(match.output.1)" : sentence
    }
}

// MARK: - Training

extension Tokenizer {
    /// Trains a SentencePiece model on the text file `input` (one sentence per line) and
    /// writes it to `output`, which is replaced atomically: SentencePiece writes under a
    /// temporary prefix in `output`'s directory, then the `.model` file is renamed onto
    /// `output`. SentencePiece's `.vocab` side file (piece and score per line) is deleted
    /// unless `writeVocabularyFile` is true, in which case it is moved next to `output` as
    /// `<output without extension>.vocab` (e.g. `tok.model` → `tok.vocab`).
    ///
    /// - Parameters:
    ///   - vocabularySize: pieces in the model, including `<unk>`, `<s>`, `</s>`.
    ///   - characterCoverage: share of the corpus's characters the vocabulary must cover
    ///     (1.0 for small alphabets; ~0.9995 for CJK-sized ones). Others map to `<unk>`.
    ///   - extraOptions: further SentencePiece trainer flags, without dashes
    ///     (e.g. `["byte_fallback": "true", "pad_id": "3", "num_threads": "2"]`); they
    ///     override the defaults set here. `input` and `model_prefix` are not allowed.
    ///   - verbose: let SentencePiece log its progress to standard error (warnings only
    ///     otherwise). The log level is process-wide in SentencePiece.
    /// - Returns: the trained tokenizer, loaded from `output`.
    @discardableResult
    public static func train(input: URL, vocabularySize: Int,
                             modelType: TokenizerModelType = .bpe, output: URL,
                             characterCoverage: Double = 1.0,
                             writeVocabularyFile: Bool = false,
                             extraOptions: [String: String] = [:],
                             verbose: Bool = false) throws -> Tokenizer {
        let inputPath = input.path
        try validateTrainingInput(inputPath, vocabularySize: vocabularySize,
                                  characterCoverage: characterCoverage, extraOptions: extraOptions)

        let outputDirectory = output.deletingLastPathComponent()
        if let problem = FileProblem.directoryProblem(at: outputDirectory.path) {
            throw TokenizerError.outputNotWritable(path: output.path, reason: problem)
        }
        let prefix = outputDirectory
            .appendingPathComponent(".\(output.lastPathComponent).training-\(UUID().uuidString)").path
        let temporaryModel = prefix + ".model"
        let temporaryVocabulary = prefix + ".vocab"
        defer {
            try? FileManager.default.removeItem(atPath: temporaryModel)
            try? FileManager.default.removeItem(atPath: temporaryVocabulary)
        }

        var options: [String: String] = [
            "model_type": modelType.rawValue,
            "vocab_size": String(vocabularySize),
            "character_coverage": String(characterCoverage),
            "minloglevel": verbose ? "0" : "1",
        ]
        options.merge(extraOptions) { _, extra in extra }
        options["input"] = inputPath
        options["model_prefix"] = prefix

        let keys = Array(options.keys)
        let values = keys.map { options[$0]! }
        var message = [CChar](repeating: 0, count: 2048)
        let status = withCStrings(keys) { keyPointers in
            withCStrings(values) { valuePointers in
                dpft_spm_train(keyPointers, valuePointers, Int32(keys.count),
                               &message, message.count)
            }
        }
        if status != 0 {
            throw trainingError(message: readableStatus(string(message)),
                                requested: vocabularySize, input: inputPath)
        }

        if rename(temporaryModel, output.path) != 0 {
            throw TokenizerError.outputNotWritable(path: output.path,
                                                   reason: String(cString: strerror(errno)))
        }
        if writeVocabularyFile {
            let vocabularyPath = output.deletingPathExtension().appendingPathExtension("vocab").path
            if rename(temporaryVocabulary, vocabularyPath) != 0 {
                throw TokenizerError.outputNotWritable(path: vocabularyPath,
                                                       reason: String(cString: strerror(errno)))
            }
        }
        return try Tokenizer(contentsOf: output)
    }

    /// The checks `train` makes before SentencePiece sees anything: a readable corpus file
    /// whose path has no comma, a positive vocabulary size, a coverage in (0, 1], and no
    /// option that dpft sets itself.
    private static func validateTrainingInput(_ inputPath: String, vocabularySize: Int, characterCoverage: Double,
                                              extraOptions: [String: String]) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: inputPath, isDirectory: &isDirectory) else {
            throw TokenizerError.fileNotFound(path: inputPath)
        }
        if isDirectory.boolValue || !FileManager.default.isReadableFile(atPath: inputPath) {
            throw TokenizerError.unreadableFile(
                path: inputPath, reason: isDirectory.boolValue ? "it is a directory" : "permission denied")
        }
        // SentencePiece splits `input` on commas into several files.
        if inputPath.contains(",") {
            throw TokenizerError.invalidTrainingOption(
                name: "input", value: inputPath,
                reason: "SentencePiece reads a comma as a list of files; rename the corpus")
        }
        guard vocabularySize > 0 else {
            throw TokenizerError.invalidTrainingOption(
                name: "vocabulary size", value: String(vocabularySize), reason: "must be positive")
        }
        guard characterCoverage > 0 && characterCoverage <= 1 else {
            throw TokenizerError.invalidTrainingOption(
                name: "character coverage", value: String(characterCoverage),
                reason: "must be in (0, 1]")
        }
        for reserved in ["input", "model_prefix"] where extraOptions[reserved] != nil {
            throw TokenizerError.invalidTrainingOption(
                name: reserved, value: extraOptions[reserved]!,
                reason: "set by dpft itself; pass the corpus as `input` and the file as `output`")
        }
    }

    /// Maps SentencePiece's trainer messages to errors that say what to change.
    static func trainingError(message: String, requested: Int, input: String) -> TokenizerError {
        // "Vocabulary size too high (5000). Please set it to a value <= 1234." (unigram)
        if message.contains("Vocabulary size too high") {
            let maximum = message.range(of: "<= ").flatMap { range in
                Int(message[range.upperBound...].prefix { $0.isNumber })
            }
            return .vocabularySizeTooLarge(requested: requested, maximum: maximum, input: input,
                                           message: message)
        }
        // "check failed: !sentences_.empty()" (no non-empty line in the corpus)
        if message.contains("sentences_.empty()") {
            return .emptyCorpus(input: input)
        }
        // "Vocabulary size is smaller than required_chars. 50 vs 70." (both types)
        if message.contains("smaller than required_chars") {
            return .vocabularySizeTooSmall(requested: requested, input: input, message: message)
        }
        return .trainingFailed(input: input, message: message)
    }
}

/// Calls `body` with a C array of NUL-terminated copies of `strings`, valid only inside `body`.
private func withCStrings<Result>(_ strings: [String],
                                  _ body: ([UnsafePointer<CChar>?]) -> Result) -> Result {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    return body(copies.map { UnsafePointer($0) })
}
