// The transformer's wiring: each declared module (Model/Families/) bound to its tensors in the
// parameter and gradient stores, its book-keeping indices and its LoRA adapter.
// N = rows (max batch · max sequence), C = channels, I = MLP inner width, R = LoRA rank.

/// Binds a family's declared modules to one model's storage.
struct ModuleBinder {
    let parameters: ParameterStore
    let gradients: ParameterStore
    /// Index of each trainable tensor in the gradient store (what the book-keeper counts by).
    let tensorIndices: [String: Int]
    let adapters: [String: AdapterSpec]
    let lora: LoRAConfig?
    /// N: rows of the activation buffers.
    let rows: Int
    /// Allocates an activation buffer that lives as long as the model.
    let buffer: (Int) -> UnsafeMutablePointer<Float>

    init(parameters: ParameterStore, gradients: ParameterStore, adapters: [AdapterSpec], lora: LoRAConfig?,
         rows: Int, buffer: @escaping (Int) -> UnsafeMutablePointer<Float>) {
        self.parameters = parameters
        self.gradients = gradients
        tensorIndices = Dictionary(uniqueKeysWithValues: gradients.names.enumerated().map { ($1, $0) })
        self.adapters = Dictionary(uniqueKeysWithValues: adapters.map { ($0.module, $0) })
        self.lora = lora
        self.rows = rows
        self.buffer = buffer
    }

    func weight(_ name: String) -> UnsafeMutablePointer<Float> { parameters[name]!.pointer }
    func tensor(_ name: String) -> Int? { tensorIndices[name] }

    /// A linear (or router) writing its output at column `outColumn` of a wider buffer.
    func linear(_ module: ModuleDeclaration, outColumn: Int = 0) -> LinearModule {
        let bias = module.biasName
        var result = LinearModule(weight: weight(module.weightName), bias: bias.map(weight),
                                  inFeatures: module.shape[1], outFeatures: module.shape[0],
                                  weightTensor: tensor(module.weightName), biasTensor: bias.flatMap(tensor),
                                  outColumn: outColumn)
        if let adapter = adapters[module.name], let lora {
            result.lora = LinearModule.LoRAState(
                a: weight(adapter.loraAName), b: weight(adapter.loraBName),
                hidden: buffer(rows * lora.rank), rank: lora.rank, scale: lora.scale,
                aTensor: tensor(adapter.loraAName), bTensor: tensor(adapter.loraBName))
        }
        return result
    }

    /// The LM head: the tied embedding or `lm_head`; its output gradient (the logits buffer)
    /// lives until the end of backward.
    func head(_ declaration: ModelDeclaration) -> LinearModule {
        let name = (declaration.head ?? declaration.tokenEmbedding).weightName
        let shape = parameters[name]!.shape
        return LinearModule(weight: weight(name), bias: nil,
                            inFeatures: shape[1], outFeatures: shape[0], weightTensor: tensor(name),
                            outputGradientIsStable: true, isTiedHead: declaration.head == nil)
    }

    /// A LayerNorm (weight and bias) or RMSNorm (weight).
    func norm(_ module: ModuleDeclaration) -> NormParameters {
        let bias = module.biasName
        return NormParameters(weight: weight(module.weightName), bias: bias.map(weight),
                              weightTensor: tensor(module.weightName), biasTensor: bias.flatMap(tensor))
    }

    /// The q|k|v projections, each writing its columns of the `[N, (H + 2·KV)·D]` buffer.
    func queryKeyValue(_ block: BlockDeclaration) -> [LinearModule] {
        zip(block.queryKeyValue, block.queryKeyValueColumns).map { linear($0, outColumn: $1) }
    }

    /// The block's feed-forward part.
    func feedForward(_ declaration: FeedForwardDeclaration, expertsPerToken: Int) -> FeedForward {
        switch declaration {
        case .gelu(let fc, let projection):
            return .gelu(fc: linear(fc), projection: linear(projection))
        case .swiglu(let gate, let up, let down):
            return .swiglu(gate: linear(gate), up: linear(up), down: linear(down))
        case .experts(let router, let experts):
            let bound = experts.map { MixtureOfExperts.Expert(gate: linear($0.gate), down: linear($0.down), up: linear($0.up)) }
            return .experts(MixtureOfExperts(router: linear(router), experts: bound, expertsPerToken: expertsPerToken,
                                             loraRank: lora?.rank ?? 0, maxRows: rows, buffer: buffer))
        }
    }
}

