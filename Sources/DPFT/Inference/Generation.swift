import Foundation

/// How `Generator` picks the next token.
public struct GenerationOptions: Sendable {
    /// 0 = greedy (argmax); otherwise logits are divided by it before the softmax.
    public var temperature: Float = 0
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches top-p.
    public var topP: Float = 1
    public var seed: UInt64 = 0
    public var maxNewTokens: Int = 32
    /// Generation stops after this token (e.g. the tokenizer's EOS); nil = never.
    public var stopToken: Int? = nil

    public init(temperature: Float = 0, topP: Float = 1, seed: UInt64 = 0, maxNewTokens: Int = 32, stopToken: Int? = nil) {
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
        self.maxNewTokens = maxNewTokens
        self.stopToken = stopToken
    }
}

// C = channels, W = (H + 2·KV)·D, I = MLP inner width, V = vocabulary, S = max length.

/// Autoregressive decoding for one sequence, with a key/value cache (each new token costs one
/// row through the model) or without (the whole prefix is re-run each step — the reference the
/// cache is tested against).
public final class Generator {
    public let model: Transformer
    /// Longest prompt + continuation this generator holds.
    public let maxLength: Int
    private var keyCache: [TensorStorage]    // per layer [S, KV·D]
    private var valueCache: [TensorStorage]  // per layer [S, KV·D]
    private let scratch: TensorStorage
    private let x, normOut, qkv, attention, middle, mlpA, mlpB, mlpC, logits, scores, stats: UnsafeMutablePointer<Float>

    /// `model` must have been built with maxBatchSize ≥ 1 and maxSequenceLength ≥ maxLength.
    public init(model: Transformer, maxLength: Int) throws {
        guard maxLength <= model.maxSequenceLength, maxLength <= model.config.maxPositions else {
            throw ModelError.sequenceTooLong(length: maxLength, maxPositions: min(model.maxSequenceLength, model.config.maxPositions))
        }
        self.model = model
        self.maxLength = maxLength
        let config = model.config
        let C = config.hiddenSize, D = config.headDimension, KV = config.keyValueHeadCount
        let W = (config.headCount + 2 * KV) * D, I = config.intermediateSize, V = config.vocabularySize
        keyCache = (0..<config.layerCount).map { _ in TensorStorage(count: maxLength * KV * D) }
        valueCache = (0..<config.layerCount).map { _ in TensorStorage(count: maxLength * KV * D) }
        let sizes = [C, C, W, config.headCount * D, C, I, I, I, V, maxLength, 2]
        let buffer = TensorStorage(count: sizes.reduce(0, +))
        scratch = buffer
        var offset = 0
        func take(_ count: Int) -> UnsafeMutablePointer<Float> {
            defer { offset += count }
            return buffer.base + offset
        }
        x = take(C); normOut = take(C); qkv = take(W); attention = take(config.headCount * D)
        middle = take(C); mlpA = take(I); mlpB = take(I); mlpC = take(I); logits = take(V)
        scores = take(maxLength); stats = take(2)
    }

    /// Continues `prompt` (token ids) and returns the new tokens only.
    public func generate(prompt: [Int], options: GenerationOptions, useCache: Bool = true) throws -> [Int] {
        guard !prompt.isEmpty else { throw ModelError.unsupported("the prompt encodes to no tokens") }
        let V = model.config.vocabularySize
        if let bad = prompt.first(where: { $0 < 0 || $0 >= V }) {
            throw ModelError.tokenOutOfRange(id: bad, vocabularySize: V)
        }
        let total = min(prompt.count + options.maxNewTokens, maxLength)
        guard prompt.count < total || options.maxNewTokens == 0 else {
            throw ModelError.sequenceTooLong(length: prompt.count + 1, maxPositions: maxLength)
        }
        var generator = SeededGenerator(seed: options.seed)
        var sequence = prompt
        var produced: [Int] = []
        if useCache {
            for (t, id) in prompt.dropLast().enumerated() { step(token: id, position: t) }
        }
        while sequence.count < total {
            let next: Int
            if useCache {
                step(token: sequence.last!, position: sequence.count - 1)
                next = sample(UnsafeBufferPointer(start: logits, count: V), options: options, generator: &generator)
            } else {
                try model.forward(TokenBatch(examples: [(ids: sequence, labels: nil)]))
                next = sample(model.logits(example: 0, position: sequence.count - 1), options: options, generator: &generator)
            }
            sequence.append(next)
            produced.append(next)
            if next == options.stopToken { break }
        }
        return produced
    }

