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

/// `dpft tokenizer train|encode|decode` — SentencePiece models for dpft's data pipeline.
struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Train SentencePiece tokenizers, and encode or decode text with one.",
        subcommands: [Train.self, Encode.self, Decode.self])

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

        @Option(help: "SentencePiece model file.")
        var model: String

        @Argument(help: "Text to encode.")
        var text: String

        @Flag(help: "Print a JSON array instead of space-separated ids.")
        var json = false

        func run() throws {
            let tokenizer = try Tokenizer(contentsOf: URL(fileURLWithPath: model))
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

        @Option(help: "SentencePiece model file.")
        var model: String

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
            let tokenizer = try Tokenizer(contentsOf: URL(fileURLWithPath: model))
            print(try tokenizer.decode(parsedIds()))
        }
    }
}
