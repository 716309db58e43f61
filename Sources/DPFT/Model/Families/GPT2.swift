// GPT-2 (transformers' GPT2LMHeadModel): learned positions, LayerNorm, fused q|k|v, GELU MLP,
// every linear with a bias and stored by HF as a Conv1D (`[in, out]`).
// C = channels, V = vocabulary, P = positions, I = MLP inner width.

/// The GPT-2 family.
public enum GPT2: ModelFamily {
    public static let modelType = ModelType.gpt2
    public static let architecture = "GPT2LMHeadModel"

    /// GPT-2's `config.json` (transformers' GPT2Config keys and defaults).
    public struct Config: Codable, Sendable {
        public var vocabSize: Int                // V, default 50257
        public var nEmbd: Int                    // C, default 768
        public var nLayer: Int                   // default 12
        public var nHead: Int                    // default 12
        public var nPositions: Int               // P, default 1024
        /// I; HF's default (absent or null) is 4·C.
        public var nInner: Int?
        public var layerNormEpsilon: Double      // default 1e-5
        public var tieWordEmbeddings: Bool       // default true
        /// dpft implements GPT-2's tanh GELU only ("gelu_new", default, or "gelu_pytorch_tanh").
        public var activationFunction: String

        enum CodingKeys: String, CodingKey {
            case vocabSize = "vocab_size", nEmbd = "n_embd", nLayer = "n_layer", nHead = "n_head"
            case nPositions = "n_positions", nInner = "n_inner", layerNormEpsilon = "layer_norm_epsilon"
            case tieWordEmbeddings = "tie_word_embeddings", activationFunction = "activation_function"
        }

        public init(from decoder: Decoder) throws {
            let keys = try decoder.container(keyedBy: CodingKeys.self)
            vocabSize = try keys.positive(.vocabSize, default: 50257)
            nEmbd = try keys.positive(.nEmbd, default: 768)
            nLayer = try keys.positive(.nLayer, default: 12)
            nHead = try keys.positive(.nHead, default: 12)
            nPositions = try keys.positive(.nPositions, default: 1024)
            nInner = try keys.optionalPositive(.nInner)
            layerNormEpsilon = try keys.positiveReal(.layerNormEpsilon, default: 1e-5)
            tieWordEmbeddings = try keys.value(Bool.self, .tieWordEmbeddings) ?? true
            activationFunction = try keys.value(String.self, .activationFunction) ?? "gelu_new"
            guard ["gelu_new", "gelu_pytorch_tanh"].contains(activationFunction) else {
                throw ConfigValueError(key: keys.path(.activationFunction), value: "\"\(activationFunction)\"",
                                       reason: "dpft implements GPT-2's tanh GELU (\"gelu_new\") only")
            }
        }
    }

    public static func modelConfig(_ config: Config) throws -> ModelConfig {
        guard config.nEmbd % config.nHead == 0 else {
            throw ConfigValueError(key: "n_head", value: "\(config.nHead)",
                                   reason: "n_embd (\(config.nEmbd)) must be divisible by it")
        }
        return ModelConfig(modelType: modelType, vocabularySize: config.vocabSize, hiddenSize: config.nEmbd,
                           layerCount: config.nLayer, headCount: config.nHead, keyValueHeadCount: config.nHead,
                           headDimension: config.nEmbd / config.nHead,
                           intermediateSize: config.nInner ?? 4 * config.nEmbd, maxPositions: config.nPositions,
                           normEpsilon: config.layerNormEpsilon, tiedEmbeddings: config.tieWordEmbeddings)
    }

    public static func declaration(_ config: ModelConfig) -> ModelDeclaration {
        let C = config.hiddenSize, V = config.vocabularySize, I = config.intermediateSize
        func conv1D(_ name: String, _ role: ParameterRole, _ shape: [Int], block: Int) -> ModuleDeclaration {
            ModuleDeclaration(name, .linear, role: role, shape: shape, hasBias: true, block: block, storedTransposedByHF: true)
        }
        func layerNorm(_ name: String, block: Int?) -> ModuleDeclaration {
            ModuleDeclaration(name, .layerNorm, role: .norm, shape: [C], hasBias: true, block: block)
        }
        let blocks = (0..<config.layerCount).map { l in
            let p = "transformer.h.\(l)."
            return BlockDeclaration(
                attentionNorm: layerNorm(p + "ln_1", block: l),
                queryKeyValue: [conv1D(p + "attn.c_attn", .attention, [3 * C, C], block: l)],
                attentionOutput: conv1D(p + "attn.c_proj", .attention, [C, C], block: l),
                feedForwardNorm: layerNorm(p + "ln_2", block: l),
                feedForward: .gelu(fc: conv1D(p + "mlp.c_fc", .mlp, [I, C], block: l),
                                   projection: conv1D(p + "mlp.c_proj", .mlp, [C, I], block: l)))
        }
        return ModelDeclaration(
            tokenEmbedding: ModuleDeclaration("transformer.wte", .tokenEmbedding, role: .embedding, shape: [V, C]),
            positions: .learned(ModuleDeclaration("transformer.wpe", .positionEmbedding, role: .embedding,
                                                  shape: [config.maxPositions, C])),
            blocks: blocks, finalNorm: layerNorm("transformer.ln_f", block: nil),
            head: config.tiedEmbeddings ? nil : ModuleDeclaration("lm_head", .linear, role: .head, shape: [V, C]))
    }

    /// Checkpoints saved from `GPT2Model` lack the `transformer.` prefix.
    public static func canonicalName(_ storedName: String) -> String {
        storedName.hasPrefix("transformer.") || storedName == "lm_head.weight" ? storedName : "transformer." + storedName
    }
}

extension ModelType {
    /// transformers' `gpt2`.
    public static let gpt2 = ModelType(rawValue: "gpt2")
}
