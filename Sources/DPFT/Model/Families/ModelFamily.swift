// How a model family is declared (DESIGN.md §2): its config keys and its modules, once.
// Parameter specs, grouping roles, LoRA targets, HF import/export names and the transformer's
// wiring are all read off the declaration.
//
// C = channels, V = vocabulary, P = positions, I = MLP inner width, E = experts,
// H·D = query width, KV·D = key/value width.

/// The `model_type` of a Hugging Face `config.json`; each registered family has one.
public struct ModelType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    /// Every registered family's type, in registration order.
    public static var allCases: [ModelType] { ModelFamilies.all.map { $0.modelType } }
}

/// What computation a module performs; with `hasBias` it fixes the module's tensors.
public enum ModuleKind: String, Sendable, Codable {
    /// Token embedding `[V, C]`.
    case tokenEmbedding
    /// Learned position embedding `[P, C]`.
    case positionEmbedding
    /// `y = x Wᵀ (+ b)`, weight `[out, in]`.
    case linear
    /// LayerNorm: weight and bias `[C]`.
    case layerNorm
    /// RMSNorm: weight `[C]`.
    case rmsNorm
    /// A mixture-of-experts router: a bias-free linear `[E, C]` whose logits pick experts.
    case router
}

/// One module of a model as its family declares it: HF name, role, kind, weight shape, bias.
public struct ModuleDeclaration: Sendable, Equatable {
    /// HF module name, e.g. `model.layers.0.self_attn.q_proj` (tensors add `.weight`, `.bias`).
    public var name: String
    public var kind: ModuleKind
    /// Its place in the architecture, as grouping strategies see it.
    public var role: ParameterRole
    /// Weight shape as dpft stores it (linear weights `[out, in]` in every family).
    public var shape: [Int]
    public var hasBias: Bool
    /// Transformer block index; nil for embeddings, the final norm and the head.
    public var block: Int?
    /// Expert index of a mixture-of-experts expert's linear.
    public var expert: Int?
    /// True for GPT-2's Conv1D weights, which HF stores transposed (`[in, out]`).
    public var storedTransposedByHF: Bool

    /// A module named `name` (its tensors are `name.weight` and, with `hasBias`, `name.bias`).
    public init(_ name: String, _ kind: ModuleKind, role: ParameterRole, shape: [Int], hasBias: Bool = false,
                block: Int? = nil, expert: Int? = nil, storedTransposedByHF: Bool = false) {
        self.name = name
        self.kind = kind
        self.role = role
        self.shape = shape
        self.hasBias = hasBias
        self.block = block
        self.expert = expert
        self.storedTransposedByHF = storedTransposedByHF
    }

    /// HF name of the weight, `<name>.weight`.
    public var weightName: String { name + ".weight" }
    /// HF name of the bias, `<name>.bias`, when the module has one.
    public var biasName: String? { hasBias ? name + ".bias" : nil }
    /// Output features of a linear (rows of its weight).
    public var outFeatures: Int { shape[0] }

    /// The module's tensors in HF state-dict order: weight, then bias.
    public var parameterSpecs: [ParameterSpec] {
        let (weightKind, biasKind): (ParameterKind, ParameterKind) = switch kind {
        case .tokenEmbedding: (.embedding, .embedding)
        case .positionEmbedding: (.positionEmbedding, .positionEmbedding)
        case .linear: (.linearWeight, .linearBias)
        case .layerNorm, .rmsNorm: (.normWeight, .normBias)
        case .router: (.router, .router)
        }
        let weight = ParameterSpec(weightName, shape, weightKind, module: self)
        guard let biasName else { return [weight] }
        return [weight, ParameterSpec(biasName, [shape[0]], biasKind, module: self, isBias: true)]
    }
}

/// A block's feed-forward part.
public enum FeedForwardDeclaration: Sendable, Equatable {
    /// GPT-2: `projection(gelu(fc x))`.
    case gelu(fc: ModuleDeclaration, projection: ModuleDeclaration)
    /// Llama: `down(silu(gate x) ⊙ up x)`; HF order gate, up, down.
    case swiglu(gate: ModuleDeclaration, up: ModuleDeclaration, down: ModuleDeclaration)
    /// Mixtral: a top-k router over SwiGLU experts.
    case experts(router: ModuleDeclaration, experts: [ExpertDeclaration])

