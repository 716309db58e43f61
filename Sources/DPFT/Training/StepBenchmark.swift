import Foundation

/// Times training steps — the runner's own `TrainingStep` — on random tokens.
public enum StepBenchmark {
    public struct Result: Sendable {
        public var secondsPerStep: [Double]
        public var tokensPerStep: Int
        public var trainableParameters: Int
        /// Largest bytes of book copies held during a private step (0 for non-private).
        public var peakBookBytes: Int = 0
        /// Processes (ranks) that shared each step.
        public var ranks = 1
        /// Per timed step on rank 0: gradient bytes reduced plus broadcast, and the seconds spent
        /// in those calls (0 for one process).
        public var gradientBytesPerStep = 0
        public var gradientSecondsPerStep = 0.0
        /// Per timed private step, the seconds its noise took (inside that step; empty when
        /// non-private or on ranks other than 0).
        public var noiseSeconds: [Double] = []
        /// The median over timed steps of noise seconds / step seconds, measured in the same step.
        public var medianNoiseShare: Double? {
            guard noiseSeconds.count == secondsPerStep.count, !noiseSeconds.isEmpty else { return nil }
            let shares = zip(noiseSeconds, secondsPerStep).map { $0 / $1 }.sorted()
            return shares[shares.count / 2]
        }
        public var medianSeconds: Double {
            let sorted = secondsPerStep.sorted()
            return sorted[sorted.count / 2]
        }
        public var tokensPerSecond: Double { Double(tokensPerStep) / medianSeconds }
    }

    /// Builds a random model from `config` and `batchSize` random examples of `sequenceLength`
    /// tokens, then runs `warmup` untimed and `steps` timed `TrainingStep`s (SGD, learning rate
    /// 1e-4), each over all the examples in one micro-batch. Non-private by default; with
    /// `grouping`, private as in a run: Poisson sampling at q = 1 (every example, expected
    /// batch B), book-keeping clipping with that strategy (total threshold 1, looked up in
    /// `registry` with `groupingOptions`), noise σ = 1 from the secure generator, division by B.
    /// `recomputesActivations`: the model recomputes its blocks' activations in the backward.
    public static func run(config: ModelConfig, batchSize: Int, sequenceLength: Int, steps: Int,
                           warmup: Int = 1, lora: LoRAConfig? = nil, grouping: String? = nil,
                           groupingOptions: GroupingOptions = [:], registry: GroupingRegistry = .builtIn,
                           clipping: ClippingFunction = .abadi, communicator: Communicator = .single,
                           recomputesActivations: Bool = false) throws -> Result {
        // The checkpoint is handed over, not kept: the model's store then holds the only copy.
        let model = try Transformer(checkpoint: Checkpoint.initialized(config: config, seed: 1), lora: lora, maxBatchSize: batchSize,
                                    maxSequenceLength: sequenceLength, adapterSeed: 2,
                                    recomputesActivations: recomputesActivations)
        var generator = SeededGenerator(seed: 3)
        let examples = (0..<batchSize).map { _ in
            TokenizedExample(ids: (0..<sequenceLength).map { _ in Int(generator.next() % UInt64(config.vocabularySize)) },
                             labels: nil)
        }
        let method: TrainingStep.Method
        if let grouping {
            let engine = try PrivateGradient(model: model, grouping: registry.resolve(
                strategy: grouping, options: groupingOptions, parameters: model.trainableParameterInfos, threshold: 1),
                clipping: clipping)
            method = .poisson(engine: engine, sampleRate: 1, noiseMultiplier: 1, noiseSeed: nil)
        } else {
            method = .shuffled(batchSize: batchSize, seed: 0)
        }
        let trainingStep = TrainingStep(model: model, optimizer: try Optimizer(kind: .sgd(), model: model),
                                        examples: examples, physicalBatchSize: batchSize, method: method,
                                        communicator: communicator)
        var times: [Double] = [], noiseTimes: [Double] = []
        var bytesBefore = 0, secondsBefore = 0.0
        for step in 0..<(warmup + steps) {
            if step == warmup { (bytesBefore, secondsBefore) = (communicator.gradientBytesMoved, communicator.gradientSeconds) }
            communicator.barrier()  // every rank starts the step together
            let start = DispatchTime.now().uptimeNanoseconds
            try trainingStep.run(step: step, learningRate: 1e-4)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if step >= warmup { times.append(seconds) }
            if step >= warmup, case .poisson(let engine, _, _, _) = method, communicator.isRoot {
                noiseTimes.append(engine.lastNoiseSeconds)
            }
        }
        return Result(secondsPerStep: times, tokensPerStep: batchSize * sequenceLength,
                      trainableParameters: model.gradients.count, peakBookBytes: trainingStep.peakBookBytes,
                      ranks: communicator.size,
                      gradientBytesPerStep: (communicator.gradientBytesMoved - bytesBefore) / steps,
                      gradientSecondsPerStep: (communicator.gradientSeconds - secondsBefore) / Double(steps),
                      noiseSeconds: noiseTimes)
    }
}
