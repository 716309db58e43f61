// Llama (transformers' LlamaForCausalLM) and the Llama-shaped decoder that Mixtral and Qwen2
// share: rotary positions, RMSNorm, separate q, k, v projections (grouped-query), SwiGLU MLP.
// C = channels, V = vocabulary, I = MLP inner width, H = query heads, KV = key/value heads,
// D = head dimension.

/// The config keys of transformers' LlamaConfig that Llama, Mixtral and Qwen2 share, decoded with
/// the family's defaults. transformers ≥ 5 nests the rotary settings in `rope_parameters`; older
/// files have a top-level `rope_theta` (and `rope_scaling`, which must be null).
public struct LlamaShapedConfig: Encodable, Sendable {
    /// A family's HF defaults for absent keys.
    public struct Defaults: Sendable {
        public var vocabularySize, hiddenSize, layerCount, headCount: Int
        /// nil: as many as query heads.
        public var keyValueHeadCount: Int?
        public var intermediateSize, maxPositions: Int
        public var normEpsilon, ropeTheta: Double
    }

    /// `rope_parameters` (transformers ≥ 5): only the default (unscaled) rotary embedding.
    public struct RopeParameters: Sendable {
        public var ropeType: String
        public var ropeTheta: Double
        enum CodingKeys: String, CodingKey { case ropeType = "rope_type", ropeTheta = "rope_theta" }
    }

    public var vocabSize: Int                // V
    public var hiddenSize: Int               // C
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int        // H
    public var numKeyValueHeads: Int         // KV
    public var intermediateSize: Int         // I
    public var maxPositionEmbeddings: Int
    public var rmsNormEps: Double
    public var tieWordEmbeddings: Bool       // default false
    /// dpft implements the SiLU (SwiGLU) MLP only.
    public var hiddenAct: String
    /// D; HF's default is C / H.
    public var headDim: Int
    /// Top-level `rope_theta`; nil when `rope_parameters` holds it.
    public var ropeTheta: Double?
    public var ropeParameters: RopeParameters?

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size", numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads", numKeyValueHeads = "num_key_value_heads"
        case intermediateSize = "intermediate_size", maxPositionEmbeddings = "max_position_embeddings"
        case rmsNormEps = "rms_norm_eps", tieWordEmbeddings = "tie_word_embeddings", hiddenAct = "hidden_act"
        case headDim = "head_dim", ropeTheta = "rope_theta"
    }

    /// Read but not written back (the file's own values stay in the exported config).
    enum RotaryKeys: String, CodingKey { case ropeParameters = "rope_parameters", ropeScaling = "rope_scaling" }

    /// The rotary base, wherever the file put it.
    public var theta: Double { ropeParameters?.ropeTheta ?? ropeTheta! }

    /// Decodes with `defaults` for absent keys and checks every value.
    public init(from decoder: Decoder, defaults: Defaults) throws {
        let keys = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try keys.positive(.vocabSize, default: defaults.vocabularySize)
        hiddenSize = try keys.positive(.hiddenSize, default: defaults.hiddenSize)
        numHiddenLayers = try keys.positive(.numHiddenLayers, default: defaults.layerCount)
        numAttentionHeads = try keys.positive(.numAttentionHeads, default: defaults.headCount)
        numKeyValueHeads = try keys.positive(.numKeyValueHeads, default: defaults.keyValueHeadCount ?? numAttentionHeads)
        intermediateSize = try keys.positive(.intermediateSize, default: defaults.intermediateSize)
        maxPositionEmbeddings = try keys.positive(.maxPositionEmbeddings, default: defaults.maxPositions)
        rmsNormEps = try keys.positiveReal(.rmsNormEps, default: defaults.normEpsilon)
        tieWordEmbeddings = try keys.value(Bool.self, .tieWordEmbeddings) ?? false
        hiddenAct = try keys.value(String.self, .hiddenAct) ?? "silu"
        guard hiddenAct == "silu" else {
            throw ConfigValueError(key: keys.path(.hiddenAct), value: "\"\(hiddenAct)\"",
                                   reason: "dpft implements the SiLU (SwiGLU) MLP only")
        }
        let rotary = try decoder.container(keyedBy: RotaryKeys.self)
        ropeParameters = try rotary.value(RopeParameters.self, .ropeParameters, defaults: defaults)
        ropeTheta = ropeParameters == nil ? try keys.positiveReal(.ropeTheta, default: defaults.ropeTheta)
                                          : try keys.value(Double.self, .ropeTheta)
        if let scaling = try rotary.value(JSONValue.self, .ropeScaling) {
            throw ConfigValueError(key: rotary.path(.ropeScaling), value: scaling.excerpt,
                                   reason: "rotary scaling is not supported; use null")
        }
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw ConfigValueError(key: keys.path(.numKeyValueHeads), value: "\(numKeyValueHeads)",
                                   reason: "num_attention_heads (\(numAttentionHeads)) must be a multiple of it")
        }
        let explicitHeadDimension = try keys.optionalPositive(.headDim)
        if explicitHeadDimension == nil && hiddenSize % numAttentionHeads != 0 {
            throw ConfigValueError(key: keys.path(.numAttentionHeads), value: "\(numAttentionHeads)",
                                   reason: "hidden_size (\(hiddenSize)) must be divisible by it (or give head_dim)")
        }
        headDim = explicitHeadDimension ?? hiddenSize / numAttentionHeads
        guard headDim % 2 == 0 else {
            throw ConfigValueError(key: keys.path(.headDim), value: "\(headDim)",
                                   reason: "rotary embeddings need an even head dimension")
        }
    }

    /// The sizes of a dense or mixture-of-experts model of `type`.
    func modelConfig(_ type: ModelType, expertCount: Int = 0, expertsPerToken: Int = 0) -> ModelConfig {
        ModelConfig(modelType: type, vocabularySize: vocabSize, hiddenSize: hiddenSize, layerCount: numHiddenLayers,
                    headCount: numAttentionHeads, keyValueHeadCount: numKeyValueHeads, headDimension: headDim,
                    intermediateSize: intermediateSize, maxPositions: maxPositionEmbeddings, normEpsilon: rmsNormEps,
                    ropeTheta: theta, tiedEmbeddings: tieWordEmbeddings, expertCount: expertCount,
                    expertsPerToken: expertsPerToken)
    }
}

