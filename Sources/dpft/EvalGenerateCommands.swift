import ArgumentParser
import DPFT
import Foundation

/// Loads the tokenizer given on the command line, else the checkpoint's, else nil.
func loadTokenizer(path: String?, checkpoint: Checkpoint, checkpointPath: String) throws -> Tokenizer? {
    if let path { return try Tokenizer(contentsOf: URL(fileURLWithPath: path)) }
    return try checkpoint.storedTokenizer(path: checkpointPath)
}

/// How `dpft eval` and `dpft norms` read a data file: with a recipe, its templates, BOS/EOS
/// and data rules (`format`, `on_malformed`); without one, the plain encoder and the default
/// rules. Either way examples are cut to the model's positions and their ids checked against
/// its vocabulary (see `ExampleLoader`).
func exampleLoader(recipe: Recipe?, tokenizer: Tokenizer?, checkpoint: Checkpoint) throws -> ExampleLoader {
    let encoder: ExampleEncoder?
    if let recipe, let tokenizer {
        encoder = try recipe.data.exampleEncoder(tokenizer: tokenizer)
    } else {
        encoder = try ExampleEncoding.plainEncoder(tokenizer)
    }
    let positions = checkpoint.config.maxPositions, vocabulary = checkpoint.config.vocabularySize
    return recipe.map { ExampleLoader(recipe: $0.data, encoder: encoder, maxLength: positions, vocabularySize: vocabulary) }
        ?? ExampleLoader(encoder: encoder, maxLength: positions, vocabularySize: vocabulary)
}

/// Writes "note: …" to standard error.
func note(_ text: String) {
    FileHandle.standardError.write(Data("note: \(text)\n".utf8))
}

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Mean token cross-entropy and perplexity of a checkpoint on a data file.",
        discussion: """
            Reads JSON Lines in any of the four shapes: {"text"} (no BOS/EOS added), \
            {"input_ids", "labels"?} (label −100 = not scored), Alpaca {"instruction", "input"?, \
            "output"} and chat {"messages"} (both scored on the response tokens only, Alpaca and \
            chat templates). The logits at position t are scored against token t + 1; the loss \
            is the mean over every scored token of the file. With --recipe, the recipe's eval \
            split, templates and BOS/EOS settings are used (and its model when no checkpoint is given).
            """)

    @Argument(help: "The checkpoint to evaluate (default with --recipe: the recipe's model).")
    var checkpoint: String?

    @Option(help: "JSON Lines data file (default with --recipe: its data.eval).")
    var data: String?

    @Option(help: "Take data file, templates and model from this recipe.")
    var recipe: String?

    @Option(help: "Tokenizer for text, a .model or tokenizer.json (default: the checkpoint's own).")
    var tokenizer: String?

    @Option(help: "Examples per forward pass.")
    var batchSize: Int = 8

    @Flag(help: "Print {\"loss\", \"perplexity\", \"tokens\", \"examples\"} as JSON.")
    var json = false

    func run() throws {
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        let loadedRecipe = try recipe.map { try RecipeLocation.find($0, assets: Assets.located()).load() }
        guard let checkpointPath = checkpoint ?? loadedRecipe?.model.checkpoint else {
            throw ValidationError("give a checkpoint, or --recipe")
        }
        guard let dataPath = data ?? loadedRecipe?.data.eval else {
            throw ValidationError("give --data, or a --recipe with data.eval")
        }
        let model = try Checkpoint.read(from: URL(fileURLWithPath: checkpointPath))
        let tokenizerModel = try loadTokenizer(path: tokenizer ?? loadedRecipe?.model.tokenizer, checkpoint: model,
                                               checkpointPath: checkpointPath)
        let data = try exampleLoader(recipe: loadedRecipe, tokenizer: tokenizerModel, checkpoint: model).load(path: dataPath)
        let result = try Evaluation.evaluate(model, examples: data.examples, batchSize: batchSize)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(result), as: UTF8.self))
        } else {
            print(String(format: "loss %.6f  perplexity %.4f  (%d tokens scored in %d examples)",
                         result.loss, result.perplexity, result.tokens, result.examples))
        }
        if data.hasDrops { note(data.summary(path: dataPath)) }
    }
}

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Continue a prompt with a checkpoint (KV-cached decoding).",
        discussion: "Temperature 0 is greedy decoding. Stops at the tokenizer's EOS or after --max-new-tokens.")

    @Argument(help: "The checkpoint to generate with.")
    var checkpoint: String

    @Option(help: "The prompt text.")
    var prompt: String

    @Option(help: "Tokens to generate at most.")
    var maxNewTokens: Int = 32

    @Option(help: "Sampling temperature; 0 = greedy.")
    var temperature: Float = 0

    @Option(help: "Nucleus sampling threshold in (0, 1].")
    var topP: Float = 1

    @Option(help: "Seed for sampling.")
    var seed: UInt64 = 0

    @Option(help: "Tokenizer, a .model or tokenizer.json (default: the checkpoint's own).")
    var tokenizer: String?

    @Flag(help: "Decode without the KV cache (re-runs the whole prefix each token; for checking).")
    var noCache = false

    func run() throws {
        guard maxNewTokens >= 0 else { throw ValidationError("--max-new-tokens must be ≥ 0") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be ≥ 0") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        let model = try Checkpoint.read(from: URL(fileURLWithPath: checkpoint))
        guard let tokenizerModel = try loadTokenizer(path: tokenizer, checkpoint: model, checkpointPath: checkpoint) else {
            throw ValidationError("\(checkpoint) has no tokenizer; pass --tokenizer TOK.model")
        }
        let promptIds = try tokenizerModel.encode(prompt)
        let length = min(promptIds.count + maxNewTokens, model.config.maxPositions)
        let transformer = try Transformer(checkpoint: model, trainable: TrainableSelection.none,
                                          maxBatchSize: 1, maxSequenceLength: max(length, 1))
        let generator = try Generator(model: transformer, maxLength: max(length, 1))
        let options = GenerationOptions(temperature: temperature, topP: topP, seed: seed, maxNewTokens: maxNewTokens,
                                      stopToken: tokenizerModel.eosId >= 0 ? tokenizerModel.eosId : nil)
        let tokens = try generator.generate(prompt: promptIds, options: options, useCache: !noCache)
        let text = try tokenizerModel.decode(tokens.filter { $0 != tokenizerModel.eosId })
        print(prompt + (prompt.hasSuffix(" ") || text.hasPrefix(" ") ? "" : " ") + text)
    }
}
