import Foundation

// B = batch, T = sequence, N = B·T rows, C = channels, V = vocabulary, L = layers,
// H = query heads, KV = key/value heads, D = head dim, W = (H + 2·KV)·D, I = MLP inner width,
// R = LoRA rank.

/// Which tensors receive gradients.
public enum TrainableSelection: Sendable, Equatable {
    /// Every model tensor (full fine-tuning); adapters too when present.
    case all
    /// Only the LoRA adapters.
    case adapters
    /// Exactly these tensor names (model or adapter names).
    case names(Set<String>)
    /// Nothing: inference only (evaluation, generation).
    case none
}

/// Errors building a model for training or evaluation.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case unknownTrainableTensor(String)
    case noTrainableTensors
    case batchTooLarge(batch: Int, sequence: Int, maxBatch: Int, maxSequence: Int)
    case sequenceTooLong(length: Int, maxPositions: Int)
    case tokenOutOfRange(id: Int, vocabularySize: Int)
    case unsupported(String)

    public var description: String {
        switch self {
        case .unknownTrainableTensor(let name):
            return "trainable tensor `\(name)` is not part of the model or its adapters."
        case .noTrainableTensors:
            return "nothing is trainable: add LoRA adapters or choose trainable tensors."
        case .batchTooLarge(let batch, let sequence, let maxBatch, let maxSequence):
            return "batch \(batch)×\(sequence) exceeds the model's buffers (\(maxBatch)×\(maxSequence))."
        case .sequenceTooLong(let length, let maxPositions):
            return "sequence length \(length) exceeds the model's \(maxPositions) positions; truncate the data."
        case .tokenOutOfRange(let id, let vocabularySize):
            return "token id \(id) is outside the vocabulary (\(vocabularySize)); was the data tokenized for another model?"
        case .unsupported(let what):
            return what
        }
    }
}

/// A linear module with its frozen or trainable weight, optional bias and optional LoRA.
struct LinearModule {
    var weight: UnsafeMutablePointer<Float>
    var bias: UnsafeMutablePointer<Float>?
    var inFeatures: Int
    var outFeatures: Int
    /// Indices of the trainable weight and bias in the gradient store (nil = frozen): where
    /// backward sends their gradients.
    var weightTensor: Int?
    var biasTensor: Int?
    /// The head's output gradient (the logits buffer) lives until the end of backward.
    var outputGradientIsStable = false
    var isTiedHead = false
    /// Column offset of this module's output inside a wider output buffer (q/k/v).
    var outColumn: Int = 0
    var lora: LoRAState?

    struct LoRAState {
        var a: UnsafeMutablePointer<Float>        // [R, IN]
        var b: UnsafeMutablePointer<Float>        // [OUT, R]
        var hidden: UnsafeMutablePointer<Float>   // [N, R] saved activations
        var rank: Int
        var scale: Float
        var aTensor: Int?
        var bTensor: Int?
    }

    func forward(out: UnsafeMutablePointer<Float>, outStride: Int, inp: UnsafePointer<Float>, rows: Int) {
        let target = out + outColumn
        linearForward(out: target, outStride: outStride, inp: inp, weight: weight, bias: bias,
                      rows: rows, inFeatures: inFeatures, outFeatures: outFeatures)
        if let lora {
            loraForward(out: target, outStride: outStride, hidden: lora.hidden, inp: inp, loraA: lora.a,
                        loraB: lora.b, scale: lora.scale, rows: rows, inFeatures: inFeatures,
                        outFeatures: outFeatures, rank: lora.rank)
        }
    }

    /// Input gradient into `dinp` (added); the trainable tensors' gradients to `sink`, in
    /// this module's own scope (its LoRA `scratch` [N, R] is reused by the next module).
    /// `rows` are the rows of `dout` and `inp`: the model's padded rows or an MoE expert's
    /// gathered ones.
    /// `makingInput`, when given, runs once `dinp` is complete and before anything reads `inp`:
    /// attention's backward remakes the output projection's input there from its recomputed
    /// probabilities (`RemadeActivations`).
    func backward(dinp: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, doutStride: Int,
                  inp: UnsafePointer<Float>, rows: RowLayout, scratch: UnsafeMutablePointer<Float>,
                  sink: GradientSink, makingInput makeInput: (() -> Void)? = nil) {
        let source = dout + outColumn, N = rows.rows
        sink.module {
            // forward was: out = inp · weightᵀ + bias (the input gradient does not read inp)
            linearBackward(dinp: dinp, dweight: nil, dbias: nil, dout: source, doutStride: doutStride, inp: inp,
                           weight: weight, rows: N, inFeatures: inFeatures, outFeatures: outFeatures)
            if let lora {
                // forward was: hidden = inp · Aᵀ; out += scale · hidden · Bᵀ (dhidden into scratch)
                loraBackward(dinp: dinp, dloraA: nil, dloraB: nil, dhidden: scratch, dout: source,
                             doutStride: doutStride, hidden: lora.hidden, inp: inp, loraA: lora.a, loraB: lora.b,
                             scale: lora.scale, rows: N, inFeatures: inFeatures, outFeatures: outFeatures,
                             rank: lora.rank)
            }
            makeInput?()
            if let weightTensor {
                sink.outerProduct(tensor: weightTensor, e: source, eStride: doutStride, a: inp, aStride: inFeatures,
                                  inFeatures: inFeatures, outFeatures: outFeatures, scale: 1, rows: rows,
                                  eIsStable: outputGradientIsStable, isTiedHead: isTiedHead)
            }
            if let biasTensor {
                sink.rowSum(tensor: biasTensor, e: source, eStride: doutStride, width: outFeatures, rows: rows)
            }
            if let lora, let bTensor = lora.bTensor {
                sink.outerProduct(tensor: bTensor, e: source, eStride: doutStride, a: lora.hidden,
                                  aStride: lora.rank, inFeatures: lora.rank, outFeatures: outFeatures,
                                  scale: lora.scale, rows: rows, eIsStable: outputGradientIsStable,
                                  isTiedHead: false)
            }
            if let lora, let aTensor = lora.aTensor {
                sink.outerProduct(tensor: aTensor, e: scratch, eStride: lora.rank, a: inp, aStride: inFeatures,
                                  inFeatures: inFeatures, outFeatures: lora.rank, scale: 1, rows: rows,
                                  eIsStable: false, isTiedHead: false)
            }
        }
    }
}

