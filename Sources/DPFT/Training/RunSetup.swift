import Foundation

// The setup stages of `RecipeRunner.run()`, in the order it calls them. Each returns what it
// built; none writes a file (the run directory comes last, so a failing stage leaves nothing).

/// Which tensors train: LoRA adapters, every tensor, or those named by glob patterns.
struct AdapterChoice {
    var lora: LoRAConfig?
    var trainable: TrainableSelection
}

/// The data stage's result: the encoder, the splits, and the run length they imply.
struct RunData {
    let encoder: ExampleEncoder
    let train: TrainingData
    let evaluation: TrainingData?
    /// q = expected batch / N.
    let sampleRate: Double
    /// Steps the recipe asks for (`steps`, or `epochs` at q).
    let plannedSteps: Int
    /// N, the training examples.
    var datasetSize: Int { train.examples.count }
}

/// The privacy stage's result: the book-keeping engine and the budget the run starts with.
struct PrivacyPlan {
    let section: Recipe.PrivacySection
    let engine: PrivateGradient
    let budget: PrivacyBudget

    /// The ledger a checkpoint carries when `budget` (this plan's, advanced) has spent `spent`.
    func ledger(budget: PrivacyBudget, spent: PrivacySpent?, recipeHash: String, datasetSize: Int,
                worldSize: Int) -> PrivacyLedger {
        PrivacyLedger(accountant: section.accountant.rawValue, epsilon: spent?.epsilon ?? .infinity, delta: section.delta,
                      targetEpsilon: section.targetEpsilon, noiseMultiplier: budget.noiseMultiplier,
                      sampleRate: budget.sampleRate, steps: budget.stepsTaken, history: budget.history,
                      clipping: section.clipping, threshold: section.threshold, grouping: engine.grouping,
                      datasetSize: datasetSize,
                      expectedBatchSize: PoissonSampler(datasetSize: datasetSize, sampleRate: budget.sampleRate).expectedBatchSize,
                      recipeHash: recipeHash, noiseSeed: section.noiseSeed, worldSize: worldSize)
    }
}

/// Everything the setup stages built, handed to the training loop.
struct PreparedRun {
    let recipeHash: String
    let base: Checkpoint
    let data: RunData
    /// SHA-256 of the training file, stored in the resume state.
    let trainDataSHA256: String
    let model: Transformer
    let privacy: PrivacyPlan?
    let optimizer: Optimizer
    let schedule: LearningRateSchedule
    /// The locked run directory; nil on the ranks other than 0 of a data-parallel run, which
    /// write nothing.
    let directory: RunDirectory?
    let resumed: RunState?
}

extension RecipeRunner {
    /// Grouping strategies: the built-in ones and the recipe's plugins, loaded before anything
    /// is read or written so that a bad plugin fails the run at once.
    func setupPlugins() throws -> GroupingRegistry {
        let registry = try GroupingPluginLoader.registry(plugins: recipe.plugins)
        for path in recipe.plugins {
            let names = registry.entries.filter { $0.origin == .plugin(path: path) }.map(\.strategy.name)
            log("plugin \(path): \(names.isEmpty ? "(already loaded)" : names.joined(separator: ", "))")
        }
        return registry
    }

    /// With `--resume`: the newest checkpoint of the run directory, written by this recipe on
    /// the same training data (its SHA-256).
    func setupResume(recipeHash: String) throws -> ResumeState? {
        guard resume else { return nil }
        let resumed = try ResumeState.latest(in: URL(fileURLWithPath: recipe.output.directory), recipeHash: recipeHash,
                                             trainData: URL(fileURLWithPath: recipe.data.train))
        log("resuming from \(resumed.url.path) at step \(resumed.state.step)")
        return resumed
    }

    /// The recipe's tokenizer, else the base checkpoint's; stored into `base` so that every
    /// checkpoint of the run stands alone.
    func setupTokenizer(base: inout Checkpoint) throws -> Tokenizer {
        let tokenizer = try Self.tokenizer(of: recipe, base: base)
        base.store(tokenizer)
        return tokenizer
    }

    /// The tokenizer `recipe` trains with: its `model.tokenizer` file, else the one stored in
    /// its base checkpoint `base`.
    static func tokenizer(of recipe: Recipe, base: Checkpoint) throws -> Tokenizer {
        if let path = recipe.model.tokenizer { return try Tokenizer(contentsOf: URL(fileURLWithPath: path)) }
        guard let stored = try base.storedTokenizer(path: recipe.model.checkpoint) else {
            throw DataError.needsTokenizer(path: recipe.model.checkpoint, line: 0)
        }
        return stored
    }

