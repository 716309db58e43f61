import Foundation

/// Errors of a training run that are not errors of one input file.
public enum RunError: Error, CustomStringConvertible, Equatable {
    case batchLargerThanData(batchSize: Int, examples: Int)
    case deltaNotBelowOneOverN(delta: Double, examples: Int)
    case evalIsTrainData(path: String)
    case nothingToResume(directory: String)
    case recipeChanged(directory: String, was: String, now: String)
    case budgetExhausted(epsilon: Double, target: Double)
    case noTrainableTensorMatches(pattern: String)
    case cannotCreateDirectory(path: String, reason: String)
    /// Step `step` (1-based) had a non-finite loss, gradient or update (`cause`).
    case diverged(step: Int, cause: String, lastCheckpoint: String?, ledger: String?, epsilon: Double?)
    /// Another process holds the run directory's lock (`holder`: pid, host and since when, if recorded).
    case directoryLocked(directory: String, holder: String?)
    /// A fresh run into a directory that holds another run's `files`.
    case directoryHoldsRun(directory: String, files: [String])
    case resumeAndOverwrite
    /// The training file's SHA-256 differs from the one the resumed run recorded.
    case trainDataChanged(directory: String, file: String, was: String, now: String)
    /// The newest checkpoint changed between reading it for `--resume` and locking the directory.
    case runDirectoryChanged(directory: String, resumedStep: Int, newestStep: Int?)

    public var description: String {
        switch self {
        case .deltaNotBelowOneOverN(let delta, let examples):
            return "privacy.delta = \(delta) is not below 1/N = \(String(format: "%.3g", 1 / Double(examples))) (N = \(examples) training examples): a δ that large lets a mechanism publish one example outright. Choose δ well below 1/N, e.g. \(String(format: "%.0e", Self.suggestedDelta(examples)))."
        case .evalIsTrainData(let path):
            return "data.eval is the training file (\(path)): evaluating on the training data measures nothing held out. Give a separate eval file, or null for none."
        case .batchLargerThanData(let batchSize, let examples):
            return "training.batch_size = \(batchSize) exceeds the \(examples) training examples; lower it (q = batch_size / examples must be ≤ 1)."
        case .nothingToResume(let directory):
            return "\(directory): no checkpoint to resume from; run without --resume (with --overwrite when it holds files of a run that stopped before its first checkpoint)."
        case .recipeChanged(let directory, let was, let now):
            return "\(directory) was trained with a different recipe (hash \(was.prefix(12))…, now \(now.prefix(12))…); resume needs the same recipe — start a new run with --overwrite or another output.directory."
        case .budgetExhausted(let epsilon, let target):
            return "the privacy budget is spent: ε = \(String(format: "%.3f", epsilon)) of target \(target); no further step fits."
        case .noTrainableTensorMatches(let pattern):
            return "adapter.trainable pattern \"\(pattern)\" matches no tensor of the model."
        case .cannotCreateDirectory(let path, let reason):
            return "\(path): cannot create the run directory: \(reason)."
        case .diverged(let step, let cause, let lastCheckpoint, let ledger, let epsilon):
            var text = "training diverged at step \(step): \(cause). Nothing of that step was saved; "
            text += lastCheckpoint.map { "the last good checkpoint is \($0)." } ?? "no checkpoint was written."
            if let ledger {
                text += " The privacy spent by all \(step) steps taken"
                text += (epsilon.map { " (ε = \(String(format: "%.4f", $0)))" } ?? "") + " is recorded in \(ledger)."
            }
            return text + " Lower training.optimizer.learning_rate (or the clipping threshold) and start a new run."
        case .directoryLocked(let directory, let holder):
            return "\(directory) is in use by another dpft run (\(holder ?? "holder not recorded yet")); wait for it to finish, or give another output.directory."
        case .directoryHoldsRun(let directory, let files):
            return "\(directory) holds another run (\(files.joined(separator: ", "))): continue it with --resume, replace it with --overwrite (removes those files), or give another output.directory."
        case .resumeAndOverwrite:
            return "--resume continues the run in output.directory and --overwrite replaces it; give one of them."
        case .trainDataChanged(let directory, let file, let was, let now):
            return "\(file) is not the training data the run in \(directory) was trained on (SHA-256 \(was.prefix(12))…, now \(now.prefix(12))…); resume needs the same data — restore the file, or start a new run with --overwrite or another output.directory."
        case .runDirectoryChanged(let directory, let resumedStep, let newestStep):
            return "\(directory) changed while this run was setting up (resuming step \(resumedStep), newest checkpoint now \(newestStep.map { "step \($0)" } ?? "none")); run --resume again."
        }
    }

