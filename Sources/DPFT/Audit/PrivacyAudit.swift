import Foundation

/// Errors of `dpft audit`.
public enum AuditError: Error, CustomStringConvertible, Equatable {
    case directoryExists(path: String)
    case canariesNotEncoded(expected: Int, got: Int)
    case tooFewCanaries(count: Int, guesses: Int)
    case pretokenizedData
    case unreadableReport(path: String, reason: String)

    public var description: String {
        switch self {
        case .directoryExists(let path):
            return "\(path) already holds an audit; pass --overwrite to replace it, or set output.directory."
        case .canariesNotEncoded(let expected, let got):
            return "only \(got) of \(expected) canaries became training examples under this recipe's data rules "
                + "(max_length, template); raise data.max_length."
        case .unreadableReport(let path, let reason):
            return "\(path): not an audit.json with a canary_list (\(reason))."
        case .pretokenizedData:
            return "data.format is \"tokens\": the audit writes its canaries as text, so it needs text data (auto, alpaca, chat or text)."
        case .tooFewCanaries(let count, let guesses):
            return "\(guesses) guesses need at least as many canaries (have \(count)); lower --guesses or raise --canaries."
        }
    }
}

/// The settings of one audit.
public struct AuditOptions: Sendable {
    /// m: canaries, each in the training set with probability 1/2.
    public var canaries = 1000
    /// What secrets are made of.
    public var secret = SecretKind.words(3)
    /// r: guesses, half "in" (highest scores) and half "out" (lowest); nil = m/5.
    public var guesses: Int?
    /// The bound's confidence.
    public var confidence = 0.95
    /// Included and excluded canaries whose exposure is measured (each).
    public var exposureCanaries = 8
    /// Random other secrets each canary's score compares it with.
    public var referenceSecrets = 8
    /// Candidate secrets per exposure (all of them when the space is no larger).
    public var exposureCandidates = 1000
    /// Canaries (with their inclusions) to reuse, e.g. a previous audit's, so that runs at
    /// several ε see the same data; nil = fresh ones.
    public var reuse: [Canary]?
    /// Replace an existing audit directory.
    public var overwrite = false
    /// Test-only: the noise actually added is scaled by this while the ledger claims the
    /// recipe's ε — a deliberately broken engine the audit must catch. Never set outside tests.
    var brokenNoiseScale = 1.0

    public init() {}
}

/// What an audit found (`audit.json`).
public struct AuditReport: Codable, Sendable {
    /// ε the run's ledger claims (nil: a non-private run, which claims nothing).
    public var claimedEpsilon: Double?
    public var delta: Double
    public var confidence: Double
    public var canaries: Int
    public var included: Int
    public var guesses: Int
    public var correct: Int
    /// The one-run lower bound (Steinke, Nasr & Jagielski 2023).
    public var epsilonLowerBound: Double
    /// Exposure in bits of the measured included and excluded canaries.
    public var exposureIncluded: [Double]
    public var exposureExcluded: [Double]
    public var exposureCandidates: Int
    public var seconds: Double
    /// The audit's folder (`audit.json`, the canaries, `run/`).
    public var directory: String
    /// Every canary with its inclusion and score (base loss − tuned loss).
    public var canaryList: [Canary]
    public var scores: [Double]

    /// The bound does not exceed the claim (always true for a non-private run).
    public var consistent: Bool { claimedEpsilon.map { epsilonLowerBound <= $0 } ?? true }

    /// The plain line: "empirical ε ≥ 0.41 (95%), claimed ε = 8.00: consistent".
    public var line: String {
        let bound = String(format: "empirical ε ≥ %.2f (%.0f%%)", epsilonLowerBound, confidence * 100)
        guard let claimedEpsilon else { return bound + ", no privacy claimed (non-private run)" }
        return bound + String(format: ", claimed ε = %.2f: ", claimedEpsilon)
            + (consistent ? "consistent" : "VIOLATED — the run leaks more than its ledger claims")
    }
}