/// A norm's weight (and bias for LayerNorm) with their gradients when trainable.
struct NormParameters {
    var weight: UnsafeMutablePointer<Float>
    var bias: UnsafeMutablePointer<Float>?
    /// Indices in the gradient store (nil = frozen).
    var weightTensor: Int?
    var biasTensor: Int?
}

/// A block's feed-forward part, per model family.
enum FeedForward {
    /// gpt2: c_proj(gelu(c_fc x)).
    case gelu(fc: LinearModule, projection: LinearModule)
    /// llama: down_proj(silu(gate_proj x) ⊙ up_proj x).
    case swiglu(gate: LinearModule, up: LinearModule, down: LinearModule)
    /// mixtral: a sparse mixture of SwiGLU experts with a top-k router.
    case experts(MixtureOfExperts)
}

/// One transformer block: its parameters, its input and the activations saved for backward.
struct Block {
    var norm1: NormParameters
    var qkv: [LinearModule]              // gpt2: [c_attn]; llama/mixtral: [q, k, v]
    var attentionOutput: LinearModule    // c_proj / o_proj
    var norm2: NormParameters
    var feedForward: FeedForward

    /// [N, C] the residual stream into the block, always the block's own.
    var input: UnsafeMutablePointer<Float>
    /// The block's own, or one set shared by every block when the model recomputes them.
    var saved: BlockActivations
}

/// What a block's forward saves for its backward, sized for the largest batch.
struct BlockActivations {
    var norm1Out: UnsafeMutablePointer<Float>     // [N, C]
    var norm1Mean: UnsafeMutablePointer<Float>    // [N]
    var norm1Rstd: UnsafeMutablePointer<Float>    // [N]
    var qkvOut: UnsafeMutablePointer<Float>       // [N, W]
    var attention: UnsafeMutablePointer<Float>    // [N, H·D]
    var middle: UnsafeMutablePointer<Float>       // [N, C] residual after attention
    var norm2Out: UnsafeMutablePointer<Float>     // [N, C]
    var norm2Mean: UnsafeMutablePointer<Float>    // [N]
    var norm2Rstd: UnsafeMutablePointer<Float>    // [N]
    var mlpHidden: UnsafeMutablePointer<Float>    // [N, I] gpt2: c_fc out; llama: gate out (mixtral: unused)
    var mlpHidden2: UnsafeMutablePointer<Float>   // [N, I] gpt2: gelu out; llama: up out (mixtral: unused)
    var mlpActivation: UnsafeMutablePointer<Float> // [N, I] llama: silu(gate)·up (gpt2, mixtral: unused)
}

/// Activations that are cheap to make again from what a block keeps — its norms' outputs
/// (from the norm's input and the weights), attention's output (P v, one more T × T × D
/// product per head inside attention's backward, which recomputes P anyway) and a gated MLP's
/// silu(gate)·up (from gate and up) — live in one set of
/// buffers all blocks share instead of one per block: each block's backward pass remakes
/// them, with the forward's own code, before it reads them. On the 1.1B Llama (B = 4,
/// T = 256) that is (3·2048 + 5632)·4 bytes per token per layer, 1012 MiB; its step's peak
/// RSS went 7144 → 6178 MiB. The price is a little time where attention is a large share of
/// the arithmetic: the reference GPT's non-private step ≈ 2 % slower than the build that kept
/// them (median of 10 alternated runs; single ratios scatter 0.92–1.19 on this machine).
struct RemadeActivations {
    var norm1Out: UnsafeMutablePointer<Float>     // [N, C]
    var attention: UnsafeMutablePointer<Float>    // [N, H·D]
    var norm2Out: UnsafeMutablePointer<Float>     // [N, C]
    var gatedProduct: UnsafeMutablePointer<Float> // [N, I] (gated MLPs only)
}

