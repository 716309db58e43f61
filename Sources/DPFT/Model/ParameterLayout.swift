// The named tensors of a model, in HF names (DESIGN.md §2, §6), read off its family's
// declaration (Model/Families/).
// C = channels, V = vocab, P = positions, I = MLP inner, H·D = query width, KV·D = key/value width.

/// What role a parameter tensor plays; grouping strategies and initialisation read it.
public enum ParameterKind: String, Sendable, Codable {
    case embedding, positionEmbedding, linearWeight, linearBias, normWeight, normBias, router, loraA, loraB
}

/// One parameter tensor of a model: its HF name, dpft shape and role.
public struct ParameterSpec: Sendable, Equatable {
    /// HF state-dict name, e.g. `model.layers.0.self_attn.q_proj.weight`.
    public var name: String
    /// Shape as dpft stores it. Linear weights are `[out, in]` in every family.
    public var shape: [Int]
    public var kind: ParameterKind
    /// Transformer block index, or nil for embeddings, final norm and head.
    public var block: Int?
    /// True for GPT-2 Conv1D weights, which HF stores transposed (`[in, out]`).
    public var storedTransposedByHF: Bool
    /// The module it belongs to, e.g. `model.layers.0.self_attn.q_proj`.
    public var module: String
    /// Its place in the architecture, as grouping strategies see it.
    public var role: ParameterRole
    /// Expert index of a mixture-of-experts expert's weight.
    public var expert: Int?

    /// The weight (or, with `isBias`, the bias) of `module`.
    init(_ name: String, _ shape: [Int], _ kind: ParameterKind, module: ModuleDeclaration, isBias: Bool = false) {
        self.name = name
        self.shape = shape
        self.kind = kind
        self.block = module.block
        self.storedTransposedByHF = module.storedTransposedByHF && !isBias
        self.module = module.name
        self.role = module.role
        self.expert = module.expert
    }

    /// The shape HF stores (differs from `shape` only for GPT-2 Conv1D weights).
    public var hfShape: [Int] { storedTransposedByHF ? shape.reversed() : shape }
}

extension ModelConfig {
    /// Every parameter tensor of the model, in HF's state-dict order. A tied LM head is not
    /// listed: it is the embedding, named once by the embedding's name.
    public var parameterSpecs: [ParameterSpec] { declaration.parameterSpecs }

    /// The HF name of the token embedding (which a tied LM head shares).
    public var embeddingName: String { declaration.tokenEmbedding.weightName }
}
