/// Where a parameter sits in the architecture, as grouping strategies see it (DESIGN.md §4).
public enum ParameterRole: String, Sendable, Codable, CaseIterable {
    /// Token and position embeddings (a tied embedding is also the head).
    case embedding
    /// Attention projections (q/k/v/o, c_attn, attn.c_proj) and their LoRA, as the family declares.
    case attention
    /// MLP projections (c_fc, mlp.c_proj, gate/up/down) and their LoRA.
    case mlp
    /// LayerNorm / RMSNorm weights and biases (in blocks and the final norm).
    case norm
    /// The untied LM head.
    case head
    /// A mixture-of-experts router.
    case router
    /// A mixture-of-experts expert's weights (see `ParameterInfo.expert`).
    case expert
}

/// A trainable tensor as grouping strategies see it: name, size and place in the model.
public struct ParameterInfo: Sendable, Codable, Equatable {
    /// HF / PEFT name, e.g. `model.layers.0.self_attn.q_proj.lora_A.weight`.
    public var name: String
    public var shape: [Int]
    public var kind: ParameterKind
    public var role: ParameterRole
    /// Transformer block index; nil for embeddings, the final norm and the head.
    public var block: Int?
    /// Expert index for MoE expert weights.
    public var expert: Int?
    /// The layer/module the tensor belongs to: a linear's weight and bias, a norm's weight and
    /// bias, and an adapted module's LoRA A and B share it (e.g. `model.layers.0.self_attn.q_proj`).
    public var module: String
    /// Whether this tensor is also the LM head (tied embeddings).
    public var isTiedHead: Bool

    /// Number of scalars.
    public var count: Int { shape.reduce(1, *) }
}

extension ModelConfig {
    /// Grouping descriptions of every model tensor followed by every adapter tensor, in
    /// forward order (the backward pass visits them in reverse).
    public func parameterInfos(adapters: [AdapterSpec] = []) -> [ParameterInfo] {
        let embeddingName = embeddingName
        var infos: [ParameterInfo] = []
        for spec in parameterSpecs {
            let info = ParameterInfo(name: spec.name, shape: spec.shape, kind: spec.kind, role: spec.role,
                                     block: spec.block, expert: spec.expert, module: spec.module,
                                     isTiedHead: tiedEmbeddings && spec.name == embeddingName)
            infos.append(info)
            // an adapted module's LoRA A and B follow its weight, sharing its place
            for adapter in adapters where adapter.weightName == spec.name {
                for (name, kind, shape) in [(adapter.loraAName, ParameterKind.loraA, [0, adapter.inFeatures]),
                                            (adapter.loraBName, ParameterKind.loraB, [adapter.outFeatures, 0])] {
                    var adapterInfo = info
                    adapterInfo.name = name
                    adapterInfo.kind = kind
                    adapterInfo.shape = shape
                    adapterInfo.isTiedHead = false
                    infos.append(adapterInfo)
                }
            }
        }
        return infos
    }
}