    /// A power of ten at most 1/(10·N).
    static func suggestedDelta(_ examples: Int) -> Double {
        pow(10, (log10(1 / (10 * Double(max(examples, 1))))).rounded(.down))
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

    init(steps: Int, epsilon: Double? = nil, delta: Double? = nil, noiseMultiplier: Double? = nil,
         baseEvaluation: RunEvaluation? = nil, finalEvaluation: RunEvaluation? = nil, finalCheckpoint: String,
         exportDirectory: String? = nil) {
        self.steps = steps
        self.epsilon = epsilon
        self.delta = delta
        self.noiseMultiplier = noiseMultiplier
        self.baseEvaluation = baseEvaluation
        self.finalEvaluation = finalEvaluation
        self.finalCheckpoint = finalCheckpoint
        self.exportDirectory = exportDirectory
    }
}

/// Runs a recipe end to end (DESIGN.md §1 data flow), as torchtune's recipes do: setup stages
/// that each return what they built (RunSetup.swift), then the training loop below.
///
/// recipe → plugins → resume state → tokenizer → data → model → privacy plan → optimizer and
/// schedule → run directory → loop of `TrainingStep`s (Poisson batch, book-keeping, noise,
/// optimizer) with metrics, evaluations and checkpoints carrying the privacy ledger.
public final class RecipeRunner {
    public let recipe: Recipe
    public let resume: Bool
    /// Replace the run in `output.directory` (its files only; see `RunDirectory.runFiles`).
    public let overwrite: Bool
    let log: (String) -> Void
    let progress: ProgressReporter
    /// The processes of a data-parallel run (`Communicator.single` without mpirun). Only rank
    /// 0 logs, evaluates and writes files; every rank trains.
    public let communicator: Communicator
    /// Test-only (the audit's proof that it guards the engine): the noise actually added is
    /// scaled by this while the budget and ledger account the recipe's σ. Never set outside tests.
    var brokenNoiseScale = 1.0

    /// `log` receives whole lines (the resolved recipe, summaries, evaluations); on ranks other
    /// than 0 it is never called. Without `resume` or `overwrite`, a run into a directory that
    /// holds another run is refused.
    public init(recipe: Recipe, resume: Bool = false, overwrite: Bool = false, interactive: Bool = false,
                communicator: Communicator = .single, log: @escaping (String) -> Void) {
        self.recipe = recipe
        self.resume = resume
        self.overwrite = overwrite
        self.communicator = communicator
        let log = communicator.isRoot ? log : { _ in }
        self.log = log
        progress = ProgressReporter(interactive: interactive && communicator.isRoot, log: log)
    }