/// `dpft audit`: an empirical privacy audit in one training run (issue 14). Canaries are mixed
/// into the recipe's training data, each with probability 1/2; the recipe trains once; every
/// canary is scored by how much the tuned model lowered its secret's loss against the base
/// model; the highest scores are guessed "in", the lowest "out", and the number of correct
/// guesses becomes an ε lower bound (`OneRunBound`). Exposure (Carlini et al. 2019) says the
/// same in bits for a few secrets.
public enum PrivacyAudit {
    /// Runs the audit of `recipe` in `<output.directory>-audit`: `canaries.jsonl` (the records),
    /// `train.jsonl` (the training data with the included canaries), `run/` (the training run),
    /// `audit.json` (the report, the only place the inclusions are kept).
    public static func run(recipe: Recipe, options: AuditOptions = AuditOptions(),
                           log: @escaping (String) -> Void) throws -> AuditReport {
        let start = Date()
        guard recipe.data.format != .tokens else { throw AuditError.pretokenizedData }
        let directory = try prepareDirectory(recipe: recipe, overwrite: options.overwrite)
        var generator = SystemRandomNumberGenerator()
        let canaries = options.reuse
            ?? Canary.make(count: options.canaries, secret: options.secret, using: &generator)
        let guesses = options.guesses ?? (options.canaries / 5)
        guard guesses <= canaries.count else { throw AuditError.tooFewCanaries(count: canaries.count, guesses: guesses) }
        let format = recipe.data.format
        let recordsURL = directory.appendingPathComponent("canaries.jsonl")
        try writeLines(canaries.map { $0.record(format: format) }, to: recordsURL)
        let trainURL = directory.appendingPathComponent("train.jsonl")
        try writeTrainingData(recipe.data.train, plus: canaries.filter(\.included).map { $0.record(format: format) }, to: trainURL)
        log("audit: \(canaries.count) canaries, \(canaries.filter(\.included).count) in the training data (\(trainURL.path))")

        let auditRun = auditRecipe(recipe, train: trainURL, directory: directory.appendingPathComponent("run"))
        let runner = RecipeRunner(recipe: auditRun, log: log)
        runner.brokenNoiseScale = options.brokenNoiseScale
        let summary = try runner.run()

        let models = try ScoringModels(recipe: auditRun, tunedCheckpoint: summary.finalCheckpoint)
        let examples = try models.encode(canaries.map { $0.record(format: format) }, in: directory, name: "score")
        guard examples.count == canaries.count else {
            throw AuditError.canariesNotEncoded(expected: canaries.count, got: examples.count)
        }
        let scores = try score(canaries, examples: examples, models: models, options: options, directory: directory,
                               format: format)
        let correct = correctGuesses(scores: scores, included: canaries.map(\.included), guesses: guesses)
        let delta = recipe.privacy?.delta ?? 1e-5
        let bound = OneRunBound.epsilonLowerBound(canaries: canaries.count, guesses: guesses, correct: correct,
                                                  delta: delta, p: 1 - options.confidence)
        let exposures = try measureExposure(canaries, models: models, options: options, directory: directory, format: format)
        let report = AuditReport(
            claimedEpsilon: summary.epsilon, delta: delta, confidence: options.confidence, canaries: canaries.count,
            included: canaries.filter(\.included).count, guesses: guesses, correct: correct, epsilonLowerBound: bound,
            exposureIncluded: exposures.included, exposureExcluded: exposures.excluded,
            exposureCandidates: options.exposureCandidates, seconds: Date().timeIntervalSince(start),
            directory: directory.path, canaryList: canaries, scores: scores)
        try writeReport(report, to: directory.appendingPathComponent("audit.json"))
        return report
    }

    /// `<output.directory>-audit`, created empty (an existing one only with `overwrite`).
    static func prepareDirectory(recipe: Recipe, overwrite: Bool) throws -> URL {
        let directory = URL(fileURLWithPath: recipe.output.directory + "-audit")
        if FileManager.default.fileExists(atPath: directory.path) {
            guard overwrite else { throw AuditError.directoryExists(path: directory.path) }
            try FileManager.default.removeItem(at: directory)
        }
        try FileProblem.createDirectory(atPath: directory.path)
        return directory
    }

    /// The recipe the audit trains: its own training data, no eval split or export, only the
    /// final checkpoint, in the audit's `run/` folder.
    static func auditRecipe(_ recipe: Recipe, train: URL, directory: URL) -> Recipe {
        var audit = recipe
        audit.data.train = train.path
        audit.data.eval = nil
        audit.output.directory = directory.path
        audit.output.export = nil
        audit.output.checkpointEvery = 0
        return audit
    }

    /// Each canary's score: how much more the tuned model prefers its secret over
    /// `referenceSecrets` random secrets for the same prompt than the base model does,
    ///
    ///     score = [tuned(refs) − tuned(secret)] − [base(refs) − base(secret)],
    ///
    /// with mean per-token losses (refs: their mean). Comparing with other secrets for the same
    /// prompt removes what training teaches about every secret (that digits follow the prompt);
    /// comparing with the base model removes how easy the secret was to begin with. What is left
    /// is what the model learnt about this canary: its memorisation.
    static func score(_ canaries: [Canary], examples: [TokenizedExample], models: ScoringModels, options: AuditOptions,
                      directory: URL, format: Recipe.DataSection.Format) throws -> [Double] {
        var generator = SystemRandomNumberGenerator()
        let k = options.referenceSecrets
        let references = canaries.flatMap { canary in
            (0..<k).map { _ in
                canary.record(answer: SecretKind(of: canary.secret).random(using: &generator), format: format)
            }
        }
        let referenceExamples = try models.encode(references, in: directory, name: "references")
        guard referenceExamples.count == references.count else {
            throw AuditError.canariesNotEncoded(expected: references.count, got: referenceExamples.count)
        }
        func preference(_ checkpoint: Checkpoint) throws -> [Double] {
            let own = try CanaryScoring.losses(checkpoint, examples: examples).map(\.mean)
            let others = try CanaryScoring.losses(checkpoint, examples: referenceExamples).map(\.mean)
            return own.indices.map { i in others[(i * k)..<((i + 1) * k)].reduce(0, +) / Double(k) - own[i] }
        }
        let tuned = try preference(models.tuned), base = try preference(models.base)
        return zip(tuned, base).map { $0 - $1 }
    }

