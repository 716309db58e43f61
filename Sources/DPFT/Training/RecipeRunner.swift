import Foundation

/// Errors of a training run that are not errors of one input file.
public enum RunError: Error, CustomStringConvertible, Equatable {
    case batchLargerThanData(batchSize: Int, examples: Int)
    case nothingToResume(directory: String)
    case recipeChanged(directory: String, was: String, now: String)
    case budgetExhausted(epsilon: Double, target: Double)
    case noTrainableTensorMatches(pattern: String)
    case cannotCreateDirectory(path: String, reason: String)

    public var description: String {
        switch self {
        case .batchLargerThanData(let batchSize, let examples):
            return "training.batch_size = \(batchSize) exceeds the \(examples) training examples; lower it (q = batch_size / examples must be ≤ 1)."
        case .nothingToResume(let directory):
            return "\(directory): no checkpoint to resume from; run without --resume first."
        case .recipeChanged(let directory, let was, let now):
            return "\(directory) was trained with a different recipe (hash \(was.prefix(12))…, now \(now.prefix(12))…); resume needs the same recipe — use another output.directory for a new run."
        case .budgetExhausted(let epsilon, let target):
            return "the privacy budget is spent: ε = \(String(format: "%.3f", epsilon)) of target \(target); no further step fits."
        case .noTrainableTensorMatches(let pattern):
            return "adapter.trainable pattern \"\(pattern)\" matches no tensor of the model."
        case .cannotCreateDirectory(let path, let reason):
            return "\(path): cannot create the run directory: \(reason)."
        }
    }
}

/// What a finished (or budget-stopped) run reports.
public struct RunSummary: Sendable {
    public var steps: Int
    public var epsilon: Double?
    public var delta: Double?
    public var noiseMultiplier: Double?
    public var baseEvaluation: RunEvaluation?
    public var finalEvaluation: RunEvaluation?
    public var finalCheckpoint: String
    public var exportDirectory: String?
}

/// Loss on the eval split and, when its records have reference answers, greedy exact-match accuracy.
public struct RunEvaluation: Sendable, Codable {
    public var loss: Double
    public var perplexity: Double
    public var tokens: Int
    public var accuracy: Double?
    public var generated: Int
}

/// The training state saved in checkpoints' `/state` for `--resume`.
struct RunState: Codable {
    var step: Int
    var totalSteps: Int
    var recipeHash: String
    var noiseMultiplier: Double?
    var history: [MechanismSegment]
    var datasetSize: Int
    var optimizerSteps: Int
}

/// Runs a recipe end to end (DESIGN.md §1 data flow): recipe → data + tokenizer → Poisson
/// batches → model forward/backward → book-keeping engine → noise → optimizer → checkpoint
/// with its privacy ledger.
public final class RecipeRunner {
    public let recipe: Recipe
    public let resume: Bool
    private let log: (String) -> Void
    private let progress: ProgressReporter

    /// `log` receives whole lines (the resolved recipe, summaries, evaluations).
    public init(recipe: Recipe, resume: Bool = false, interactive: Bool = false, log: @escaping (String) -> Void) {
        self.recipe = recipe
        self.resume = resume
        self.log = log
        progress = ProgressReporter(interactive: interactive, log: log)
    }

    private var directory: URL { URL(fileURLWithPath: recipe.output.directory) }

    /// Checkpoints `step-N.h5` in the run directory, by step.
    static func checkpoints(in directory: URL) -> [(step: Int, url: URL)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.compactMap { name -> (Int, URL)? in
            guard name.hasPrefix("step-"), name.hasSuffix(".h5"),
                  let step = Int(name.dropFirst(5).dropLast(3)) else { return nil }
            return (step, directory.appendingPathComponent(name))
        }.sorted { $0.0 < $1.0 }
    }