    /// The adapter section: LoRA (targets checked against the model), none (full fine-tuning),
    /// or glob patterns, each of which must match a tensor.
    func setupAdapter(config: ModelConfig) throws -> AdapterChoice {
        switch recipe.adapter {
        case .none:
            return AdapterChoice(lora: nil, trainable: .all)
        case .lora(let lora):
            _ = try config.adapterSpecs(for: lora)
            return AdapterChoice(lora: lora, trainable: .adapters)
        case .patterns(let patterns):
            let names = config.parameterSpecs.map(\.name)
            var selected = Set<String>()
            for pattern in patterns {
                let glob = try Glob(pattern)
                let matches = names.filter { glob.matches($0) }
                guard !matches.isEmpty else { throw RunError.noTrainableTensorMatches(pattern: pattern) }
                selected.formUnion(matches)
            }
            return AdapterChoice(lora: nil, trainable: .names(selected))
        }
    }

    /// Reads and tokenizes the splits (the data section's rules; cut to min(max_length,
    /// positions); every token id checked against the model's vocab_size), then derives
    /// q = batch_size / N and the planned steps.
    func setupData(tokenizer: Tokenizer, config: ModelConfig) throws -> RunData {
        let data = recipe.data, training = recipe.training
        if let eval = data.eval, Self.sameFile(eval, data.train) { throw RunError.evalIsTrainData(path: eval) }
        let encoder = try data.exampleEncoder(tokenizer: tokenizer, maxPositions: config.maxPositions)
        let vocabulary = config.vocabularySize  // every id is checked here, before any file is written
        let train = try TrainingData.load(path: data.train, recipe: data, encoder: encoder, vocabularySize: vocabulary)
        log(train.summary(path: data.train))
        let evaluation = try data.eval.map {
            try TrainingData.load(path: $0, recipe: data, encoder: encoder, vocabularySize: vocabulary, limit: training.evalExamples)
        }
        if let evaluation, let path = data.eval {
            log(evaluation.summary(path: path))
            warnAboutOverlap(evaluation: evaluation.examples, train: train.examples)
        }

        let N = train.examples.count
        guard training.batchSize <= N else { throw RunError.batchLargerThanData(batchSize: training.batchSize, examples: N) }
        if let delta = recipe.privacy?.delta, delta >= 1 / Double(N) {
            throw RunError.deltaNotBelowOneOverN(delta: delta, examples: N)
        }
        let plannedSteps: Int
        switch training.length {
        case .steps(let steps): plannedSteps = steps
        case .epochs(let epochs): plannedSteps = try MechanismSegment(noiseMultiplier: 1, batchSize: training.batchSize,
                                                                      datasetSize: N, epochs: epochs).steps
        }
        return RunData(encoder: encoder, train: train, evaluation: evaluation,
                       sampleRate: Double(training.batchSize) / Double(N), plannedSteps: plannedSteps)
    }

    /// Whether two paths name one file (symbolic links and `..` resolved).
    static func sameFile(_ a: String, _ b: String) -> Bool {
        func canonical(_ path: String) -> String {
            URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path
        }
        return canonical(a) == canonical(b)
    }

    /// Eval examples whose tokens equal a training example's are not held out: their eval loss
    /// and accuracy flatter the model. Counted and reported, not refused (small data sets share
    /// short examples honestly).
    private func warnAboutOverlap(evaluation: [TokenizedExample], train: [TokenizedExample]) {
        let seen = Set(train.map(\.ids))
        let shared = evaluation.filter { seen.contains($0.ids) }.count
        guard shared > 0 else { return }
        log("warning: \(shared) of \(evaluation.count) eval examples also occur in the training data; "
            + "their eval scores are not held out")
    }

    /// The model from `checkpoint` (the base, or the resumed step), sized for the longest
    /// example or generation and for physical micro-batches.
    /// The model, built from `checkpoint`, which it consumes: the weights move into the
    /// model's store instead of being held twice while it loads.
    func setupModel(checkpoint: consuming Checkpoint, adapter: AdapterChoice, data: RunData) throws -> Transformer {
        let training = recipe.training, config = checkpoint.config
        let longest = max(data.train.examples.map(\.ids.count).max() ?? 1,
                          data.evaluation?.examples.map(\.ids.count).max() ?? 1)
        let generationLength = min(config.maxPositions, longest + training.maxNewTokens)
        let model = try Transformer(checkpoint: consume checkpoint, lora: adapter.lora, trainable: adapter.trainable,
                                    maxBatchSize: max(training.physicalBatchSize, 1),
                                    maxSequenceLength: max(longest, generationLength), adapterSeed: training.seed,
                                    recomputesActivations: training.recomputeActivations)
        log("model: \(config.modelType.rawValue), \(model.trainableNames.count) trainable tensors, "
            + "\(model.gradients.count) trainable parameters"
            + (adapter.lora.map { " (LoRA r=\($0.rank) on \($0.targets.joined(separator: ", ")))" } ?? "")
            + (model.recomputesActivations ? "; activations recomputed in the backward pass" : ""))
        return model
    }