extension LlamaShapedConfig.RopeParameters {
    init(from decoder: Decoder, defaults: LlamaShapedConfig.Defaults) throws {
        let keys = try decoder.container(keyedBy: CodingKeys.self)
        ropeType = try keys.value(String.self, .ropeType) ?? "default"
        guard ropeType == "default" else {
            throw ConfigValueError(key: keys.path(.ropeType), value: "\"\(ropeType)\"",
                                   reason: "only the default (unscaled) rotary embedding is supported")
        }
        ropeTheta = try keys.positiveReal(.ropeTheta, default: defaults.ropeTheta)
    }
}

extension KeyedDecodingContainer {
    /// A nested `rope_parameters` object decoded with the family's defaults; nil when absent or null.
    func value(_ type: LlamaShapedConfig.RopeParameters.Type, _ key: Key,
               defaults: LlamaShapedConfig.Defaults) throws -> LlamaShapedConfig.RopeParameters? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        let nested: Decoder
        do {
            nested = try superDecoder(forKey: key)
            _ = try nested.container(keyedBy: LlamaShapedConfig.RopeParameters.CodingKeys.self)
        } catch {
            let found = (try? decodeIfPresent(JSONValue.self, forKey: key))??.excerpt ?? "…"
            throw ConfigValueError(key: path(key), value: found, reason: "expected an object")
        }
        return try LlamaShapedConfig.RopeParameters(from: nested, defaults: defaults)
    }
}