    /// The modules in HF state-dict order.
    public var modules: [ModuleDeclaration] {
        switch self {
        case .gelu(let fc, let projection): return [fc, projection]
        case .swiglu(let gate, let up, let down): return [gate, up, down]
        case .experts(let router, let experts): return [router] + experts.flatMap(\.modules)
        }
    }
}

/// One SwiGLU expert of a mixture: `down(silu(gate x) ⊙ up x)`.
public struct ExpertDeclaration: Sendable, Equatable {
    public var gate: ModuleDeclaration
    public var up: ModuleDeclaration
    public var down: ModuleDeclaration
    /// HF state-dict order, Mixtral's w1 (gate), w2 (down), w3 (up).
    public var modules: [ModuleDeclaration] { [gate, down, up] }
}

/// One transformer block: pre-norm attention, then a pre-norm feed-forward, each residual.
public struct BlockDeclaration: Sendable, Equatable {
    public var attentionNorm: ModuleDeclaration
    /// The projections whose outputs lie side by side in the `[N, (H + 2·KV)·D]` q|k|v buffer,
    /// in column order: GPT-2's fused `c_attn`, or q, k, v.
    public var queryKeyValue: [ModuleDeclaration]
    public var attentionOutput: ModuleDeclaration
    public var feedForwardNorm: ModuleDeclaration
    public var feedForward: FeedForwardDeclaration

    /// Column offsets of `queryKeyValue`'s outputs in the q|k|v buffer.
    public var queryKeyValueColumns: [Int] {
        queryKeyValue.reduce(into: [0]) { $0.append($0.last! + $1.outFeatures) }.dropLast()
    }

    /// The modules in HF state-dict order.
    public var modules: [ModuleDeclaration] {
        [attentionNorm] + queryKeyValue + [attentionOutput, feedForwardNorm] + feedForward.modules
    }
}

/// How positions enter the model.
public enum PositionEncoding: Sendable, Equatable {
    /// A learned position embedding added to the token embedding (GPT-2): sequences are limited
    /// to its P rows.
    case learned(ModuleDeclaration)
    /// Rotary embeddings on queries and keys with base `theta`.
    case rotary(theta: Double)
}

/// A whole model as its family declares it for one config.
public struct ModelDeclaration: Sendable, Equatable {
    public var tokenEmbedding: ModuleDeclaration
    public var positions: PositionEncoding
    public var blocks: [BlockDeclaration]
    public var finalNorm: ModuleDeclaration
    /// The untied LM head; nil when the head is the token embedding.
    public var head: ModuleDeclaration?

    /// The learned position embedding, when positions are learned.
    public var positionEmbedding: ModuleDeclaration? {
        if case .learned(let module) = positions { return module }
        return nil
    }

    /// Every module in HF state-dict order.
    public var modules: [ModuleDeclaration] {
        [tokenEmbedding] + [positionEmbedding].compactMap { $0 } + blocks.flatMap(\.modules)
            + [finalNorm] + [head].compactMap { $0 }
    }

    /// Every parameter tensor in HF state-dict order (a tied head is not listed).
    public var parameterSpecs: [ParameterSpec] { modules.flatMap(\.parameterSpecs) }
}

/// A model family: its `config.json` (decoded with HF keys and HF defaults) and its modules.
///
/// Adding a family is writing one type that conforms and listing it in `ModelFamilies.all`.
public protocol ModelFamily {
    /// The family's `config.json`, with snake_case `CodingKeys` and HF defaults for absent keys.
    /// Encoding writes the resolved values that `export` puts back into config.json.
    associatedtype Config: Codable
    /// The `model_type` the family answers to.
    static var modelType: ModelType { get }
    /// transformers' class, written as `architectures` when the config lacks it.
    static var architecture: String { get }
    /// The sizes dpft reads from a decoded config; throws `ConfigValueError` on invalid values.
    static func modelConfig(_ config: Config) throws -> ModelConfig
    /// Every module of a model of this family.
    static func declaration(_ config: ModelConfig) -> ModelDeclaration
    /// The dpft (HF) name of a tensor as some checkpoint files store it (e.g. without a prefix).
    static func canonicalName(_ storedName: String) -> String
}

extension ModelFamily {
    /// Files store dpft's names unchanged unless a family says otherwise.
    public static func canonicalName(_ storedName: String) -> String { storedName }
}