    /// Sets the run up stage by stage, then trains. Nothing is written before every stage up
    /// to the run directory has succeeded; the run directory stage locks the directory and
    /// checks it holds no other run (unless resuming or overwriting) before writing. A
    /// directory another run holds is refused at once, before the setup stages.
    public func run() throws -> RunSummary {
        guard !(resume && overwrite) else { throw RunError.resumeAndOverwrite }
        if communicator.isRoot { try RunDirectoryLock.checkNotHeld(directory: URL(fileURLWithPath: recipe.output.directory)) }
        let recipeHash = recipe.hash
        log("recipe \(recipe.name) (sha256 \(recipeHash.prefix(12))…):")
        log(recipe.resolvedJSON)
        let registry = try setupPlugins()
        var base = try Checkpoint.read(from: URL(fileURLWithPath: recipe.model.checkpoint))
        let resumed = try setupResume(recipeHash: recipeHash)
        let tokenizer = try setupTokenizer(base: &base)
        let adapter = try setupAdapter(config: base.config)
        let data = try setupData(tokenizer: tokenizer, config: base.config)
        let trainDataSHA256 = try resumed?.trainDataSHA256 ?? fileSHA256(URL(fileURLWithPath: recipe.data.train))
        // Checkpoints are written from the model's tensors on the base's metadata: the base's own
        // weights go into the model (not kept beside it, which would double the memory).
        let metadata = base.withoutWeights
        let model: Transformer
        if let resumedCheckpoint = resumed?.checkpoint {
            model = try setupModel(checkpoint: resumedCheckpoint, adapter: adapter, data: data)
        } else {
            model = try setupModel(checkpoint: consume base, adapter: adapter, data: data)
        }
        let privacy = try setupPrivacy(registry: registry, model: model, data: data, resumed: resumed)
        let (optimizer, schedule) = try setupOptimizer(model: model, resumed: resumed)
        let directory = communicator.isRoot ? try setupRunDirectory(adapter: adapter, resumed: resumed) : nil
        if communicator.size > 1 { log("data-parallel: \(communicator.size) processes (rank 0 samples, adds the noise and writes)") }
        return try train(PreparedRun(recipeHash: recipeHash, base: metadata, data: data, trainDataSHA256: trainDataSHA256,
                                     model: model, privacy: privacy, optimizer: optimizer, schedule: schedule,
                                     directory: directory, resumed: resumed?.state))
    }

    /// The last stage, the first to write: the locked run directory. A LoRA run's step
    /// checkpoints refer to the recipe's base checkpoint (its SHA-256 taken now) instead of
    /// copying its frozen weights.
    private func setupRunDirectory(adapter: AdapterChoice, resumed: ResumeState?) throws -> RunDirectory {
        let frozenBase = try adapter.lora.map { _ in
            try Checkpoint.BaseReference(file: URL(fileURLWithPath: recipe.model.checkpoint))
        }
        let start: RunDirectory.Start = resumed.map { .resume(step: $0.state.step) } ?? (overwrite ? .overwrite : .fresh)
        return try RunDirectory(recipe: recipe, start: start, frozenBase: frozenBase)
    }

    // MARK: - The loop