    public func run() throws -> RunSummary {
        let recipeHash = recipe.hash
        log("recipe \(recipe.name) (sha256 \(recipeHash.prefix(12))…):")
        log(recipe.resolvedJSON)

        // Grouping strategies: the built-in ones and the recipe's plugins, loaded before anything
        // is read or written so that a bad plugin fails the run at once.
        let registry = try GroupingPluginLoader.registry(plugins: recipe.plugins)
        for path in recipe.plugins {
            let names = registry.entries.filter { $0.origin == .plugin(path: path) }.map(\.strategy.name)
            log("plugin \(path): \(names.isEmpty ? "(already loaded)" : names.joined(separator: ", "))")
        }

        // Model, adapters, tokenizer.
        var base = try Checkpoint.read(from: URL(fileURLWithPath: recipe.model.checkpoint))
        var resumeFrom: (state: RunState, checkpoint: Checkpoint)?
        if resume {
            guard let latest = Self.checkpoints(in: directory).last else {
                throw RunError.nothingToResume(directory: directory.path)
            }
            let checkpoint = try Checkpoint.read(from: latest.url)
            guard let text = checkpoint.trainingState,
                  let state = try? JSONDecoder().decode(RunState.self, from: Data(text.utf8)) else {
                throw CheckpointError.missingAttribute(path: latest.url.path, name: "/state json")
            }
            guard state.recipeHash == recipeHash else {
                throw RunError.recipeChanged(directory: directory.path, was: state.recipeHash, now: recipeHash)
            }
            resumeFrom = (state, checkpoint)
            log("resuming from \(latest.url.path) at step \(state.step)")
        }
        let tokenizer: Tokenizer
        if let path = recipe.model.tokenizer {
            tokenizer = try Tokenizer(contentsOf: URL(fileURLWithPath: path))
        } else if let bytes = base.tokenizerModel {
            tokenizer = try Tokenizer(modelBytes: bytes, source: "\(recipe.model.checkpoint) (/tokenizer)")
        } else {
            throw DataError.needsTokenizer(path: recipe.model.checkpoint, line: 0)
        }
        base.tokenizerModel = tokenizer.modelBytes

        var lora: LoRAConfig?
        var trainable: TrainableSelection?
        switch recipe.adapter {
        case .none:
            trainable = .all
        case .lora(let config):
            lora = config
            _ = try base.config.adapterSpecs(for: config)
            trainable = .adapters
        case .patterns(let patterns):
            let names = base.config.parameterSpecs.map(\.name)
            var selected = Set<String>()
            for pattern in patterns {
                let glob = try Glob(pattern)
                let matches = names.filter { glob.matches($0) }
                guard !matches.isEmpty else { throw RunError.noTrainableTensorMatches(pattern: pattern) }
                selected.formUnion(matches)
            }
            trainable = .names(selected)
        }

        // Data.
        let data = recipe.data
        let encoder = try data.exampleEncoder(tokenizer: tokenizer, maxPositions: base.config.maxPositions)
        let train = try TrainingData.load(path: data.train, recipe: data, encoder: encoder)
        log(train.summary(path: data.train))
        let evaluation = try data.eval.map {
            try TrainingData.load(path: $0, recipe: data, encoder: encoder, limit: recipe.training.evalExamples)
        }
        if let evaluation, let path = data.eval { log(evaluation.summary(path: path)) }

        let N = train.examples.count
        let training = recipe.training
        guard training.batchSize <= N else { throw RunError.batchLargerThanData(batchSize: training.batchSize, examples: N) }
        let sampleRate = Double(training.batchSize) / Double(N)
        let plannedSteps: Int
        switch training.length {
        case .steps(let steps): plannedSteps = steps
        case .epochs(let epochs): plannedSteps = try MechanismSegment(noiseMultiplier: 1, batchSize: training.batchSize,
                                                                      datasetSize: N, epochs: epochs).steps
        }

        let physical = training.physicalBatchSize
        let longest = max(train.examples.map(\.ids.count).max() ?? 1, evaluation?.examples.map(\.ids.count).max() ?? 1)
        let generationLength = min(base.config.maxPositions, longest + training.maxNewTokens)
        let model = try Transformer(checkpoint: resumeFrom?.checkpoint ?? base, lora: lora, trainable: trainable,
                                    maxBatchSize: max(physical, 1), maxSequenceLength: max(longest, generationLength),
                                    adapterSeed: training.seed)
        log("model: \(base.config.modelType.rawValue), \(model.trainableNames.count) trainable tensors, "
            + "\(model.gradients.count) trainable parameters" + (lora.map { " (LoRA r=\($0.rank) on \($0.targets.joined(separator: ", ")))" } ?? ""))

        // Privacy.
        var engine: PrivateGradient?
        var noiseMultiplier: Double?
        var totalSteps = plannedSteps
        var history = resumeFrom?.state.history ?? []
        if let privacy = recipe.privacy {
            let (strategy, options) = privacy.strategy
            let grouping = try registry.resolve(strategy: strategy, options: options,
                                                                parameters: model.trainableParameterInfos,
                                                                threshold: privacy.threshold)
            engine = try PrivateGradient(model: model, grouping: grouping, clipping: privacy.clipping)
            if let stored = resumeFrom?.state {
                noiseMultiplier = stored.noiseMultiplier
                totalSteps = stored.totalSteps
            } else {
                switch privacy.noise {
                case .noiseMultiplier(let sigma):
                    noiseMultiplier = sigma
                case .targetEpsilon(let target):
                    progress.note("calibrating σ for ε = \(target) at δ = \(privacy.delta), q = \(String(format: "%.4g", sampleRate)), \(plannedSteps) steps (\(privacy.accountant.rawValue))…")
                    let calibration = try privacy.accountant.noiseMultiplier(targetEpsilon: target, delta: privacy.delta,
                                                                            sampleRate: sampleRate, steps: plannedSteps)
                    noiseMultiplier = calibration.noiseMultiplier
                }
            }
            log("privacy: σ = \(String(format: "%.4f", noiseMultiplier!)), q = \(String(format: "%.5f", sampleRate)) "
                + "(expected batch \(training.batchSize) of \(N)), δ = \(privacy.delta), \(privacy.clipping.name) clipping, "
                + "\(grouping.strategy) grouping: \(grouping.groups.count) groups, total sensitivity \(String(format: "%.4g", grouping.totalSensitivity))"
                + (privacy.noiseSeed != nil ? ", SEEDED noise (reproducible; keep the seed secret)" : ", secure noise"))
        } else {
            log("privacy: none — this run is NOT differentially private")
        }

        // Optimizer and schedule.
        let optimizerSection = training.optimizer
        let kind: Optimizer.Kind
        switch optimizerSection.name {
        case .sgd: kind = .sgd(momentum: optimizerSection.momentum, weightDecay: optimizerSection.weightDecay)
        case .adam: kind = .adam(beta1: optimizerSection.beta1, beta2: optimizerSection.beta2,
                                 epsilon: optimizerSection.epsilon, weightDecay: optimizerSection.weightDecay)
        case .adamw: kind = .adamW(beta1: optimizerSection.beta1, beta2: optimizerSection.beta2,
                                   epsilon: optimizerSection.epsilon, weightDecay: optimizerSection.weightDecay)
        }
        let optimizer = try Optimizer(kind: kind, model: model)
        let schedule = try LearningRateSchedule(
            kind: LearningRateSchedule.Kind(rawValue: training.schedule.name.rawValue)!,
            peakLearningRate: optimizerSection.learningRate, minimumLearningRate: training.schedule.minLearningRate,
            warmupSteps: training.schedule.warmupSteps)
        if let resumeFrom {
            try optimizer.load(state: resumeFrom.checkpoint.optimizerState, step: resumeFrom.state.optimizerSteps)
        }

        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw RunError.cannotCreateDirectory(path: directory.path, reason: error.localizedDescription)
        }
        try writeAtomically(to: directory.appendingPathComponent("recipe.json")) { try Data(recipe.resolvedJSON.utf8).write(to: $0) }
        let metricsURL = directory.appendingPathComponent("metrics.jsonl")
        if !resume { try? FileManager.default.removeItem(at: metricsURL) }
        let metrics = try MetricsWriter(url: metricsURL)