/// A decoder-only transformer of a family declared in Model/Families/ (optional LoRA) with hand-written
/// forward and backward passes (DESIGN.md §2).
///
/// Parameters live in one allocation, gradients in another; activations are allocated once
/// for `maxBatchSize × maxSequenceLength` and reused, so a steady-state step allocates nothing.
///
/// Loss: per-example loss = mean cross-entropy over that example's label tokens (0 when it has
/// none); batch loss = mean of the per-example losses.
public final class Transformer {
    public let config: ModelConfig
    public let lora: LoRAConfig?
    public let adapterSpecs: [AdapterSpec]
    /// Model and adapter tensors, one allocation.
    public let parameters: ParameterStore
    /// Gradients of the trainable tensors, one allocation (same names).
    public let gradients: ParameterStore
    /// Names of the trainable tensors, in storage order.
    public var trainableNames: [String] { gradients.names }
    public let maxBatchSize: Int
    public let maxSequenceLength: Int
    /// Whether the blocks share one set of saved activations, each block's recomputed from its
    /// input during the backward pass (activation checkpointing per block): the activations
    /// take one block's buffers plus an [N, C] input per block instead of every block's, for
    /// one more forward pass of every block but the last. Gradients are unchanged — the
    /// recomputation repeats the forward's arithmetic exactly.
    public let recomputesActivations: Bool

    var blocks: [Block] = []
    private let storages: [TensorStorage]  // keeps the activation buffers alive
    /// Bytes of the activation and scratch buffers allocated with the model.
    var activationBytes: Int { storages.reduce(0) { $0 + $1.count } * MemoryLayout<Float>.size }
    let tokenEmbedding: UnsafeMutablePointer<Float>
    let positionEmbedding: UnsafeMutablePointer<Float>?
    let finalNorm: NormParameters
    let head: LinearModule  // weight = tied embedding or lm_head
    let rotary: RotaryTable?
    private let tokenEmbeddingTensor: Int?
    private let positionEmbeddingTensor: Int?
    /// Set by the DP engine: weight gradients go through book-keeping (clipped sums).
    var bookKeeper: BookKeeper?
    /// Without book-keeping, backward adds the gradients straight into `gradients`.
    private lazy var directGradients = DirectGradients(targets: gradients.names.map { gradients[$0]!.pointer })
    /// When true, the loss is Σ_i L_i (each example's own gradient, as DP needs) instead of
    /// the mean over examples.
    var sumsPerExampleLosses = false

    private let ids: UnsafeMutablePointer<Int32>          // [N]
    private let targets: UnsafeMutablePointer<Int32>      // [N]
    private let rowLosses: UnsafeMutablePointer<Float>    // [N]
    private let rowWeights: UnsafeMutablePointer<Float>   // [N]
    private let finalInput: UnsafeMutablePointer<Float>   // [N, C]
    let finalNormOut: UnsafeMutablePointer<Float> // [N, C]
    private let finalMean: UnsafeMutablePointer<Float>    // [N]
    private let finalRstd: UnsafeMutablePointer<Float>    // [N]
    private let logitsBuffer: UnsafeMutablePointer<Float> // [N, V], becomes dlogits in backward
    // backward scratch
    private let residualGradient: UnsafeMutablePointer<Float>  // [N, C]
    private let normGradient: UnsafeMutablePointer<Float>      // [N, C]
    private let qkvGradient: UnsafeMutablePointer<Float>       // [N, W]
    private let attentionGradient: UnsafeMutablePointer<Float> // [N, H·D]
    private let attentionScratch: AttentionScratch             // per worker [T, T] × 2
    private let mlpGradient: UnsafeMutablePointer<Float>       // [N, I]
    private let mlpGradient2: UnsafeMutablePointer<Float>      // [N, I]
    private let mlpGradient3: UnsafeMutablePointer<Float>      // [N, I]
    private let loraScratch: UnsafeMutablePointer<Float>       // [N, R]
    private let expertScratch: MixtureOfExperts.Scratch?       // mixtral only

    private var current: (batch: Int, sequence: Int) = (0, 0)
    private var currentLengths: [Int] = []
    /// The last forward's rows: example i owns rows i·T ..< i·T + L_i.
    private var currentRows = RowLayout(paddedLengths: [], sequenceLength: 0)
    private var forwardDone = false
    /// Per-example losses of the last forward pass.
    public private(set) var perExampleLosses: [Float] = []
    /// Scored tokens per example in the last forward pass.
    public private(set) var perExampleTokenCounts: [Int] = []

    /// Sizes refused before anything is allocated: sequences longer than learned position
    /// embeddings have rows (rotary positions have no table to outgrow), and activations larger
    /// than the machine's memory.
    private static func checkSizes(_ config: ModelConfig, maxBatchSize: Int, maxSequenceLength: Int,
                                   recomputesActivations: Bool) throws {
        guard maxSequenceLength <= config.maxPositions || config.declaration.positionEmbedding == nil else {
            throw ModelError.sequenceTooLong(length: maxSequenceLength, maxPositions: config.maxPositions)
        }
        try config.checkActivationsFitInMemory(batchSize: maxBatchSize, sequenceLength: maxSequenceLength,
                                               recomputesActivations: recomputesActivations)
    }

