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

/// Autoregressive decoding for one sequence, with a key/value cache (the prompt runs through
/// the model once, then each new token costs one row: `Transformer.decode`) or without (the
/// whole prefix is re-run each step with `Transformer.forward` — the reference the cache is
/// tested against).
public final class Generator {
    public let model: Transformer
    /// Longest prompt + continuation this generator holds.
    public let maxLength: Int
    private let cache: KeyValueCache

    /// `model` must have been built with maxBatchSize ≥ 1 and maxSequenceLength ≥ maxLength.
    public init(model: Transformer, maxLength: Int) throws {
        self.model = model
        self.maxLength = maxLength
        cache = try KeyValueCache(model: model, capacity: maxLength)
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
        var pending = prompt  // tokens not yet in the cache
        cache.reset()
        while sequence.count < total {
            let logits: UnsafeBufferPointer<Float>
            if useCache {
                logits = try model.decode(pending, cache: cache)
            } else {
                try model.forward(TokenBatch(examples: [(ids: sequence, labels: nil)]))
                logits = model.logits(example: 0, position: sequence.count - 1)
            }
            let next = sample(logits, options: options, generator: &generator)
            sequence.append(next)
            produced.append(next)
            pending = [next]
            if next == options.stopToken { break }
        }
        return produced
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