        // Evaluation of the starting point.
        var baseEvaluation: RunEvaluation?
        if let evaluation, resumeFrom == nil {
            baseEvaluation = try evaluate(model: model, data: evaluation, encoder: encoder, label: "base")
            metrics.write(["step": 0, "eval": baseEvaluation!.dictionary])
        }

        // Privacy bookkeeping helpers.
        let delta = recipe.privacy?.delta
        func spent(_ history: [MechanismSegment]) throws -> PrivacySpent? {
            guard let privacy = recipe.privacy, let sigma = noiseMultiplier, sigma > 0 else { return nil }
            return try privacy.accountant.epsilon(history: history, delta: privacy.delta)
        }
        func appendStep() {
            guard let sigma = noiseMultiplier else { return }
            if let last = history.last, last.noiseMultiplier == sigma, last.sampleRate == sampleRate {
                history[history.count - 1].steps += 1
            } else {
                history.append(MechanismSegment(noiseMultiplier: sigma, sampleRate: sampleRate, steps: 1))
            }
        }
        // Steps that fit in the budget: stop before it would be exceeded.
        if let privacy = recipe.privacy, let target = privacy.targetEpsilon, let sigma = noiseMultiplier, sigma > 0 {
            let done = history.reduce(0) { $0 + $1.steps }
            let fits = try privacy.accountant.maxSteps(epsilonBudget: target, delta: privacy.delta, noiseMultiplier: sigma,
                                                       sampleRate: sampleRate, history: history, limit: totalSteps - done + 1)
            if done + fits < totalSteps {
                log("note: only \(fits) more steps fit in ε = \(target); stopping at step \(done + fits) of \(totalSteps)")
                totalSteps = done + fits
            }
        }

