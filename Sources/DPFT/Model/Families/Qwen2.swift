// Qwen2 (transformers' Qwen2ForCausalLM): the Llama-shaped decoder with biases on the q, k and v
// projections (not on o_proj or the MLP). Sliding-window attention is not implemented: a config
// must leave `use_sliding_window` false (every layer then attends to the whole sequence).

/// The Qwen2 family.
public enum Qwen2: ModelFamily {
    public static let modelType = ModelType.qwen2
    public static let architecture = "Qwen2ForCausalLM"
    /// transformers' Qwen2Config defaults for absent keys.
    public static let defaults = LlamaShapedConfig.Defaults(
        vocabularySize: 151936, hiddenSize: 4096, layerCount: 32, headCount: 32, keyValueHeadCount: 32,
        intermediateSize: 22016, maxPositions: 32768, normEpsilon: 1e-6, ropeTheta: 10000)

    /// Qwen2's `config.json`: the Llama-shaped keys with Qwen2Config's defaults.
    public struct Config: Codable, Sendable {
        public var base: LlamaShapedConfig
        /// Must be false (the default): dpft has no sliding-window attention.
        public var useSlidingWindow: Bool

        enum CodingKeys: String, CodingKey { case useSlidingWindow = "use_sliding_window" }

        public init(from decoder: Decoder) throws {
            base = try LlamaShapedConfig(from: decoder, defaults: defaults)
            let keys = try decoder.container(keyedBy: CodingKeys.self)
            useSlidingWindow = try keys.value(Bool.self, .useSlidingWindow) ?? false
            guard !useSlidingWindow else {
                throw ConfigValueError(key: keys.path(.useSlidingWindow), value: "true",
                                       reason: "dpft implements full attention only; set it to false")
            }
        }

        public func encode(to encoder: Encoder) throws { try base.encode(to: encoder) }
    }

    public static func modelConfig(_ config: Config) throws -> ModelConfig { config.base.modelConfig(modelType) }

    public static func declaration(_ config: ModelConfig) -> ModelDeclaration {
        LlamaShapedModules.declaration(config, queryKeyValueBias: true, feedForward: LlamaShapedModules.denseMLP(config))
    }
}

extension ModelType {
    /// transformers' `qwen2`.
    public static let qwen2 = ModelType(rawValue: "qwen2")
}
