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
        let model = try makeModel(config: config, lora: lora, batchSize: batchSize, sequenceLength: sequenceLength,
                                  recomputesActivations: recomputesActivations)
        let examples = randomExamples(config: config, batchSize: batchSize, sequenceLength: sequenceLength)
        let method = try makeMethod(model: model, batchSize: batchSize, variant: Variant(grouping: grouping, clipping: clipping),
                                    groupingOptions: groupingOptions, registry: registry)
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

    /// One configuration of `compare`: private with `grouping` and `clipping`, or non-private
    /// when `grouping` is nil.
    public struct Variant: Sendable, Equatable {
        public var grouping: String?
        public var clipping: ClippingFunction
        public init(grouping: String?, clipping: ClippingFunction = .abadi) {
            self.grouping = grouping
            self.clipping = clipping
        }
    }

    /// Step times of several configurations taken in turn on one model (`compare`).
    public struct Comparison: Sendable {
        /// The non-private configuration first, then the private ones as asked.
        public var variants: [Variant]
        /// seconds[round][variant]: one step of every variant per timed round.
        public var seconds: [[Double]]

        /// Per timed round, variant v's step over the non-private step of the same round.
        public func ratios(_ v: Int) -> [Double] { seconds.map { $0[v] / $0[0] } }
        /// The median of `ratios(v)`.
        public func medianRatio(_ v: Int) -> Double {
            let sorted = ratios(v).sorted()
            return sorted[sorted.count / 2]
        }
        /// The median step seconds of variant v.
        public func medianSeconds(_ v: Int) -> Double {
            let sorted = seconds.map { $0[v] }.sorted()
            return sorted[sorted.count / 2]
        }
    }

    /// Times private steps against the non-private step in one process on one model: each
    /// round runs one `TrainingStep` of every configuration (non-private first, then
    /// `privateVariants`; every other round in reverse order), so a step and its non-private
    /// baseline are seconds apart. On a shared machine whose speed drifts by tens of per cent
    /// between processes, the median over rounds of each round's own ratio is far steadier
    /// than a ratio of two processes' medians. `warmup` untimed rounds come first. The steps
    /// share the parameters (each SGD step moves them by learning rate 1e-4) and the random
    /// examples of `run`.
    public static func compare(config: ModelConfig, batchSize: Int, sequenceLength: Int, rounds: Int, warmup: Int = 1,
                               lora: LoRAConfig? = nil, privateVariants: [Variant],
                               registry: GroupingRegistry = .builtIn) throws -> Comparison {
        precondition(rounds > 0 && privateVariants.allSatisfy { $0.grouping != nil }, "the caller validates the variants")
        let model = try makeModel(config: config, lora: lora, batchSize: batchSize, sequenceLength: sequenceLength,
                                  recomputesActivations: false)
        let examples = randomExamples(config: config, batchSize: batchSize, sequenceLength: sequenceLength)
        let variants = [Variant(grouping: nil)] + privateVariants
        let trainingSteps = try variants.map { variant in
            TrainingStep(model: model, optimizer: try Optimizer(kind: .sgd(), model: model), examples: examples,
                         physicalBatchSize: batchSize,
                         method: try makeMethod(model: model, batchSize: batchSize, variant: variant,
                                                groupingOptions: [:], registry: registry))
        }
        var seconds: [[Double]] = []
        for round in 0..<(warmup + rounds) {
            var times = [Double](repeating: 0, count: variants.count)
            let order = round % 2 == 0 ? Array(variants.indices) : variants.indices.reversed()
            for v in order {
                let start = DispatchTime.now().uptimeNanoseconds
                try trainingSteps[v].run(step: round, learningRate: 1e-4)
                times[v] = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            }
            if round >= warmup { seconds.append(times) }
        }
        return Comparison(variants: variants, seconds: seconds)
    }

    /// A random model of `config` sized for the batch. The checkpoint is handed over, not
    /// kept: the model's store then holds the only copy.
    private static func makeModel(config: ModelConfig, lora: LoRAConfig?, batchSize: Int, sequenceLength: Int,
                                  recomputesActivations: Bool) throws -> Transformer {
        try Transformer(checkpoint: Checkpoint.initialized(config: config, seed: 1), lora: lora, maxBatchSize: batchSize,
                        maxSequenceLength: sequenceLength, adapterSeed: 2, recomputesActivations: recomputesActivations)
    }

    /// `batchSize` examples of `sequenceLength` random tokens (seeded).
    private static func randomExamples(config: ModelConfig, batchSize: Int, sequenceLength: Int) -> [TokenizedExample] {
        var generator = SeededGenerator(seed: 3)
        return (0..<batchSize).map { _ in
            TokenizedExample(ids: (0..<sequenceLength).map { _ in Int(generator.next() % UInt64(config.vocabularySize)) },
                             labels: nil)
        }
    }

    /// Non-private: one shuffled batch of all the examples. Private: Poisson sampling at q = 1,
    /// book-keeping with the variant's grouping (total threshold 1) and clipping, σ = 1 from
    /// the secure generator.
    private static func makeMethod(model: Transformer, batchSize: Int, variant: Variant, groupingOptions: GroupingOptions,
                                   registry: GroupingRegistry) throws -> TrainingStep.Method {
        guard let grouping = variant.grouping else { return .shuffled(batchSize: batchSize, seed: 0) }
        let engine = try PrivateGradient(model: model, grouping: registry.resolve(
            strategy: grouping, options: groupingOptions, parameters: model.trainableParameterInfos, threshold: 1),
            clipping: variant.clipping)
        return .poisson(engine: engine, sampleRate: 1, noiseMultiplier: 1, noiseSeed: nil)
    }
}
