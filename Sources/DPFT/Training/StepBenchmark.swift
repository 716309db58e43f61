import Foundation

/// Times non-private training steps (forward + backward + SGD update) on random tokens.
public enum StepBenchmark {
    public struct Result: Sendable {
        public var secondsPerStep: [Double]
        public var tokensPerStep: Int
        public var trainableParameters: Int
        /// Largest bytes of book copies held during a private step (0 for non-private).
        public var peakBookBytes: Int = 0
        public var medianSeconds: Double {
            let sorted = secondsPerStep.sorted()
            return sorted[sorted.count / 2]
        }
        public var tokensPerSecond: Double { Double(tokensPerStep) / medianSeconds }
    }

    /// Builds a random model from `config`, then runs `warmup` untimed and `steps` timed steps.
    /// With `grouping`, each step is private: book-keeping clipping with that strategy (total
    /// threshold 1), noise σ = 1 from the secure generator, division by the batch size; the
    /// strategy is looked up in `registry` and given `groupingOptions`.
    public static func run(config: ModelConfig, batchSize: Int, sequenceLength: Int, steps: Int,
                           warmup: Int = 1, lora: LoRAConfig? = nil, grouping: String? = nil,
                           groupingOptions: GroupingOptions = [:], registry: GroupingRegistry = .builtIn,
                           clipping: ClippingFunction = .abadi) throws -> Result {
        let checkpoint = Checkpoint.initialized(config: config, seed: 1)
        let model = try Transformer(checkpoint: checkpoint, lora: lora, maxBatchSize: batchSize,
                                    maxSequenceLength: sequenceLength, adapterSeed: 2)
        var generator = SeededGenerator(seed: 3)
        let examples = (0..<batchSize).map { _ in
            (ids: (0..<sequenceLength).map { _ in Int(generator.next() % UInt64(config.vocabularySize)) },
             labels: [Int]?.none)
        }
        let batch = TokenBatch(examples: examples, sequenceLength: sequenceLength)
        let optimizer = try Optimizer(kind: .sgd(), model: model)
        let engine = try grouping.map { name in
            try PrivateGradient(model: model, grouping: registry.resolve(
                strategy: name, options: groupingOptions, parameters: model.trainableParameterInfos, threshold: 1),
                clipping: clipping)
        }
        var noise = NoiseSource.secure()
        var times: [Double] = []
        for step in 0..<(warmup + steps) {
            let start = DispatchTime.now().uptimeNanoseconds
            model.zeroGradients()
            if let engine {
                try engine.accumulate(batch)
                try engine.finishLogicalBatch(noiseMultiplier: 1, expectedBatchSize: Double(batchSize), noise: &noise)
            } else {
                try model.forward(batch)
                model.backward()
            }
            optimizer.step(model: model, learningRate: 1e-4)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if step >= warmup { times.append(seconds) }
        }
        return Result(secondsPerStep: times, tokensPerStep: batchSize * sequenceLength,
                      trainableParameters: model.gradients.count, peakBookBytes: engine?.peakBookBytes ?? 0)
    }
}