        // The loop.
        let sampler = PoissonSampler(datasetSize: N, sampleRate: sampleRate)
        let noiseSeed = recipe.privacy?.noiseSeed
        var secureSource = NoiseSource.secure()
        var shuffled: [Int] = []
        var step = resumeFrom?.state.step ?? 0
        var lastCheckpoint: URL?
        var currentEpsilon = try spent(history)?.epsilon
        progress.start(total: totalSteps, from: step)
        while step < totalSteps {
            let learningRate = Float(schedule.learningRate(step: step, totalSteps: totalSteps))
            model.zeroGradients()
            var loss = 0.0, tokens = 0, examplesInBatch = 0
            if let engine {
                var batchSource = noiseSeed.map { NoiseSource.seeded($0, purpose: "sample", index: UInt64(step)) } ?? secureSource
                // Micro-batches of similar lengths pad less; the clipped sum does not depend on order.
                let batch = sampler.sample(using: &batchSource).sorted { train.examples[$0].ids.count < train.examples[$1].ids.count }
                if noiseSeed == nil { secureSource = batchSource }
                examplesInBatch = batch.count
                var start = 0
                while start < batch.count {
                    let chunk = batch[start..<min(start + physical, batch.count)]
                    let microBatch = TokenBatch(examples: chunk.map { (train.examples[$0].ids, train.examples[$0].labels) })
                    let microLoss = try engine.accumulate(microBatch)
                    loss += Double(microLoss) * Double(chunk.count)
                    tokens += chunk.reduce(0) { $0 + train.examples[$1].ids.count }
                    start += chunk.count
                }
                var noise = noiseSeed.map { NoiseSource.seeded($0, purpose: "noise", index: UInt64(step)) } ?? secureSource
                try engine.finishLogicalBatch(noiseMultiplier: noiseMultiplier ?? 0, expectedBatchSize: sampler.expectedBatchSize,
                                              noise: &noise)
                if noiseSeed == nil { secureSource = noise }
                appendStep()
            } else {
                // Non-private: shuffled epochs of fixed-size batches (seeded).
                let perEpoch = max(N / training.batchSize, 1)
                let epoch = step / perEpoch, position = step % perEpoch
                if shuffled.isEmpty || position == 0 {
                    shuffled = Self.bucketedOrder(lengths: train.examples.map(\.ids.count), batchSize: training.batchSize,
                                                  seed: training.seed &+ UInt64(epoch) &* 0x9E37_79B9)
                }
                let batch = shuffled[(position * training.batchSize)..<min((position + 1) * training.batchSize, N)]
                examplesInBatch = batch.count
                let indices = Array(batch)
                // Each micro-batch adds Σ_i ∇L_i; one division by the logical batch size at the
                // end gives the mean over the logical batch whatever the micro-batch sizes.
                model.sumsPerExampleLosses = true
                defer { model.sumsPerExampleLosses = false }
                var start = 0
                while start < indices.count {
                    let chunk = indices[start..<min(start + physical, indices.count)]
                    try model.forward(TokenBatch(examples: chunk.map { (train.examples[$0].ids, train.examples[$0].labels) }))
                    loss += Double(model.perExampleLosses.reduce(0, +))
                    model.backward()
                    tokens += chunk.reduce(0) { $0 + train.examples[$1].ids.count }
                    start += chunk.count
                }
                scaleGradients(model, by: 1 / Float(max(indices.count, 1)))
            }
            optimizer.step(model: model, learningRate: learningRate)
            step += 1
            let meanLoss = examplesInBatch > 0 ? loss / Double(examplesInBatch) : .nan
            if recipe.privacy != nil && (step % 10 == 0 || step == totalSteps) { currentEpsilon = try spent(history)?.epsilon }
            var line: [String: Any] = ["step": step, "loss": meanLoss.isFinite ? meanLoss : NSNull(),
                                       "examples": examplesInBatch, "tokens": tokens, "learning_rate": Double(learningRate)]
            if let currentEpsilon { line["epsilon"] = currentEpsilon }
            progress.update(step: step, loss: meanLoss, epsilon: currentEpsilon, tokens: tokens)

            let isLast = step == totalSteps
            if training.evalEvery > 0, step % training.evalEvery == 0, !isLast, let evaluation {
                let result = try evaluate(model: model, data: evaluation, encoder: encoder, label: "step \(step)")
                line["eval"] = result.dictionary
            }
            metrics.write(line)
            if isLast || (recipe.output.checkpointEvery > 0 && step % recipe.output.checkpointEvery == 0) {
                let spentNow = try spent(history)
                currentEpsilon = spentNow?.epsilon
                let state = RunState(step: step, totalSteps: totalSteps, recipeHash: recipeHash, noiseMultiplier: noiseMultiplier,
                                     history: history, datasetSize: N, optimizerSteps: optimizer.stepCount)
                lastCheckpoint = try saveCheckpoint(model: model, base: base, state: state, optimizer: optimizer,
                                                    engine: engine, spent: spentNow, sampleRate: sampleRate, recipeHash: recipeHash,
                                                    datasetSize: N, expectedBatchSize: sampler.expectedBatchSize, step: step)
            }
        }
        progress.finish()

