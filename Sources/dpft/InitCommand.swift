import ArgumentParser
import DPFT
import Foundation

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a randomly initialised checkpoint from a Hugging Face config.json.",
        discussion: """
            Supports model_type \(ModelType.allCases.map(\.rawValue).joined(separator: ", ")). \
            Weights and embeddings are drawn from \
            normal(0, 0.02), norm weights are 1 and biases 0; the same --seed gives the same file.
            """)

    @Option(help: "HF-style config.json describing the architecture.")
    var config: String

    @Option(help: "Where to write the checkpoint (HDF5).")
    var output: String

    @Option(help: "Seed for the random initialisation.")
    var seed: UInt64 = 0

    @Option(help: "Tokenizer to store in the checkpoint, a SentencePiece .model or tokenizer.json (optional).")
    var tokenizer: String?

    func run() throws {
        let modelConfig = try ModelConfig(contentsOf: URL(fileURLWithPath: config))
        try modelConfig.checkParametersFitInMemory(source: config)
        var checkpoint = Checkpoint.initialized(config: modelConfig, seed: seed)
        if let tokenizer {
            let model = try Tokenizer(contentsOf: URL(fileURLWithPath: tokenizer))
            guard model.vocabularySize <= modelConfig.vocabularySize else {
                throw ValidationError("the tokenizer \(tokenizer) has \(model.vocabularySize) pieces but vocab_size is \(modelConfig.vocabularySize)")
            }
            checkpoint.store(model)
        }
        try checkpoint.write(to: URL(fileURLWithPath: output))
        let parameterCount = modelConfig.parameterSpecs.reduce(0) { $0 + $1.shape.reduce(1, *) }
        print("wrote \(output): \(modelConfig.modelType.rawValue), \(modelConfig.layerCount) layers, "
              + "d=\(modelConfig.hiddenSize), vocab \(modelConfig.vocabularySize), "
              + "\(parameterCount) parameters (seed \(seed))")
    }
}