    /// Correct guesses when the `guesses / 2` highest scores are guessed "in" and the
    /// `guesses − guesses / 2` lowest "out".
    static func correctGuesses(scores: [Double], included: [Bool], guesses: Int) -> Int {
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        let inGuesses = order.prefix(guesses / 2), outGuesses = order.suffix(guesses - guesses / 2)
        return inGuesses.filter { included[$0] }.count + outGuesses.filter { !included[$0] }.count
    }

    /// Exposure of the first `exposureCanaries` included and excluded canaries under the tuned
    /// model, against their candidate secrets (loss summed over the secret's tokens).
    static func measureExposure(_ canaries: [Canary], models: ScoringModels, options: AuditOptions, directory: URL,
                                format: Recipe.DataSection.Format) throws -> (included: [Double], excluded: [Double]) {
        var generator = SystemRandomNumberGenerator()
        func exposure(_ canary: Canary) throws -> Double {
            let candidates = canary.candidateSecrets(limit: options.exposureCandidates, using: &generator)
            let examples = try models.encode(candidates.map { canary.record(answer: $0, format: format) }, in: directory,
                                             name: "exposure")
            let losses = try CanaryScoring.losses(models.tuned, examples: examples).map { $0.mean * Double($0.tokens) }
            let secret = losses[candidates.firstIndex(of: canary.secret)!]
            return CanaryScoring.exposure(secretLoss: secret, candidateLosses: losses)
        }
        let included = try canaries.filter(\.included).prefix(options.exposureCanaries).map(exposure)
        let excluded = try canaries.filter { !$0.included }.prefix(options.exposureCanaries).map(exposure)
        return (included, excluded)
    }

    static func writeLines(_ lines: [String], to url: URL) throws {
        try writeAtomically(to: url) { try Data(lines.map { $0 + "\n" }.joined().utf8).write(to: $0) }
    }

    /// The recipe's training file followed by the included canaries' records.
    static func writeTrainingData(_ train: String, plus records: [String], to url: URL) throws {
        var data = try FileProblem.contents(ofFile: train)
        if let last = data.last, last != UInt8(ascii: "\n") { data.append(UInt8(ascii: "\n")) }
        data.append(Data(records.map { $0 + "\n" }.joined().utf8))
        try writeAtomically(to: url) { try data.write(to: $0) }
    }

    /// The canaries of a previous audit's `audit.json`, inclusions and all.
    public static func canaries(fromReport url: URL) throws -> [Canary] {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        struct Saved: Decodable { var canaryList: [Canary] }
        let data = try FileProblem.contents(ofFile: url.path)
        do {
            return try decoder.decode(Saved.self, from: data).canaryList
        } catch {
            throw AuditError.unreadableReport(path: url.path, reason: "\(error)")
        }
    }

    static func writeReport(_ report: AuditReport, to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity",
                                                                      nan: "NaN")
        let data = try encoder.encode(report)
        try writeAtomically(to: url) { try data.write(to: $0) }
    }
}

/// The base and tuned models and the recipe's encoder, for scoring canaries.
struct ScoringModels {
    let base: Checkpoint
    let tuned: Checkpoint
    let recipe: Recipe
    let encoder: ExampleEncoder

    init(recipe: Recipe, tunedCheckpoint: String) throws {
        base = try Checkpoint.read(from: URL(fileURLWithPath: recipe.model.checkpoint))
        tuned = try Checkpoint.read(from: URL(fileURLWithPath: tunedCheckpoint))
        self.recipe = recipe
        let tokenizer = try RecipeRunner.tokenizer(of: recipe, base: base)
        encoder = try recipe.data.exampleEncoder(tokenizer: tokenizer, maxPositions: base.config.maxPositions)
    }

    /// `records` tokenized as training data is (the recipe's data rules), via a file `name`.jsonl.
    func encode(_ records: [String], in directory: URL, name: String) throws -> [TokenizedExample] {
        let url = directory.appendingPathComponent("\(name).jsonl")
        try PrivacyAudit.writeLines(records, to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        return try TrainingData.load(path: url.path, recipe: recipe.data, encoder: encoder).examples
    }
}