        let finalURL = directory.appendingPathComponent("final.h5")
        if let lastCheckpoint {
            try? FileManager.default.removeItem(at: finalURL)
            try FileManager.default.copyItem(at: lastCheckpoint, to: finalURL)
        }
        var finalEvaluation: RunEvaluation?
        if let evaluation {
            finalEvaluation = try evaluate(model: model, data: evaluation, encoder: encoder, label: "final")
            metrics.write(["step": step, "eval": finalEvaluation!.dictionary])
        }
        var exportDirectory: String?
        if let export = recipe.output.export {
            var checkpoint = try Checkpoint.read(from: finalURL)
            if export.mergeLoRA { try checkpoint.mergeAdapters() }
            let target = directory.appendingPathComponent("export")
            try HuggingFace.export(checkpoint, to: target, format: export.format)
            exportDirectory = target.path
            log("exported to \(target.path) (\(export.format.rawValue)\(export.mergeLoRA ? ", LoRA merged" : ""))")
        }
        let finalSpent = try spent(history)
        if let finalSpent, let delta {
            log(String(format: "privacy spent: ε = %.4f at δ = %g over %d steps (%@ accountant)", finalSpent.epsilon, delta,
                       history.reduce(0) { $0 + $1.steps }, finalSpent.accountant.rawValue))
        }
        if let baseEvaluation, let finalEvaluation {
            log("eval  base: \(baseEvaluation.line)")
            log("eval tuned: \(finalEvaluation.line)")
        }
        return RunSummary(steps: step, epsilon: finalSpent?.epsilon, delta: delta, noiseMultiplier: noiseMultiplier,
                          baseEvaluation: baseEvaluation, finalEvaluation: finalEvaluation, finalCheckpoint: finalURL.path,
                          exportDirectory: exportDirectory)
    }

    /// A shuffled epoch whose batches hold examples of similar length (less padding): shuffle,
    /// sort runs of 16 batches by length, cut into batches, shuffle the batches.
    static func bucketedOrder(lengths: [Int], batchSize: Int, seed: UInt64) -> [Int] {
        var generator = SeededGenerator(seed: seed)
        let shuffled = Array(lengths.indices).shuffled(using: &generator)
        let run = batchSize * 16
        var batches: [[Int]] = []
        for start in stride(from: 0, to: shuffled.count, by: run) {
            let sorted = shuffled[start..<min(start + run, shuffled.count)].sorted { lengths[$0] < lengths[$1] }
            for batchStart in stride(from: 0, to: sorted.count, by: batchSize) {
                batches.append(Array(sorted[(sorted.startIndex + batchStart)..<min(sorted.startIndex + batchStart + batchSize, sorted.endIndex)]))
            }
        }
        return batches.shuffled(using: &generator).flatMap { $0 }
    }

    private func scaleGradients(_ model: Transformer, by factor: Float) {
        guard factor != 1 else { return }
        let base = model.gradients.storage.base
        for i in 0..<model.gradients.count { base[i] *= factor }
    }

    private func saveCheckpoint(model: Transformer, base: Checkpoint, state: RunState, optimizer: Optimizer,
                                engine: PrivateGradient?, spent: PrivacySpent?, sampleRate: Double, recipeHash: String,
                                datasetSize: Int, expectedBatchSize: Double, step: Int) throws -> URL {
        var checkpoint = model.checkpoint(base: base)
        checkpoint.optimizerState = optimizer.state
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        checkpoint.trainingState = String(decoding: try encoder.encode(state), as: UTF8.self)
        if let privacy = recipe.privacy, let engine {
            let ledger = PrivacyLedger(
                accountant: privacy.accountant.rawValue, epsilon: spent?.epsilon ?? .infinity, delta: privacy.delta,
                targetEpsilon: privacy.targetEpsilon, noiseMultiplier: state.noiseMultiplier ?? 0, sampleRate: sampleRate,
                steps: state.history.reduce(0) { $0 + $1.steps }, history: state.history, clipping: privacy.clipping,
                threshold: privacy.threshold, grouping: engine.grouping, datasetSize: datasetSize,
                expectedBatchSize: expectedBatchSize, recipeHash: recipeHash, noiseSeed: privacy.noiseSeed)
            checkpoint.privacyLedger = ledger.json
        }
        let url = directory.appendingPathComponent("step-\(step).h5")
        try checkpoint.write(to: url)
        return url
    }

    /// Eval loss over the split, plus greedy exact-match accuracy on up to `generate_examples`
    /// records that have reference answers.
    private func evaluate(model: Transformer, data: TrainingData, encoder: ExampleEncoder, label: String) throws -> RunEvaluation {
        let physical = recipe.training.physicalBatchSize
        let result = try Evaluation.evaluate(model, examples: data.examples, batchSize: physical)
        var correct = 0, generated = 0
        let limit = recipe.training.generateExamples
        if limit > 0 {
            let generator = try Generator(model: model, maxLength: model.maxSequenceLength)
            let eos = encoder.tokenizer.eosId
            for record in data.records where generated < limit {
                let (prompt, reference) = try encoder.promptForGeneration(record)
                guard let reference, prompt.count < model.maxSequenceLength else { continue }
                let tokens = try generator.generate(prompt: prompt, options: GenerationOptions(
                    maxNewTokens: min(recipe.training.maxNewTokens, model.maxSequenceLength - prompt.count),
                    stopToken: eos >= 0 ? eos : nil))
                let text = try encoder.tokenizer.decode(tokens.filter { $0 != eos })
                if ExampleEncoder.normalizeAnswer(text) == ExampleEncoder.normalizeAnswer(reference) { correct += 1 }
                generated += 1
            }
        }
        let evaluation = RunEvaluation(loss: result.loss, perplexity: result.perplexity, tokens: result.tokens,
                                       accuracy: generated > 0 ? Double(correct) / Double(generated) : nil, generated: generated)
        progress.note("eval \(label): \(evaluation.line)")
        return evaluation
    }
}

extension RunEvaluation {
    var line: String {
        var text = String(format: "loss %.4f, perplexity %.2f", loss, perplexity)
        if let accuracy { text += String(format: ", exact match %.1f%% (%d generated)", accuracy * 100, generated) }
        return text
    }

    var dictionary: [String: Any] {
        var object: [String: Any] = ["loss": loss, "perplexity": perplexity, "tokens": tokens]
        if let accuracy { object["accuracy"] = accuracy; object["generated"] = generated }
        return object
    }
}

/// Appends JSON lines to metrics.jsonl.
final class MetricsWriter {
    private let handle: FileHandle

    init(url: URL) throws {
        if !FileManager.default.fileExists(atPath: url.path) {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        guard let handle = FileHandle(forWritingAtPath: url.path) else {
            throw CheckpointError.writeFailed(path: url.path, reason: "cannot open for appending")
        }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    func write(_ object: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        handle.write(data + Data("\n".utf8))
    }

    deinit { try? handle.close() }
}