    /// Builds the model from a checkpoint. `lora` adds fresh adapters (seeded) unless the
    /// checkpoint already has adapters, which are then used. `trainable` defaults to
    /// `.adapters` with adapters and `.all` without. `recomputesActivations`: see the property.
    public init(checkpoint: consuming Checkpoint, lora requestedLoRA: LoRAConfig? = nil,
                trainable requestedTrainable: TrainableSelection? = nil,
                maxBatchSize: Int, maxSequenceLength: Int, adapterSeed: UInt64 = 0,
                recomputesActivations: Bool = false) throws {
        try BLAS.load()
        if checkpoint.adapters.isEmpty, let requestedLoRA {
            try checkpoint.addAdapters(requestedLoRA, seed: adapterSeed)
        }
        let lora = try checkpoint.loraConfig()
        let config = checkpoint.config
        try Self.checkSizes(config, maxBatchSize: maxBatchSize, maxSequenceLength: maxSequenceLength,
                            recomputesActivations: recomputesActivations)
        self.config = config
        self.recomputesActivations = recomputesActivations
        self.lora = lora
        self.maxBatchSize = maxBatchSize
        self.maxSequenceLength = maxSequenceLength
        adapterSpecs = try lora.map { try config.adapterSpecs(for: $0) } ?? []

        parameters = try Self.loadParameters(&checkpoint, adapters: adapterSpecs, rank: lora?.rank ?? 0)
        gradients = try Self.gradientStore(parameters, adapters: adapterSpecs, selection: requestedTrainable)

        // Activations and scratch.
        let C = config.hiddenSize, V = config.vocabularySize, I = config.intermediateSize
        let H = config.headCount, KV = config.keyValueHeadCount, D = config.headDimension
        let W = (H + 2 * KV) * D, N = maxBatchSize * maxSequenceLength
        let R = lora?.rank ?? 0
        var storages: [TensorStorage] = []
        func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
            let storage = TensorStorage(count: count)
            storages.append(storage)
            return storage.base
        }
        let declaration = config.declaration
        let binder = ModuleBinder(parameters: parameters, gradients: gradients, adapters: adapterSpecs, lora: lora,
                                  rows: N, buffer: buffer)
        let hasExperts = declaration.blocks.contains { $0.feedForward.hasExperts }
        blocks = Self.blocks(declaration, binder: binder, config: config, sharingActivations: recomputesActivations)
        let embeddingName = declaration.tokenEmbedding.weightName
        tokenEmbedding = binder.weight(embeddingName)
        let positionName = declaration.positionEmbedding?.weightName
        positionEmbedding = positionName.map(binder.weight)
        finalNorm = binder.norm(declaration.finalNorm)
        head = binder.head(declaration)
        tokenEmbeddingTensor = binder.tensor(embeddingName)
        positionEmbeddingTensor = positionName.flatMap(binder.tensor)
        if case .rotary(let theta) = declaration.positions {
            rotary = RotaryTable(maxPositions: maxSequenceLength, headDimension: D, theta: theta)
        } else {
            rotary = nil
        }

