import ArgumentParser
import DPFT
import Foundation

/// The command-line spelling of `TokenizerModelType` (kept here so that the library does
/// not depend on ArgumentParser).
enum TokenizerModelTypeArgument: String, CaseIterable, ExpressibleByArgument {
    case bpe, unigram

    var modelType: TokenizerModelType {
        switch self {
        case .bpe: return .bpe
        case .unigram: return .unigram
        }
    }
}

/// Where `encode`, `decode` and `bench` take their tokenizer from: a file, or a checkpoint.
struct TokenizerSourceOptions: ParsableArguments {
    @Option(help: "Tokenizer file: a SentencePiece .model or a Hugging Face tokenizer.json.")
    var model: String?

    @Option(help: "A dpft checkpoint whose stored tokenizer to use (instead of --model).")
    var checkpoint: String?

    func validate() throws {
        guard (model == nil) != (checkpoint == nil) else {
            throw ValidationError("give exactly one of --model FILE or --checkpoint CKPT.h5")
        }
    }

    func load() throws -> Tokenizer {
        if let model { return try Tokenizer(contentsOf: URL(fileURLWithPath: model)) }
        let path = checkpoint!
        guard let tokenizer = try Checkpoint.read(from: URL(fileURLWithPath: path)).storedTokenizer(path: path) else {
            throw ValidationError("\(path) stores no tokenizer; pass --model FILE, or import the model with its tokenizer")
        }
        return tokenizer
    }
}

