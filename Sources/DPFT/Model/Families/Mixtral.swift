// Mixtral (transformers' MixtralForCausalLM): the Llama-shaped decoder with a sparse mixture of
// SwiGLU experts instead of the MLP, in the per-expert checkpoint layout
// (`block_sparse_moe.gate`, `block_sparse_moe.experts.<e>.w1|w2|w3`).
// C = channels, I = expert inner width, E = experts.

/// The Mixtral family.
public enum Mixtral: ModelFamily {
    public static let modelType = ModelType.mixtral
    public static let architecture = "MixtralForCausalLM"
    /// transformers' MixtralConfig defaults for absent keys.
    public static let defaults = LlamaShapedConfig.Defaults(
        vocabularySize: 32000, hiddenSize: 4096, layerCount: 32, headCount: 32, keyValueHeadCount: 8,
        intermediateSize: 14336, maxPositions: 131072, normEpsilon: 1e-5, ropeTheta: 1e6)

    /// Mixtral's `config.json`: the Llama-shaped keys with MixtralConfig's defaults, and the experts.
    public struct Config: Codable, Sendable {
        public var base: LlamaShapedConfig
        public var numLocalExperts: Int          // E, default 8
        public var numExpertsPerTok: Int         // top-k, default 2

        enum CodingKeys: String, CodingKey {
            case numLocalExperts = "num_local_experts", numExpertsPerTok = "num_experts_per_tok"
        }

        public init(from decoder: Decoder) throws {
            base = try LlamaShapedConfig(from: decoder, defaults: defaults)
            let keys = try decoder.container(keyedBy: CodingKeys.self)
            numLocalExperts = try keys.positive(.numLocalExperts, default: 8)
            numExpertsPerTok = try keys.positive(.numExpertsPerTok, default: 2)
            guard numExpertsPerTok <= numLocalExperts else {
                throw ConfigValueError(key: keys.path(.numExpertsPerTok), value: "\(numExpertsPerTok)",
                                       reason: "it exceeds num_local_experts (\(numLocalExperts))")
            }
        }

        public func encode(to encoder: Encoder) throws {
            try base.encode(to: encoder)
            var keys = encoder.container(keyedBy: CodingKeys.self)
            try keys.encode(numLocalExperts, forKey: .numLocalExperts)
            try keys.encode(numExpertsPerTok, forKey: .numExpertsPerTok)
        }
    }

    public static func modelConfig(_ config: Config) throws -> ModelConfig {
        config.base.modelConfig(modelType, expertCount: config.numLocalExperts, expertsPerToken: config.numExpertsPerTok)
    }

    public static func declaration(_ config: ModelConfig) -> ModelDeclaration {
        let C = config.hiddenSize, I = config.intermediateSize
        return LlamaShapedModules.declaration(config) { p, l in
            let m = p + "block_sparse_moe."
            let experts = (0..<config.expertCount).map { e in
                func linear(_ name: String, _ shape: [Int]) -> ModuleDeclaration {
                    ModuleDeclaration(m + "experts.\(e)." + name, .linear, role: .expert, shape: shape, block: l, expert: e)
                }
                return ExpertDeclaration(gate: linear("w1", [I, C]), up: linear("w3", [I, C]), down: linear("w2", [C, I]))
            }
            return .experts(router: ModuleDeclaration(m + "gate", .router, role: .router, shape: [config.expertCount, C], block: l),
                            experts: experts)
        }
    }
}

extension ModelType {
    /// transformers' `mixtral`.
    public static let mixtral = ModelType(rawValue: "mixtral")
}