    /// Trains from the resumed step (or 0) to the last step the budget allows: each step one
    /// `TrainingStep`, booked in the privacy budget, logged to metrics.jsonl; evaluations and
    /// checkpoints as the recipe asks.
    private func train(_ run: PreparedRun) throws -> RunSummary {
        let evaluator = run.data.evaluation.flatMap { data in communicator.isRoot ? data : nil }.map {
            RunEvaluator(data: $0, encoder: run.data.encoder, physicalBatchSize: recipe.training.physicalBatchSize,
                         generateExamples: recipe.training.generateExamples, maxNewTokens: recipe.training.maxNewTokens)
        }
        var baseEvaluation: RunEvaluation?
        if let evaluator, run.resumed == nil {
            baseEvaluation = try evaluate(evaluator, run.model, label: "base")
            run.directory?.metrics.write(["step": 0, "eval": baseEvaluation!.dictionary])
        }
        var budget = run.privacy?.budget
        if let planned = budget?.totalSteps, let fits = try budget?.stopBeforeExceedingTarget(atStep: run.resumed?.step ?? 0),
           let target = budget?.targetEpsilon, let total = budget?.totalSteps {
            log("note: only \(fits) more steps fit in ε = \(target); stopping at step \(total) of \(planned)")
        }
        let totalSteps = budget?.totalSteps ?? run.data.plannedSteps
        let trainingStep = makeTrainingStep(run)
        var step = run.resumed?.step ?? 0
        var lastCheckpoint: URL?
        var meter = EpsilonMeter()
        progress.start(total: totalSteps, from: step)
        while step < totalSteps {
            let learningRate = Float(run.schedule.learningRate(step: step, totalSteps: totalSteps))
            let result: TrainingStep.Result
            let stepStarted = Date()
            do {
                result = try trainingStep.run(step: step, learningRate: learningRate)
            } catch let failure as TrainingStep.NonFinite {
                budget?.recordStep()  // the step touched the data: the ledger counts it
                throw try diverged(run, failure, step: step + 1, budget: budget)
            }
            let stepSeconds = Date().timeIntervalSince(stepStarted)  // the step alone, not the accountant or checkpoint
            budget?.recordStep()
            step += 1
            let isLast = step == totalSteps
            let checkpointDue = isLast || (recipe.output.checkpointEvery > 0 && step % recipe.output.checkpointEvery == 0)
            guard let directory = run.directory else { continue }  // ranks other than 0 write nothing
            let spent = checkpointDue ? try budget?.spent() : nil
            if let spent { meter.record(spent.epsilon, step: step) }
            let epsilon = checkpointDue ? spent?.epsilon : try meter.epsilon(after: step, budget: budget, required: false)
            var line: [String: Any] = ["step": step, "loss": result.loss.isFinite ? result.loss : NSNull(),
                                       "examples": result.examples, "tokens": result.tokens,
                                       "learning_rate": Double(learningRate),
                                       "seconds": stepSeconds]
            line.merge(result.clipStatistics?.metrics ?? [:]) { old, _ in old }
            if result.clipStatistics != nil { line["peak_book_bytes"] = trainingStep.peakBookBytes }
            if let epsilon { line["epsilon"] = epsilon }
            progress.update(step: step, loss: result.loss, epsilon: meter.latest, tokens: result.tokens)
            if recipe.training.evalEvery > 0, step % recipe.training.evalEvery == 0, !isLast, let evaluator {
                line["eval"] = try evaluate(evaluator, run.model, label: "step \(step)").dictionary
            }
            directory.metrics.write(line)
            if checkpointDue {
                lastCheckpoint = try saveCheckpoint(run, directory, budget: budget, spent: spent, step: step,
                                                    totalSteps: totalSteps)
            }
        }
        progress.finish()
        return try finish(run, budget: budget, step: step, lastCheckpoint: lastCheckpoint,
                          evaluator: evaluator, baseEvaluation: baseEvaluation)
    }

    /// A diverged step ends the run: the ledger counting every step taken, this one included,
    /// goes to `privacy-ledger.json` in the run directory (the last good checkpoint's ledger
    /// counts only the steps before it), and the error names the step, the cause and that
    /// checkpoint.
    private func diverged(_ run: PreparedRun, _ failure: TrainingStep.NonFinite, step: Int,
                          budget: PrivacyBudget?) throws -> RunError {
        progress.finish()
        let lastGood = run.directory.flatMap { RunDirectory.checkpoints(in: $0.url).last?.url.path }
        var ledgerPath: String?, epsilon: Double?
        if let budget, let directory = run.directory {
            let spent = try budget.spent()
            if let ledger = ledger(run, budget: budget, spent: spent) {
                epsilon = spent?.epsilon
                let url = directory.url.appendingPathComponent("privacy-ledger.json")
                try writeAtomically(to: url) { try Data(ledger.json.utf8).write(to: $0) }
                ledgerPath = url.path
            }
        }
        return RunError.diverged(step: step, cause: failure.description, lastCheckpoint: lastGood, ledger: ledgerPath,
                                 epsilon: epsilon)
    }

