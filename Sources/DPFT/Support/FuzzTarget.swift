// The parsers of files and messages that come from outside, each as one "parse these bytes"
// function: the fuzz targets (Fuzz/, `make fuzz`) feed them libFuzzer's inputs and the test
// suite (FuzzCorpusTests) replays the committed corpus (Fuzz/Corpus/<target>/) through the same
// functions. Each must return or throw a typed error for any input; a trap, a hang or unbounded
// memory is a bug in the parser.

import CDPFTPlugin
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A parser of untrusted bytes, as the fuzz targets and the corpus replay test drive it.
///
/// `parse(_:)` runs the parser the way dpft runs it on a file (or a plugin message) holding
/// the bytes, plus the steps that use the parsed value right after (reading tensors, matching
/// rules, resolving a recipe), so that a value the parser accepts is exercised too. It throws
/// the parser's own typed error for bad input and never traps.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// A safetensors file: header validation, then every tensor converted to Float32.
    case safetensors
    /// The JSON layer (Support/JSONParser.swift): parse, write compact and pretty, parse again.
    case json
    /// A JSON Lines data file read by `ExampleLoader` (pre-tokenized examples, malformed lines skipped).
    case jsonl
    /// A recipe file, then its resolved form and hash. Bytes after a NUL are `--set` overrides,
    /// one per NUL-separated part.
    case recipe
    /// A grouping rule file, then its groups for the tensors of a tiny GPT-2.
    case rules
    /// A model `config.json`, then the memory check `dpft init` does before allocating.
    case config
    /// The grouping plugin wire format (DESIGN.md §4): the bytes as a strategy description, a
    /// partition request, grouping options and a partition answer.
    case plugin

    /// Parses `bytes` with this target's parser; throws its typed error for bad input.
    public func parse(_ bytes: [UInt8]) throws {
        switch self {
        case .safetensors: try Self.parseSafeTensors(bytes)
        case .json: try Self.parseJSON(bytes)
        case .jsonl: try Self.parseJSONLines(bytes)
        case .recipe: try Self.parseRecipe(bytes)
        case .rules: try Self.parseRuleFile(bytes)
        case .config: try Self.parseModelConfig(bytes)
        case .plugin: Self.parsePluginMessages(bytes)
        }
    }

    private static func parseSafeTensors(_ bytes: [UInt8]) throws {
        let file = try SafeTensorsFile(url: URL(fileURLWithPath: "fuzz.safetensors"), data: Data(bytes))
        for name in file.tensorNames {
            _ = try? file.tensor(name)
        }
    }

    private static func parseJSON(_ bytes: [UInt8]) throws {
        let value = try JSONParser.parse(bytes, source: "fuzz.json")
        for style in [JSONStyle.compact, .pretty(indent: 2, inlineArrayWidth: 72)] {
            let text = value.text(style)
            let again = try JSONParser.parse(text, source: "fuzz.json (written again)")
            precondition(again == value, "the JSON layer does not read back what it wrote: \(text)")
        }
    }

    /// The data file goes through the loader's own file reading, so it is written to a
    /// temporary file first: in memory (/dev/shm) where there is one, as a disk write per input
    /// would make fuzzing a hundred times slower.
    private static func parseJSONLines(_ bytes: [UInt8]) throws {
        let url = scratchDirectory.appendingPathComponent("dpft-fuzz-\(UUID().uuidString).jsonl")
        try Data(bytes).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let loader = ExampleLoader(format: .auto, onMalformed: .skip, encoder: nil, maxLength: 16)
        _ = try loader.load(path: url.path)
    }

    private static let scratchDirectory: URL = {
        var isDirectory: ObjCBool = false
        let memory = "/dev/shm"
        guard FileManager.default.fileExists(atPath: memory, isDirectory: &isDirectory), isDirectory.boolValue,
              FileManager.default.isWritableFile(atPath: memory) else {
            return FileManager.default.temporaryDirectory
        }
        return URL(fileURLWithPath: memory)
    }()

    private static func parseRecipe(_ bytes: [UInt8]) throws {
        let parts = bytes.split(separator: 0, omittingEmptySubsequences: false)
        guard let text = String(data: Data(parts[0]), encoding: .utf8) else {
            throw RecipeError.notJSON(file: "fuzz.json", reason: "the file is not UTF-8 text")
        }
        let overrides = parts.dropFirst().map { String(decoding: $0, as: UTF8.self) }
        let recipe = try Recipe.parse(json: text, file: "fuzz.json", overrides: overrides)
        _ = recipe.hash
    }

    private static func parseRuleFile(_ bytes: [UInt8]) throws {
        let rules = try RuleFile(json: Data(bytes), source: "fuzz-rules.json")
        _ = try rules.groups(for: tinyModelParameters)
    }

    /// The tensors of `recipes/models/gpt2-tiny.json`, as grouping sees them.
    private static let tinyModelParameters: [ParameterInfo] = {
        let json = #"{"model_type": "gpt2", "vocab_size": 256, "n_positions": 128, "n_embd": 64, "n_layer": 2, "n_head": 4}"#
        do {
            return try ModelConfig(json: Data(json.utf8), source: "gpt2-tiny").parameterInfos()
        } catch {
            preconditionFailure("the built-in tiny GPT-2 config does not parse: \(error)")
        }
    }()

    private static func parseModelConfig(_ bytes: [UInt8]) throws {
        let config = try ModelConfig(json: Data(bytes), source: "config.json")
        try config.checkParametersFitInMemory(source: "config.json")
    }
}

// MARK: - Plugin wire format

extension FuzzTarget {
    /// Each message kind is tried on the bytes (as the NUL-terminated C string they would be);
    /// the ones that do not decode throw and are ignored.
    private static func parsePluginMessages(_ bytes: [UInt8]) {
        let text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        // The answer the test strategies give: the bytes themselves, as `partition` returns them.
        let answer = strdup(text)!
        defer { free(answer) }
        if let description = try? PluginWire.decode(PluginWire.StrategyDescription.self, from: text,
                                                    what: "strategy description") {
            var registry = GroupingRegistry.builtIn
            let strategy = pluginStrategy(name: description.name, summary: description.summary,
                                          options: description.options.map(\.spec), answer: answer)
            try? registry.register(strategy, origin: .plugin(path: "fuzz.so"))
        }
        if let request = try? PluginWire.decode(PluginWire.Request.self, from: text, what: "partition request") {
            _ = try? PluginWire.text(request)
        }
        _ = try? GroupingOptions(json: text)
        // No parameters: the request the host encodes is the same for every input, and only
        // the answer is under test.
        let answering = pluginStrategy(name: "fuzz", summary: "answers with the input", options: [], answer: answer)
        _ = try? answering.groups(for: [], options: GroupingOptions())
    }

    /// A host-side plugin strategy whose partition function answers a copy of `answer`.
    private static func pluginStrategy(name: String, summary: String, options: [GroupingOptionSpec],
                                       answer: UnsafeMutablePointer<CChar>) -> PluginStrategy {
        PluginStrategy(path: "fuzz.so", name: name, summary: summary, options: options, context: UnsafeMutableRawPointer(answer),
                       partition: { context, _ in strdup(context!.assumingMemoryBound(to: CChar.self)) },
                       release: { _, answer in free(answer) })
    }
}