/// `dpft tokenizer train|encode|decode|bench` — the tokenizers of dpft's data pipeline:
/// SentencePiece models and Hugging Face byte-level BPE `tokenizer.json` files.
struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Train SentencePiece tokenizers; encode, decode or time text with a .model or tokenizer.json.",
        subcommands: [Train.self, Encode.self, Decode.self, Bench.self])

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train a BPE or unigram SentencePiece model on a text corpus.",
            discussion: """
                The corpus is read one sentence per line; a .jsonl corpus contributes the "text" \
                fields of its lines (newlines inside a text become line breaks). The model is written atomically to \
                --output; with --write-vocab, SentencePiece's piece list is also written next \
                to it as <output without extension>.vocab.
                """)

        @Option(help: "Training corpus: a UTF-8 text file, one sentence per line, or JSON Lines with \"text\" fields.")
        var input: String

        @Option(help: "Number of pieces in the vocabulary, including <unk>, <s> and </s>.")
        var vocabSize: Int

        @Option(help: "Segmentation algorithm: bpe or unigram.")
        var modelType: TokenizerModelTypeArgument = .bpe

        @Option(help: "Where to write the trained model (e.g. tok.model).")
        var output: String

        @Option(help: "Share of the corpus's characters the vocabulary must cover; the rest become <unk>.")
        var characterCoverage: Double = 1.0

        @Option(name: .customLong("option"),
                help: ArgumentHelp("Further SentencePiece trainer flag as KEY=VALUE (repeatable), e.g. byte_fallback=true.",
                                   valueName: "key=value"))
        var options: [String] = []

        @Flag(help: "Also write <output without extension>.vocab (piece and score per line).")
        var writeVocab = false

        @Flag(help: "Show SentencePiece's training log.")
        var verbose = false

        /// `--option` values as SentencePiece trainer flags.
        func extraOptions() throws -> [String: String] {
            var extraOptions: [String: String] = [:]
            for option in options {
                guard let equals = option.firstIndex(of: "="), equals != option.startIndex else {
                    throw ValidationError("--option expects KEY=VALUE, got '\(option)'")
                }
                extraOptions[String(option[..<equals])] = String(option[option.index(after: equals)...])
            }
            return extraOptions
        }

        func validate() throws {
            _ = try extraOptions()
        }

        func run() throws {
            let extraOptions = try extraOptions()
            let outputURL = URL(fileURLWithPath: output)
            var corpus = URL(fileURLWithPath: input)
            var temporary: URL?
            if input.hasSuffix(".jsonl") {
                // SentencePiece reads plain lines: write the "text" fields to a temporary file.
                var lines: [String] = []
                for (line, record) in try JSONLReader.read(corpus) {
                    guard case .text(let text) = record else {
                        throw ValidationError("\(input):\(line): a .jsonl corpus needs {\"text\": …} lines")
                    }
                    lines.append(text)
                }
                let url = FileManager.default.temporaryDirectory.appendingPathComponent("dpft-corpus-\(UUID().uuidString).txt")
                try Data(lines.joined(separator: "\n").utf8).write(to: url)
                corpus = url
                temporary = url
            }
            defer { if let temporary { try? FileManager.default.removeItem(at: temporary) } }
            let tokenizer = try Tokenizer.train(
                input: corpus, vocabularySize: vocabSize,
                modelType: modelType.modelType, output: outputURL,
                characterCoverage: characterCoverage, writeVocabularyFile: writeVocab,
                extraOptions: extraOptions, verbose: verbose)
            func special(_ id: Int) -> String { id < 0 ? "none" : String(id) }
            print("Trained a \(modelType.rawValue) tokenizer on \(input): "
                + "\(tokenizer.vocabularySize) pieces "
                + "(unk \(special(tokenizer.unkId)), bos \(special(tokenizer.bosId)), "
                + "eos \(special(tokenizer.eosId)), pad \(special(tokenizer.padId)))")
            print("Wrote \(outputURL.path)")
            if writeVocab {
                print("Wrote \(outputURL.deletingPathExtension().appendingPathExtension("vocab").path)")
            }
        }
    }

    struct Encode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the token ids of a text (without BOS/EOS).")

        @OptionGroup var source: TokenizerSourceOptions

        @Argument(help: "Text to encode.")
        var text: String

        @Flag(help: "Print a JSON array instead of space-separated ids.")
        var json = false

        func run() throws {
            let tokenizer = try source.load()
            let ids = try tokenizer.encode(text)
            let joined = ids.map(String.init)
            print(json ? "[" + joined.joined(separator: ",") + "]" : joined.joined(separator: " "))
        }
    }

    struct Decode: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the text of token ids.",
            discussion: """
                Ids may be given as separate arguments or in one argument separated by spaces \
                or commas, so the output of `encode` (plain or --json) can be passed back.
                """)

        @OptionGroup var source: TokenizerSourceOptions

        @Argument(help: "Token ids to decode.")
        var ids: [String] = []

        /// The ids in the arguments, split on spaces, commas and brackets.
        func parsedIds() throws -> [Int] {
            let separators = CharacterSet.whitespacesAndNewlines
                .union(CharacterSet(charactersIn: ",[]"))
            var parsed: [Int] = []
            for token in ids.flatMap({ $0.components(separatedBy: separators) }) where !token.isEmpty {
                guard let id = Int(token) else {
                    throw ValidationError("'\(token)' is not a token id (ids are integers)")
                }
                parsed.append(id)
            }
            return parsed
        }

        func validate() throws {
            _ = try parsedIds()
        }

        func run() throws {
            let tokenizer = try source.load()
            print(try tokenizer.decode(parsedIds()))
        }
    }

    struct Bench: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Encode throughput (MB/s of UTF-8 text, one thread) over a text file.",
            discussion: """
                Encodes every line of --text (a .jsonl file contributes its "text" fields) in \
                one thread, --repeats times, and reports the best pass; the first pass fills the \
                BPE word cache as later ones use it. tools/bench_tokenizer.py times the \
                tokenizers package the same way.
                """)

        @OptionGroup var source: TokenizerSourceOptions

        @Option(help: "Text to encode: UTF-8 lines, or JSON Lines with \"text\" fields.")
        var text: String

        @Option(help: "Timed passes over the text (the best is reported).")
        var repeats: Int = 5

        func run() throws {
            guard repeats > 0 else { throw ValidationError("--repeats must be positive") }
            let tokenizer = try source.load()
            let lines = try Self.lines(of: text)
            let bytes = lines.reduce(0) { $0 + $1.utf8.count }
            var best = Double.infinity, tokens = 0
            for _ in 0..<repeats {
                let start = DispatchTime.now().uptimeNanoseconds
                tokens = try lines.reduce(0) { $0 + (try tokenizer.encode($1)).count }
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            let name = source.model ?? "\(source.checkpoint!) (\(tokenizer.kind.fileName))"
            print("dpft \(name): \(lines.count) lines, " + String(format: "%.2f MB, %d tokens; encode %.2f MB/s (best of %d, one thread)",
                                                                Double(bytes) / 1e6, tokens, Double(bytes) / 1e6 / best, repeats))
        }

        static func lines(of path: String) throws -> [String] {
            let url = URL(fileURLWithPath: path)
            if path.hasSuffix(".jsonl") {
                return try JSONLReader.read(url).compactMap { _, record in
                    if case .text(let text) = record { return text } else { return nil }
                }
            }
            return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map(String.init)
        }
    }
}