/// The Llama-shaped decoder's modules (HF names `model.*`, `lm_head`).
enum LlamaShapedModules {
    /// Every module; `queryKeyValueBias` adds biases to q/k/v (Qwen2), `feedForward` builds
    /// block `l`'s feed-forward under the prefix `model.layers.<l>.`.
    static func declaration(_ config: ModelConfig, queryKeyValueBias: Bool = false,
                            feedForward: (_ prefix: String, _ block: Int) -> FeedForwardDeclaration)
        -> ModelDeclaration {
        let C = config.hiddenSize, V = config.vocabularySize, D = config.headDimension
        let queryWidth = config.headCount * D, keyValueWidth = config.keyValueHeadCount * D
        let blocks = (0..<config.layerCount).map { l in
            let p = "model.layers.\(l)."
            func attention(_ name: String, _ shape: [Int], bias: Bool) -> ModuleDeclaration {
                ModuleDeclaration(p + "self_attn." + name, .linear, role: .attention, shape: shape, hasBias: bias, block: l)
            }
            return BlockDeclaration(
                attentionNorm: ModuleDeclaration(p + "input_layernorm", .rmsNorm, role: .norm, shape: [C], block: l),
                queryKeyValue: [attention("q_proj", [queryWidth, C], bias: queryKeyValueBias),
                                attention("k_proj", [keyValueWidth, C], bias: queryKeyValueBias),
                                attention("v_proj", [keyValueWidth, C], bias: queryKeyValueBias)],
                attentionOutput: attention("o_proj", [C, queryWidth], bias: false),
                feedForwardNorm: ModuleDeclaration(p + "post_attention_layernorm", .rmsNorm, role: .norm, shape: [C], block: l),
                feedForward: feedForward(p, l))
        }
        return ModelDeclaration(
            tokenEmbedding: ModuleDeclaration("model.embed_tokens", .tokenEmbedding, role: .embedding, shape: [V, C]),
            positions: .rotary(theta: config.ropeTheta), blocks: blocks,
            finalNorm: ModuleDeclaration("model.norm", .rmsNorm, role: .norm, shape: [C]),
            head: config.tiedEmbeddings ? nil : ModuleDeclaration("lm_head", .linear, role: .head, shape: [V, C]))
    }

    /// The dense SwiGLU MLP of Llama and Qwen2: `mlp.gate_proj`, `mlp.up_proj`, `mlp.down_proj`.
    static func denseMLP(_ config: ModelConfig) -> (_ prefix: String, _ block: Int) -> FeedForwardDeclaration {
        let C = config.hiddenSize, I = config.intermediateSize
        return { p, l in
            func mlp(_ name: String, _ shape: [Int]) -> ModuleDeclaration {
                ModuleDeclaration(p + "mlp." + name, .linear, role: .mlp, shape: shape, block: l)
            }
            return .swiglu(gate: mlp("gate_proj", [I, C]), up: mlp("up_proj", [I, C]), down: mlp("down_proj", [C, I]))
        }
    }
}

/// The Llama family (transformers' LlamaForCausalLM).
public enum Llama: ModelFamily {
    public static let modelType = ModelType.llama
    public static let architecture = "LlamaForCausalLM"
    /// transformers' LlamaConfig defaults for absent keys.
    public static let defaults = LlamaShapedConfig.Defaults(
        vocabularySize: 32000, hiddenSize: 4096, layerCount: 32, headCount: 32, keyValueHeadCount: nil,
        intermediateSize: 11008, maxPositions: 2048, normEpsilon: 1e-6, ropeTheta: 10000)

    /// Llama's `config.json`: the shared Llama-shaped keys with LlamaConfig's defaults.
    public struct Config: Codable, Sendable {
        public var base: LlamaShapedConfig
        public init(from decoder: Decoder) throws { base = try LlamaShapedConfig(from: decoder, defaults: defaults) }
        public func encode(to encoder: Encoder) throws { try base.encode(to: encoder) }
    }

    public static func modelConfig(_ config: Config) throws -> ModelConfig { config.base.modelConfig(modelType) }

    public static func declaration(_ config: ModelConfig) -> ModelDeclaration {
        LlamaShapedModules.declaration(config, feedForward: LlamaShapedModules.denseMLP(config))
    }
}

extension ModelType {
    /// transformers' `llama`.
    public static let llama = ModelType(rawValue: "llama")
}