    /// The step the loop repeats: private with the plan's engine and σ, else non-private.
    private func makeTrainingStep(_ run: PreparedRun) -> TrainingStep {
        let method: TrainingStep.Method
        if let privacy = run.privacy {
            method = .poisson(engine: privacy.engine, sampleRate: privacy.budget.sampleRate,
                              noiseMultiplier: privacy.budget.noiseMultiplier * brokenNoiseScale,
                              noiseSeed: privacy.section.noiseSeed)
        } else {
            method = .shuffled(batchSize: recipe.training.batchSize, seed: recipe.training.seed)
        }
        return TrainingStep(model: run.model, optimizer: run.optimizer, examples: run.data.train.examples,
                            physicalBatchSize: recipe.training.physicalBatchSize, method: method,
                            communicator: communicator)
    }

    /// The run's privacy ledger with `spent` so far (nil for a non-private run).
    private func ledger(_ run: PreparedRun, budget: PrivacyBudget?, spent: PrivacySpent?) -> PrivacyLedger? {
        guard let budget, let privacy = run.privacy else { return nil }
        return privacy.ledger(budget: budget, spent: spent, recipeHash: run.recipeHash,
                              datasetSize: run.data.datasetSize, worldSize: communicator.size)
    }

    /// `step-N.h5` with the resume state and, for a private run, the ledger so far.
    private func saveCheckpoint(_ run: PreparedRun, _ directory: RunDirectory, budget: PrivacyBudget?,
                                spent: PrivacySpent?, step: Int, totalSteps: Int) throws -> URL {
        let state = RunState(step: step, totalSteps: totalSteps, recipeHash: run.recipeHash,
                             noiseMultiplier: budget?.noiseMultiplier, history: budget?.history ?? [],
                             datasetSize: run.data.datasetSize, optimizerSteps: run.optimizer.stepCount,
                             trainDataSHA256: run.trainDataSHA256)
        let ledger = ledger(run, budget: budget, spent: spent)
        return try directory.saveCheckpoint(model: run.model, base: run.base, optimizer: run.optimizer,
                                                state: state, ledger: ledger)
    }

    /// After the loop: `final.h5`, the final evaluation, the export, the closing log lines.
    private func finish(_ run: PreparedRun, budget: PrivacyBudget?, step: Int, lastCheckpoint: URL?,
                        evaluator: RunEvaluator?, baseEvaluation: RunEvaluation?) throws -> RunSummary {
        guard let directory = run.directory else {  // a rank other than 0: rank 0 publishes
            return RunSummary(steps: step, finalCheckpoint: RunDirectory.finalURL(in: recipe.output.directory).path)
        }
        let finalURL = try directory.publishFinal(lastCheckpoint: lastCheckpoint)
        var finalEvaluation: RunEvaluation?
        if let evaluator {
            let evaluation = try evaluate(evaluator, run.model, label: "final")
            directory.metrics.write(["step": step, "eval": evaluation.dictionary])
            finalEvaluation = evaluation
        }
        var exportDirectory: String?
        if let export = recipe.output.export {
            let target = try directory.export(export, finalCheckpoint: finalURL)
            exportDirectory = target.path
            log("exported to \(target.path) (\(export.format.rawValue)\(export.mergeLoRA ? ", LoRA merged" : ""))")
        }
        let finalSpent = try budget?.spent()
        if let finalSpent, let budget {
            log(String(format: "privacy spent: ε = %.4f at δ = %g over %d steps (%@ accountant)", finalSpent.epsilon,
                       budget.delta, budget.stepsTaken, finalSpent.accountant.rawValue))
        }
        if let baseEvaluation, let finalEvaluation {
            log("eval  base: \(baseEvaluation.line)")
            log("eval tuned: \(finalEvaluation.line)")
        }
        return RunSummary(steps: step, epsilon: finalSpent?.epsilon, delta: recipe.privacy?.delta,
                          noiseMultiplier: budget?.noiseMultiplier, baseEvaluation: baseEvaluation,
                          finalEvaluation: finalEvaluation, finalCheckpoint: finalURL.path, exportDirectory: exportDirectory)
    }

    private func evaluate(_ evaluator: RunEvaluator, _ model: Transformer, label: String) throws -> RunEvaluation {
        let evaluation = try evaluator.evaluate(model)
        progress.note("eval \(label): \(evaluation.line)")
        return evaluation
    }
}
