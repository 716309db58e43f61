// The named tensors of each model family, in HF names (DESIGN.md §2, §6).
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

    init(_ name: String, _ shape: [Int], _ kind: ParameterKind, block: Int? = nil,
         storedTransposedByHF: Bool = false) {
        self.name = name
        self.shape = shape
        self.kind = kind
        self.block = block
        self.storedTransposedByHF = storedTransposedByHF
    }

    /// The shape HF stores (differs from `shape` only for GPT-2 Conv1D weights).
    public var hfShape: [Int] { storedTransposedByHF ? shape.reversed() : shape }
}

extension ModelConfig {
    /// Every parameter tensor of the model, in HF's state-dict order. A tied LM head is not
    /// listed: it is the embedding, named once by the embedding's name.
    public var parameterSpecs: [ParameterSpec] {
        let C = hiddenSize, V = vocabularySize, I = intermediateSize
        var specs: [ParameterSpec] = []
        switch modelType {
        case .gpt2:
            specs.append(ParameterSpec("transformer.wte.weight", [V, C], .embedding))
            specs.append(ParameterSpec("transformer.wpe.weight", [maxPositions, C], .positionEmbedding))
            for l in 0..<layerCount {
                let p = "transformer.h.\(l)."
                specs += [
                    ParameterSpec(p + "ln_1.weight", [C], .normWeight, block: l),
                    ParameterSpec(p + "ln_1.bias", [C], .normBias, block: l),
                    ParameterSpec(p + "attn.c_attn.weight", [3 * C, C], .linearWeight, block: l, storedTransposedByHF: true),
                    ParameterSpec(p + "attn.c_attn.bias", [3 * C], .linearBias, block: l),
                    ParameterSpec(p + "attn.c_proj.weight", [C, C], .linearWeight, block: l, storedTransposedByHF: true),
                    ParameterSpec(p + "attn.c_proj.bias", [C], .linearBias, block: l),
                    ParameterSpec(p + "ln_2.weight", [C], .normWeight, block: l),
                    ParameterSpec(p + "ln_2.bias", [C], .normBias, block: l),
                    ParameterSpec(p + "mlp.c_fc.weight", [I, C], .linearWeight, block: l, storedTransposedByHF: true),
                    ParameterSpec(p + "mlp.c_fc.bias", [I], .linearBias, block: l),
                    ParameterSpec(p + "mlp.c_proj.weight", [C, I], .linearWeight, block: l, storedTransposedByHF: true),
                    ParameterSpec(p + "mlp.c_proj.bias", [C], .linearBias, block: l),
                ]
            }
            specs.append(ParameterSpec("transformer.ln_f.weight", [C], .normWeight))
            specs.append(ParameterSpec("transformer.ln_f.bias", [C], .normBias))
        case .llama, .mixtral:
            let queryWidth = headCount * headDimension, keyValueWidth = keyValueHeadCount * headDimension
            specs.append(ParameterSpec("model.embed_tokens.weight", [V, C], .embedding))
            for l in 0..<layerCount {
                let p = "model.layers.\(l)."
                specs += [
                    ParameterSpec(p + "input_layernorm.weight", [C], .normWeight, block: l),
                    ParameterSpec(p + "self_attn.q_proj.weight", [queryWidth, C], .linearWeight, block: l),
                    ParameterSpec(p + "self_attn.k_proj.weight", [keyValueWidth, C], .linearWeight, block: l),
                    ParameterSpec(p + "self_attn.v_proj.weight", [keyValueWidth, C], .linearWeight, block: l),
                    ParameterSpec(p + "self_attn.o_proj.weight", [C, queryWidth], .linearWeight, block: l),
                    ParameterSpec(p + "post_attention_layernorm.weight", [C], .normWeight, block: l),
                ]
                if modelType == .mixtral {
                    let m = p + "block_sparse_moe."
                    specs.append(ParameterSpec(m + "gate.weight", [expertCount, C], .router, block: l))
                    for e in 0..<expertCount {
                        specs += [
                            ParameterSpec(m + "experts.\(e).w1.weight", [I, C], .linearWeight, block: l),
                            ParameterSpec(m + "experts.\(e).w2.weight", [C, I], .linearWeight, block: l),
                            ParameterSpec(m + "experts.\(e).w3.weight", [I, C], .linearWeight, block: l),
                        ]
                    }
                } else {
                    specs += [
                        ParameterSpec(p + "mlp.gate_proj.weight", [I, C], .linearWeight, block: l),
                        ParameterSpec(p + "mlp.up_proj.weight", [I, C], .linearWeight, block: l),
                        ParameterSpec(p + "mlp.down_proj.weight", [C, I], .linearWeight, block: l),
                    ]
                }
            }
            specs.append(ParameterSpec("model.norm.weight", [C], .normWeight))
        }
        if !tiedEmbeddings {
            specs.append(ParameterSpec("lm_head.weight", [V, C], .linearWeight))
        }
        return specs
    }

    /// The HF name of the token embedding (which a tied LM head shares).
    public var embeddingName: String {
        modelType == .gpt2 ? "transformer.wte.weight" : "model.embed_tokens.weight"
    }
}