    /// Runs one token at `position` through the model, appending its keys and values to the
    /// cache; leaves the next-token logits in `logits`.
    private func step(token: Int, position t: Int) {
        let config = model.config
        let C = config.hiddenSize, D = config.headDimension, H = config.headCount, KV = config.keyValueHeadCount
        let W = (H + 2 * KV) * D, I = config.intermediateSize
        var id = Int32(token)
        embeddingForward(out: x, ids: &id, tokenEmbedding: model.tokenEmbedding,
                         positionEmbedding: model.positionEmbedding.map { $0 + t * C }, rows: 1, sequence: 1, channels: C)
        let scale = 1 / Float(D).squareRoot()
        for (l, block) in model.blocks.enumerated() {
            norm(block.norm1, out: normOut, inp: x)
            for module in block.qkv { module.forward(out: qkv, outStride: W, inp: normOut, rows: 1) }
            model.rotary?.rotate(qkv, position: t, heads: H + KV, inverse: false)
            let keys = keyCache[l].base, values = valueCache[l].base
            (keys + t * KV * D).update(from: qkv + H * D, count: KV * D)
            (values + t * KV * D).update(from: qkv + (H + KV) * D, count: KV * D)
            for h in 0..<H {
                let g = h / (H / KV)
                let q = qkv + h * D
                var maximum = -Float.infinity
                for j in 0...t {
                    let k = keys + j * KV * D + g * D
                    var dot: Float = 0
                    for d in 0..<D { dot += q[d] * k[d] }
                    scores[j] = dot * scale
                    maximum = max(maximum, scores[j])
                }
                var sum: Float = 0
                for j in 0...t { scores[j] = expf(scores[j] - maximum); sum += scores[j] }
                let out = attention + h * D
                out.update(repeating: 0, count: D)
                for j in 0...t {
                    let p = scores[j] / sum, v = values + j * KV * D + g * D
                    for d in 0..<D { out[d] += p * v[d] }
                }
            }
            block.attentionOutput.forward(out: middle, outStride: C, inp: attention, rows: 1)
            for c in 0..<C { middle[c] += x[c] }
            norm(block.norm2, out: normOut, inp: middle)
            switch block.feedForward {
            case .gelu(let fc, let projection):
                fc.forward(out: mlpA, outStride: I, inp: normOut, rows: 1)
                geluForward(out: mlpB, inp: mlpA, count: I)
                projection.forward(out: x, outStride: C, inp: mlpB, rows: 1)
            case .swiglu(let gate, let up, let down):
                gate.forward(out: mlpA, outStride: I, inp: normOut, rows: 1)
                up.forward(out: mlpB, outStride: I, inp: normOut, rows: 1)
                swigluForward(out: mlpC, gate: mlpA, up: mlpB, count: I)
                down.forward(out: x, outStride: C, inp: mlpC, rows: 1)
            case .experts(let moe):
                // one real row; the layer's own activation buffers serve as scratch here
                moe.forward(out: x, inp: normOut, batch: 1, sequence: 1, lengths: nil)
            }
            for c in 0..<C { x[c] += middle[c] }
        }
        norm(model.finalNorm, out: normOut, inp: x)
        model.head.forward(out: logits, outStride: config.vocabularySize, inp: normOut, rows: 1)
    }

    private func norm(_ parameters: NormParameters, out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>) {
        let C = model.config.hiddenSize, epsilon = Float(model.config.normEpsilon)
        if let bias = parameters.bias {
            layerNormForward(out: out, mean: stats, rstd: stats + 1, inp: inp, weight: parameters.weight,
                             bias: bias, rows: 1, channels: C, epsilon: epsilon)
        } else {
            rmsNormForward(out: out, rstd: stats, inp: inp, weight: parameters.weight, rows: 1, channels: C, epsilon: epsilon)
        }
    }

    /// Greedy argmax at temperature 0; otherwise temperature + nucleus (top-p) sampling.
    func sample(_ logits: UnsafeBufferPointer<Float>, options: GenerationOptions, generator: inout SeededGenerator) -> Int {
        if options.temperature <= 0 {
            var best = 0
            for v in 1..<logits.count where logits[v] > logits[best] { best = v }
            return best
        }
        let maximum = logits.max() ?? 0
        var probabilities = logits.map { Double(expf(($0 - maximum) / options.temperature)) }
        let total = probabilities.reduce(0, +)
        for i in probabilities.indices { probabilities[i] /= total }
        let order = probabilities.indices.sorted { probabilities[$0] > probabilities[$1] }
        var kept: [Int] = [], mass = 0.0
        for index in order {
            kept.append(index)
            mass += probabilities[index]
            if mass >= Double(options.topP) { break }
        }
        var draw = generator.nextOpenUnit() * mass
        for index in kept {
            draw -= probabilities[index]
            if draw <= 0 { return index }
        }
        return kept.last!
    }
}