    /// The privacy plan: the grouping resolved over the trainable tensors, the book-keeping
    /// engine, and the budget (σ calibrated for the target ε, or as given, or as resumed).
    /// Nil for a non-private run.
    func setupPrivacy(registry: GroupingRegistry, model: Transformer, data: RunData,
                      resumed: ResumeState?) throws -> PrivacyPlan? {
        guard let privacy = recipe.privacy else {
            log("privacy: none — this run is NOT differentially private")
            return nil
        }
        let strategy = privacy.strategy
        let grouping = try registry.resolve(strategy: strategy.name, options: strategy.options,
                                            parameters: model.trainableParameterInfos, threshold: privacy.threshold)
        let engine = try PrivateGradient(model: model, grouping: grouping, clipping: privacy.clipping)
        let budget = try setupBudget(privacy, data: data, resumed: resumed)
        try engine.checkNoiseMultiplier(budget.noiseMultiplier)
        log("privacy: σ = \(String(format: "%.4f", budget.noiseMultiplier)), q = \(String(format: "%.5f", data.sampleRate)) "
            + "(expected batch \(recipe.training.batchSize) of \(data.datasetSize)), δ = \(privacy.delta), \(privacy.clipping.name) clipping, "
            + "\(grouping.strategy) grouping: \(grouping.groups.count) groups, total sensitivity \(String(format: "%.4g", grouping.totalSensitivity))"
            + (privacy.noiseSeed != nil ? ", SEEDED noise (reproducible; keep the seed secret)" : ", secure noise"))
        return PrivacyPlan(section: privacy, engine: engine, budget: budget)
    }

    /// A resumed run continues its stored σ, total steps and history; a fresh one takes σ from
    /// the recipe or calibrates it for the target ε over the planned steps.
    private func setupBudget(_ privacy: Recipe.PrivacySection, data: RunData, resumed: ResumeState?) throws -> PrivacyBudget {
        func budget(_ sigma: Double, totalSteps: Int? = nil, history: [MechanismSegment] = []) -> PrivacyBudget {
            PrivacyBudget(accountant: privacy.accountant, delta: privacy.delta, targetEpsilon: privacy.targetEpsilon,
                          noiseMultiplier: sigma, sampleRate: data.sampleRate, plannedSteps: data.plannedSteps,
                          totalSteps: totalSteps, history: history)
        }
        if let resumed {
            guard let sigma = resumed.state.noiseMultiplier else {
                throw CheckpointError.missingAttribute(path: resumed.url.path, name: "/state noiseMultiplier")
            }
            return budget(sigma, totalSteps: resumed.state.totalSteps, history: resumed.state.history)
        }
        switch privacy.noise {
        case .noiseMultiplier(let sigma):
            // One step must be accountable before anything is written: a σ so small that the
            // accountant cannot represent its loss fails here, not after the first step.
            _ = try privacy.accountant.epsilon(
                history: [MechanismSegment(noiseMultiplier: sigma, sampleRate: data.sampleRate, steps: 1)],
                delta: privacy.delta)
            return budget(sigma)
        case .targetEpsilon(let target):
            progress.note("calibrating σ for ε = \(target) at δ = \(privacy.delta), q = \(String(format: "%.4g", data.sampleRate)), "
                          + "\(data.plannedSteps) steps (\(privacy.accountant.rawValue))…")
            let calibration = try privacy.accountant.noiseMultiplier(targetEpsilon: target, delta: privacy.delta,
                                                                    sampleRate: data.sampleRate, steps: data.plannedSteps)
            return budget(calibration.noiseMultiplier)
        }
    }

    /// The optimizer the recipe names (its state restored on resume) and the learning-rate schedule.
    func setupOptimizer(model: Transformer, resumed: ResumeState?) throws -> (Optimizer, LearningRateSchedule) {
        let section = recipe.training.optimizer, training = recipe.training
        let kind: Optimizer.Kind
        switch section.name {
        case .sgd: kind = .sgd(momentum: section.momentum, weightDecay: section.weightDecay)
        case .adam: kind = .adam(beta1: section.beta1, beta2: section.beta2, epsilon: section.epsilon,
                                 weightDecay: section.weightDecay)
        case .adamw: kind = .adamW(beta1: section.beta1, beta2: section.beta2, epsilon: section.epsilon,
                                   weightDecay: section.weightDecay)
        }
        let optimizer = try Optimizer(kind: kind, model: model)
        let schedule = try LearningRateSchedule(
            kind: LearningRateSchedule.Kind(rawValue: training.schedule.name.rawValue)!,
            peakLearningRate: section.learningRate, minimumLearningRate: training.schedule.minLearningRate,
            warmupSteps: training.schedule.warmupSteps)
        if let resumed {
            try optimizer.load(state: resumed.checkpoint.optimizerState, step: resumed.state.optimizerSteps)
        }
        return (optimizer, schedule)
    }
}