extension ModuleBinder {
    /// A block's modules and its input buffer; `saved` holds its other activations (its own
    /// set, or the set every block shares when the model recomputes them).
    func block(_ declaration: BlockDeclaration, config: ModelConfig, saved: BlockActivations) -> Block {
        Block(norm1: norm(declaration.attentionNorm), qkv: queryKeyValue(declaration),
              attentionOutput: linear(declaration.attentionOutput), norm2: norm(declaration.feedForwardNorm),
              feedForward: feedForward(declaration.feedForward, expertsPerToken: config.expertsPerToken),
              input: buffer(rows * config.hiddenSize), saved: saved)
    }

    /// One set of a block's saved activations, sized for `rows` (the largest batch's B × T); the
    /// dense MLP buffers only when `dense` (a mixture of experts has its own). The norms'
    /// outputs, attention's output and the gated MLP's product come from `remade`, which every
    /// block shares: each is cheap to make again from what the block keeps
    /// (`RemadeActivations`).
    func blockActivations(config: ModelConfig, dense: Bool, remade: RemadeActivations) -> BlockActivations {
        let N = rows, C = config.hiddenSize, I = config.intermediateSize, H = config.headCount
        let W = (H + 2 * config.keyValueHeadCount) * config.headDimension
        return BlockActivations(
            norm1Out: remade.norm1Out, norm1Mean: buffer(N), norm1Rstd: buffer(N),
            qkvOut: buffer(N * W),
            attention: remade.attention, middle: buffer(N * C), norm2Out: remade.norm2Out,
            norm2Mean: buffer(N), norm2Rstd: buffer(N), mlpHidden: buffer(dense ? N * I : 0),
            mlpHidden2: buffer(dense ? N * I : 0), mlpActivation: remade.gatedProduct)
    }

    /// The buffers of the activations every block remakes in its backward pass.
    func remadeActivations(config: ModelConfig, gated: Bool) -> RemadeActivations {
        RemadeActivations(norm1Out: buffer(rows * config.hiddenSize),
                          attention: buffer(rows * config.headCount * config.headDimension),
                          norm2Out: buffer(rows * config.hiddenSize),
                          gatedProduct: buffer(gated ? rows * config.intermediateSize : 0))
    }
}

extension FeedForwardDeclaration {
    /// A mixture of experts (its own scratch; no dense MLP buffers).
    var hasExperts: Bool { if case .experts = self { true } else { false } }
    /// A gated MLP (needs the activation buffer `silu(gate) ⊙ up`).
    var isGated: Bool { if case .swiglu = self { true } else { false } }
}

extension Transformer {
    /// The model's tensors then the adapters' (`[R, in]`, `[out, R]`), one allocation, filled
    /// from `checkpoint`; a missing or misshapen adapter is an error naming it.
    /// Copies every tensor into one store, removing each from `checkpoint` once copied: when
    /// the caller handed over its only copy, the weights are never held twice (a 1.1B model
    /// loads in its own size, not double).
    static func loadParameters(_ checkpoint: inout Checkpoint, adapters: [AdapterSpec], rank: Int) throws -> ParameterStore {
        let specs = checkpoint.config.parameterSpecs
        var layout = specs.map { (name: $0.name, shape: $0.shape) }
        for adapter in adapters {
            for (name, shape) in [(adapter.loraAName, [rank, adapter.inFeatures]), (adapter.loraBName, [adapter.outFeatures, rank])] {
                _ = try checkpoint.adapterTensor(name, shape: shape)
                layout.append((name, shape))
            }
        }
        let parameters = ParameterStore(layout: layout)
        for (name, shape) in layout {
            let source = checkpoint.tensors.removeValue(forKey: name) ?? checkpoint.adapters.removeValue(forKey: name)!
            withExtendedLifetime(source) {  // `source` may hold the storage's last reference
                parameters[name]!.pointer.update(from: source.pointer, count: shape.reduce(1, *))
            }
        }
        return parameters
    }

    /// Gradient storage for the trainable tensors only, in parameter order. `selection`
    /// defaults to `.adapters` with adapters and `.all` without.
    static func gradientStore(_ parameters: ParameterStore, adapters: [AdapterSpec],
                              selection: TrainableSelection?) throws -> ParameterStore {
        let adapterNames = Set(adapters.flatMap { [$0.loraAName, $0.loraBName] })
        let trainable = selection ?? (adapterNames.isEmpty ? .all : .adapters)
        let trainableSet: Set<String>
        switch trainable {
        case .all: trainableSet = Set(parameters.names)
        case .adapters: trainableSet = adapterNames
        case .names(let names):
            if let unknown = names.sorted().first(where: { parameters[$0] == nil }) {
                throw ModelError.unknownTrainableTensor(unknown)
            }
            trainableSet = names
        case .none: trainableSet = []
        }
        guard !trainableSet.isEmpty || trainable == .none else { throw ModelError.noTrainableTensors }
        return ParameterStore(layout: parameters.names.filter(trainableSet.contains).map { ($0, parameters[$0]!.shape) })
    }
}