        let idsStorage = UnsafeMutablePointer<Int32>.allocate(capacity: N)
        let targetsStorage = UnsafeMutablePointer<Int32>.allocate(capacity: N)
        idsStorage.initialize(repeating: 0, count: N)
        targetsStorage.initialize(repeating: TokenBatch.ignoredLabel, count: N)
        ids = idsStorage
        targets = targetsStorage
        rowLosses = buffer(N)
        rowWeights = buffer(N)
        finalInput = buffer(N * C)
        finalNormOut = buffer(N * C)
        finalMean = buffer(N)
        finalRstd = buffer(N)
        logitsBuffer = buffer(N * V)
        residualGradient = buffer(N * C)
        normGradient = buffer(N * C)
        qkvGradient = buffer(N * W)
        attentionGradient = buffer(N * H * D)
        attentionScratch = AttentionScratch(workers: Parallel.threadCount, maxSequence: maxSequenceLength, buffer: buffer)
        mlpGradient = buffer(hasExperts ? 0 : N * I)
        mlpGradient2 = buffer(hasExperts ? 0 : N * I)
        mlpGradient3 = buffer(hasExperts ? 0 : N * I)
        loraScratch = buffer(max(N * R, 1))
        expertScratch = hasExperts ? MixtureOfExperts.Scratch(maxRows: N, channels: C, inner: I, experts: config.expertCount,
                                                              perToken: config.expertsPerToken, loraRank: R) : nil
        self.storages = storages
    }

    /// The blocks with their buffers: each its own saved activations, or (`sharingActivations`,
    /// for recomputation) one set that all of them share; either way one set of
    /// `RemadeActivations`.
    private static func blocks(_ declaration: ModelDeclaration, binder: ModuleBinder, config: ModelConfig,
                               sharingActivations: Bool) -> [Block] {
        let remade = binder.remadeActivations(config: config, gated: declaration.blocks.contains { $0.feedForward.isGated })
        func activations(_ block: BlockDeclaration) -> BlockActivations {
            binder.blockActivations(config: config, dense: !block.feedForward.hasExperts, remade: remade)
        }
        let shared = sharingActivations ? declaration.blocks.first.map(activations) : nil
        return declaration.blocks.map { binder.block($0, config: config, saved: shared ?? activations($0)) }
    }

    deinit {
        ids.deallocate()
        targets.deallocate()
    }

    private var attentionShape: AttentionShape {
        attentionShape(batch: current.batch, sequence: current.sequence)
    }

    private func attentionShape(batch: Int, sequence: Int) -> AttentionShape {
        AttentionShape(batch: batch, sequence: sequence, heads: config.headCount,
                       keyValueHeads: config.keyValueHeadCount, headDimension: config.headDimension)
    }

    // MARK: Forward

    /// Runs the model on `batch`, computing logits and the loss. Returns the batch loss
    /// (mean of per-example losses).
    @discardableResult
    public func forward(_ batch: TokenBatch) throws -> Float {
        let B = batch.batchSize, T = batch.sequenceLength
        guard B <= maxBatchSize, T <= maxSequenceLength else {
            throw ModelError.batchTooLarge(batch: B, sequence: T, maxBatch: maxBatchSize, maxSequence: maxSequenceLength)
        }
        guard T <= config.maxPositions else {
            throw ModelError.sequenceTooLong(length: T, maxPositions: config.maxPositions)
        }
        let V = config.vocabularySize
        try checkTokens(batch.ids.lazy.map(Int.init))
        try checkTokens(batch.labels.lazy.filter { $0 != TokenBatch.ignoredLabel }.map(Int.init))
        current = (B, T)
        currentLengths = batch.lengths
        currentRows = RowLayout(paddedLengths: batch.lengths, sequenceLength: T)
        let N = B * T, C = config.hiddenSize
        batch.ids.withUnsafeBufferPointer { ids.update(from: $0.baseAddress!, count: N) }
        batch.shiftedTargets(into: targets)

        embeddingForward(out: blocks.first?.input ?? finalInput, ids: ids, tokenEmbedding: tokenEmbedding,
                         positionEmbedding: positionEmbedding, rows: N, sequence: T, channels: C)
        blocksForward(shape: attentionShape, lengths: currentLengths, keyValues: .batch)
        normForward(finalNorm, out: finalNormOut, mean: finalMean, rstd: finalRstd, inp: finalInput, rows: N)
        head.forward(out: logitsBuffer, outStride: V, inp: finalNormOut, rows: N)
        crossEntropyForward(rowLosses: rowLosses, logits: logitsBuffer, targets: targets, rows: N, vocabulary: V)

        // per-example mean over label tokens; batch loss = mean over examples
        if perExampleLosses.count != B {  // reallocated only when the batch size changes
            perExampleLosses = [Float](repeating: 0, count: B)
            perExampleTokenCounts = [Int](repeating: 0, count: B)
        }
        for b in 0..<B {
            var sum: Float = 0, count = 0
            for t in 0..<T where targets[b * T + t] >= 0 {
                sum += rowLosses[b * T + t]
                count += 1
            }
            perExampleLosses[b] = count > 0 ? sum / Float(count) : 0
            perExampleTokenCounts[b] = count
            let weight: Float = count > 0 ? 1 / (Float(count) * (sumsPerExampleLosses ? 1 : Float(B))) : 0
            for t in 0..<T { rowWeights[b * T + t] = weight }
        }
        forwardDone = true
        return perExampleLosses.reduce(0, +) / Float(max(B, 1))
    }

    /// Throws for the first token id outside the vocabulary.
    private func checkTokens<Tokens: Sequence<Int>>(_ tokens: Tokens) throws {
        let V = config.vocabularySize
        for id in tokens where id < 0 || id >= V {
            throw ModelError.tokenOutOfRange(id: id, vocabularySize: V)
        }
    }

    /// Runs `tokens`, the positions right after those already in `cache`, through the model's
    /// own blocks: each new position attends to the cached keys and values and to the new
    /// positions before it, and its keys and values are appended to the cache. Returns the
    /// logits [V] that follow the last new token (valid until the next `forward` or `decode`).
    /// Generation decodes the prompt in one call, then one token per call.
    public func decode(_ tokens: [Int], cache: KeyValueCache) throws -> UnsafeBufferPointer<Float> {
        let T = tokens.count, first = cache.count, C = config.hiddenSize, V = config.vocabularySize
        guard T > 0 else { throw ModelError.unsupported("decode needs at least one token") }
        guard first + T <= cache.capacity else {
            throw ModelError.sequenceTooLong(length: first + T, maxPositions: cache.capacity)
        }
        try checkTokens(tokens)
        precondition(cache.layerCount == blocks.count, "the cache was made for another model")
        forwardDone = false  // the activations now hold this decode step, nothing to back-propagate
        for (n, token) in tokens.enumerated() { ids[n] = Int32(token) }
        embeddingForward(out: blocks.first?.input ?? finalInput, ids: ids, tokenEmbedding: tokenEmbedding,
                         positionEmbedding: positionEmbedding.map { $0 + first * C }, rows: T, sequence: T, channels: C)
        blocksForward(shape: attentionShape(batch: 1, sequence: T), lengths: nil, keyValues: .cache(cache, first: first))
        cache.count = first + T
        // only the last position's logits are needed
        let last = (T - 1) * C
        normForward(finalNorm, out: finalNormOut + last, mean: finalMean, rstd: finalRstd, inp: finalInput + last, rows: 1)
        head.forward(out: logitsBuffer, outStride: V, inp: finalNormOut + last, rows: 1)
        return UnsafeBufferPointer(start: logitsBuffer, count: V)
    }

    private func normForward(_ norm: NormParameters, out: UnsafeMutablePointer<Float>,
                             mean: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                             inp: UnsafePointer<Float>, rows: Int) {
        let epsilon = Float(config.normEpsilon)
        if let bias = norm.bias {
            layerNormForward(out: out, mean: mean, rstd: rstd, inp: inp, weight: norm.weight, bias: bias,
                             rows: rows, channels: config.hiddenSize, epsilon: epsilon)
        } else {
            rmsNormForward(out: out, rstd: rstd, inp: inp, weight: norm.weight, rows: rows,
                           channels: config.hiddenSize, epsilon: epsilon)
        }
    }

    /// Where a block's attention finds its keys and values.
    private enum KeyValueSource {
        /// The batch's own rows: each example's positions 0 ..< T, causal (training, evaluation).
        case batch
        /// One sequence's new rows at positions `first ..< first + T`: they attend to the cached
        /// positions and to each other, and their keys and values join the cache (decoding).
        case cache(KeyValueCache, first: Int)
    }

    /// The blocks in order, from blocks[0].input to finalInput, on shape.batch · shape.sequence
    /// rows (`lengths`: the examples' real lengths for the MoE router, nil = all rows real).
    private func blocksForward(shape: AttentionShape, lengths: [Int]?, keyValues: KeyValueSource) {
        for l in blocks.indices {
            let output = l + 1 < blocks.count ? blocks[l + 1].input : finalInput
            blockForward(blocks[l], layer: l, output: output, shape: shape, lengths: lengths, keyValues: keyValues)
        }
    }

    /// Block `l` from its input to `output`, saving its activations. `savedOnly`: only the saved
    /// activations are wanted (recomputation; `output` is the next block's input, still held),
    /// so a dense MLP skips its output projection — whose LoRA rows, in the module's own
    /// buffer, are still the forward's; an MoE layer writes `output` again anyway.
    private func blockForward(_ block: Block, layer l: Int, output: UnsafeMutablePointer<Float>,
                              shape: AttentionShape, lengths: [Int]?, keyValues: KeyValueSource,
                              savedOnly: Bool = false) {
        let C = config.hiddenSize, I = config.intermediateSize
        let W = shape.qkvWidth, N = shape.batch * shape.sequence
        normForward(block.norm1, out: block.saved.norm1Out, mean: block.saved.norm1Mean, rstd: block.saved.norm1Rstd,
                    inp: block.input, rows: N)
        for module in block.qkv { module.forward(out: block.saved.qkvOut, outStride: W, inp: block.saved.norm1Out, rows: N) }
        switch keyValues {
        case .batch:
            rotary?.apply(block.saved.qkvOut, shape: shape, inverse: false)
            attentionForward(out: block.saved.attention, qkv: block.saved.qkvOut, shape: shape, scratch: attentionScratch)
        case .cache(let cache, let first):
            rotary?.apply(block.saved.qkvOut, shape: shape, inverse: false, firstPosition: first)
            cache.append(layer: l, qkv: block.saved.qkvOut, shape: shape, at: first)
            attentionForward(out: block.saved.attention, queries: block.saved.qkvOut,
                             keyValues: cache.rows(layer: l, count: first + shape.sequence), first: first, shape: shape,
                             scratch: attentionScratch)
        }
        block.attentionOutput.forward(out: block.saved.middle, outStride: C, inp: block.saved.attention, rows: N)
        add(block.saved.middle, block.input, count: N * C)
        normForward(block.norm2, out: block.saved.norm2Out, mean: block.saved.norm2Mean, rstd: block.saved.norm2Rstd,
                    inp: block.saved.middle, rows: N)
        switch block.feedForward {
        case .gelu(let fc, let projection):
            fc.forward(out: block.saved.mlpHidden, outStride: I, inp: block.saved.norm2Out, rows: N)
            geluForward(out: block.saved.mlpHidden2, inp: block.saved.mlpHidden, count: N * I)
            if savedOnly { return }
            projection.forward(out: output, outStride: C, inp: block.saved.mlpHidden2, rows: N)
        case .swiglu(let gate, let up, let down):
            gate.forward(out: block.saved.mlpHidden, outStride: I, inp: block.saved.norm2Out, rows: N)
            up.forward(out: block.saved.mlpHidden2, outStride: I, inp: block.saved.norm2Out, rows: N)
            swigluForward(out: block.saved.mlpActivation, gate: block.saved.mlpHidden, up: block.saved.mlpHidden2, count: N * I)
            if savedOnly { return }
            down.forward(out: output, outStride: C, inp: block.saved.mlpActivation, rows: N)
        case .experts(let moe):
            moe.forward(out: output, inp: block.saved.norm2Out, batch: shape.batch, sequence: shape.sequence, lengths: lengths)
        }
        add(output, block.saved.middle, count: N * C)
    }

    /// a += b
    private func add(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { a[i] += b[i] }
    }

    // MARK: Backward

    /// Back-propagates the last forward pass's batch loss, adding into `gradients` (or, with
    /// `bookKeeper` set, handing every contribution to book-keeping). Destroys the logits
    /// (they become their gradient).
    public func backward() {
        precondition(forwardDone, "backward() needs a forward() first")
        forwardDone = false
        let (B, T) = current
        let N = B * T, C = config.hiddenSize, V = config.vocabularySize
        let sink: GradientSink = bookKeeper ?? directGradients
        let rows = currentRows
        sink.beginBackward(rows: rows, ids: ids)
        crossEntropyBackward(logitsToGradient: logitsBuffer, targets: targets, rowWeights: rowWeights,
                             rows: N, vocabulary: V)
        zero(normGradient, N * C)
        head.backward(dinp: normGradient, dout: logitsBuffer, doutStride: V, inp: finalNormOut, rows: rows,
                      scratch: loraScratch, sink: sink)
        zero(residualGradient, N * C)
        normBackward(finalNorm, dinp: residualGradient, dout: normGradient, inp: finalInput,
                     mean: finalMean, rstd: finalRstd, sink: sink)
        for l in blocks.indices.reversed() {
            if recomputesActivations && l + 1 < blocks.count {
                // The shared buffers hold block l+1's activations (the last block's are still
                // there from the forward): the sink copies what it still needs, then block l's
                // are made again.
                sink.sharedActivationsWillChange()
                blockForward(blocks[l], layer: l, output: blocks[l + 1].input, shape: attentionShape,
                             lengths: currentLengths, keyValues: .batch, savedOnly: true)
            }
            blockBackward(blocks[l], sink: sink)
        }
        // forward was: out[n] = wte[ids[n]] + wpe[t]
        sink.module {
            if let tensor = tokenEmbeddingTensor { sink.tokenEmbedding(tensor: tensor, e: residualGradient, width: C) }
            if let tensor = positionEmbeddingTensor { sink.positionEmbedding(tensor: tensor, e: residualGradient, width: C) }
        }
    }

    private func zero(_ p: UnsafeMutablePointer<Float>, _ count: Int) { p.update(repeating: 0, count: count) }

    private func normBackward(_ norm: NormParameters, dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                              inp: UnsafePointer<Float>, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                              sink: GradientSink) {
        let C = config.hiddenSize, rows = currentRows
        sink.module {
            // forward was: out = x̂ ⊙ weight (+ bias)
            if norm.bias != nil {
                layerNormBackward(dinp: dinp, dweight: nil, dbias: nil, dout: dout, inp: inp, weight: norm.weight,
                                  mean: mean, rstd: rstd, rows: rows.rows, channels: C)
            } else {
                rmsNormBackward(dinp: dinp, dweight: nil, dout: dout, inp: inp, weight: norm.weight, rstd: rstd,
                                rows: rows.rows, channels: C)
            }
            if let tensor = norm.weightTensor {
                sink.normWeight(tensor: tensor, dout: dout, inp: inp, mean: norm.bias != nil ? mean : nil, rstd: rstd,
                                width: C, rows: rows)
            }
            if let tensor = norm.biasTensor { sink.rowSum(tensor: tensor, e: dout, eStride: C, width: C, rows: rows) }
        }
    }

    /// Whether a block's backward must remake `buffer` (`RemadeActivations`): if so, the sink
    /// first copies what it still needs of the block after this one's. A model that recomputes
    /// its activations has just run this block's forward again, which left the buffer filled.
    private func willRemake(_ buffer: UnsafeMutablePointer<Float>, count: Int, sink: GradientSink) -> Bool {
        guard !recomputesActivations else { return false }
        sink.sharedBufferWillChange(UnsafeBufferPointer(start: buffer, count: count))
        return true
    }

    /// Makes a norm's output again in its shared buffer with the forward's code on the block's
    /// own input — the same values, mean and rstd included (`willRemake`).
    private func remakeNormOutput(_ norm: NormParameters, out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                                  rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, sink: GradientSink) {
        let N = currentRows.rows
        guard willRemake(out, count: N * config.hiddenSize, sink: sink) else { return }
        normForward(norm, out: out, mean: mean, rstd: rstd, inp: inp, rows: N)
    }

    /// residualGradient holds d(block output) on entry and d(block input) on exit.
    private func blockBackward(_ block: Block, sink: GradientSink) {
        let C = config.hiddenSize, I = config.intermediateSize
        let shape = attentionShape, W = shape.qkvWidth, HD = shape.outWidth
        let rows = currentRows, N = rows.rows
        let dresidual = residualGradient
        // forward was: output = middle + mlpOut(mlp(norm2(middle)))
        remakeNormOutput(block.norm2, out: block.saved.norm2Out, mean: block.saved.norm2Mean, rstd: block.saved.norm2Rstd,
                         inp: block.saved.middle, sink: sink)
        switch block.feedForward {
        case .gelu(let fc, let projection):
            zero(mlpGradient, N * I)
            projection.backward(dinp: mlpGradient, dout: dresidual, doutStride: C, inp: block.saved.mlpHidden2, rows: rows,
                                scratch: loraScratch, sink: sink)
            zero(mlpGradient2, N * I)
            geluBackward(dinp: mlpGradient2, dout: mlpGradient, inp: block.saved.mlpHidden, count: N * I)
            zero(normGradient, N * C)
            fc.backward(dinp: normGradient, dout: mlpGradient2, doutStride: I, inp: block.saved.norm2Out, rows: rows,
                        scratch: loraScratch, sink: sink)
        case .swiglu(let gate, let up, let down):
            if willRemake(block.saved.mlpActivation, count: N * I, sink: sink) {
                swigluForward(out: block.saved.mlpActivation, gate: block.saved.mlpHidden, up: block.saved.mlpHidden2,
                              count: N * I)
            }
            zero(mlpGradient, N * I)
            down.backward(dinp: mlpGradient, dout: dresidual, doutStride: C, inp: block.saved.mlpActivation, rows: rows,
                          scratch: loraScratch, sink: sink)
            swigluBackward(dgate: mlpGradient2, dup: mlpGradient3, dout: mlpGradient, gate: block.saved.mlpHidden,
                           up: block.saved.mlpHidden2, count: N * I)
            zero(normGradient, N * C)
            gate.backward(dinp: normGradient, dout: mlpGradient2, doutStride: I, inp: block.saved.norm2Out, rows: rows,
                          scratch: loraScratch, sink: sink)
            up.backward(dinp: normGradient, dout: mlpGradient3, doutStride: I, inp: block.saved.norm2Out, rows: rows,
                        scratch: loraScratch, sink: sink)
        case .experts(let moe):
            zero(normGradient, N * C)
            moe.backward(dinp: normGradient, dout: dresidual, inp: block.saved.norm2Out, rows: rows, scratch: expertScratch!,
                         sink: sink)
        }
        normBackward(block.norm2, dinp: dresidual, dout: normGradient, inp: block.saved.middle,
                     mean: block.saved.norm2Mean, rstd: block.saved.norm2Rstd, sink: sink)
        // forward was: middle = input + attentionOutput(attention(rotary(qkv(norm1(input)))))
        // Attention's output is remade by attention's backward, which recomputes the
        // probabilities anyway, between the projection's input gradient and its contributions.
        let remadeAttention = willRemake(block.saved.attention, count: N * HD, sink: sink) ? block.saved.attention : nil
        zero(attentionGradient, N * HD)
        zero(qkvGradient, N * W)
        block.attentionOutput.backward(dinp: attentionGradient, dout: dresidual, doutStride: C, inp: block.saved.attention,
                                       rows: rows, scratch: loraScratch, sink: sink) {
            attentionBackward(dqkv: self.qkvGradient, dout: self.attentionGradient, qkv: block.saved.qkvOut, shape: shape,
                              scratch: self.attentionScratch, remaking: remadeAttention)
        }
        rotary?.apply(qkvGradient, shape: shape, inverse: true)
        remakeNormOutput(block.norm1, out: block.saved.norm1Out, mean: block.saved.norm1Mean, rstd: block.saved.norm1Rstd,
                         inp: block.input, sink: sink)
        zero(normGradient, N * C)
        for module in block.qkv {
            module.backward(dinp: normGradient, dout: qkvGradient, doutStride: W, inp: block.saved.norm1Out, rows: rows,
                            scratch: loraScratch, sink: sink)
        }
        normBackward(block.norm1, dinp: dresidual, dout: normGradient, inp: block.input,
                     mean: block.saved.norm1Mean, rstd: block.saved.norm1Rstd, sink: sink)
    }

    // MARK: Results

    /// The logits of example `b` at position `t` (valid after forward, before backward).
    public func logits(example b: Int, position t: Int) -> UnsafeBufferPointer<Float> {
        let V = config.vocabularySize
        return UnsafeBufferPointer(start: logitsBuffer + (b * current.sequence + t) * V, count: V)
    }

    /// Sets every gradient to zero.
    public func zeroGradients() { gradients.zero() }

    /// The current parameters as a checkpoint (copies), adapters included. Without
    /// `weights` only the adapters are copied (a LoRA step checkpoint that refers to its
    /// frozen base: copying a billion frozen weights per checkpoint would double the memory).
    public func checkpoint(base: Checkpoint, weights: Bool = true) -> Checkpoint {
        var result = base
        result.tensors = weights
            ? Dictionary(uniqueKeysWithValues: config.parameterSpecs.map { ($0.name, parameters[$0.name]!.copy()) }) : [:]
        result.adapters = Dictionary(uniqueKeysWithValues: adapterSpecs.flatMap { [$0.loraAName, $0.loraBName] }
            .map { ($0, parameters[$0]!.copy()) })
        result.adapterConfig = lora?.peftJSON
        return result
    }
}
