import ArgumentParser
import DPFT
import Foundation

struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Check a recipe's claimed ε from the outside: canaries, one training run, an ε lower bound.",
        discussion: """
            Mixes --canaries instruction records with random secret answers into the recipe's \
            training data, each with probability 1/2 (secure randomness), trains the recipe once \
            (no eval split, no export, only the final checkpoint), scores every canary by how much \
            more the tuned model prefers its secret over 8 random others than the base model \
            does, guesses "in" for \
            the highest --guesses/2 scores and "out" for the lowest, and turns the correct guesses \
            into an ε lower bound at the recipe's δ with 95% confidence (Steinke, Nasr & Jagielski, \
            NeurIPS 2023). A bound above the ledger's ε means the run leaks more than it claims: \
            the command then exits with status 3. Also reports exposure in bits (Carlini et al. \
            2019) for a few secrets. Writes <output.directory>-audit/ (audit.json holds the \
            inclusions; keep it with the run directory, not with a release).
            """)

    @Argument(help: "The recipe: a JSON file, or the name of a built-in recipe.")
    var recipe: String

    @Option(help: "Canaries (m), each in the training data with probability 1/2.")
    var canaries = 1000

    @Option(help: "Guesses (r), half in and half out; default m/5.")
    var guesses: Int?

    @Option(help: "What each canary's secret is: words:N (N made-up words, the default words:3) or digits:N.")
    var secret = "words:3"

    @Option(help: "Reuse the canaries and inclusions of a previous audit.json (runs at several ε on the same data).")
    var canariesFrom: String?

    @Option(name: .customLong("set"), help: "Override one recipe key, e.g. --set privacy.target_epsilon=1 (repeatable).")
    var overrides: [String] = []

    @Flag(help: "Replace an existing audit directory.")
    var overwrite = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    func validate() throws {
        guard canaries >= 2 else { throw ValidationError("--canaries must be at least 2.") }
        if let guesses, guesses < 0 || guesses > canaries { throw ValidationError("--guesses must be in 0...\(canaries).") }
        guard SecretKind(secret) != nil else { throw ValidationError("--secret must be words:N or digits:N with N in 1...18.") }
    }

    func run() throws {
        let location = try RecipeLocation.find(recipe, assets: Assets.located())
        let loaded = try location.loadCheckingInputs(overrides: overrides, extraPlugins: [])
        var options = AuditOptions()
        options.canaries = canaries
        options.guesses = guesses
        options.secret = SecretKind(secret)!
        options.overwrite = overwrite
        if let canariesFrom {
            let reused = try PrivacyAudit.canaries(fromReport: URL(fileURLWithPath: canariesFrom))
            options.reuse = reused
            options.canaries = reused.count
            options.secret = reused.first.map { SecretKind(of: $0.secret) } ?? options.secret
        }
        let report = try PrivacyAudit.run(recipe: loaded, options: options) { line in
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
        print(json ? try Self.json(report) : Self.text(report))
        if !report.consistent { throw ExitCode(3) }
    }

    static func text(_ report: AuditReport) -> String {
        func mean(_ values: [Double]) -> String {
            values.isEmpty ? "—" : String(format: "%.1f", values.reduce(0, +) / Double(values.count))
        }
        let minutes = Int(report.seconds) / 60, seconds = Int(report.seconds) % 60
        return """
            canaries: \(report.canaries) (\(report.included) in the training data), guesses: \(report.guesses), correct: \(report.correct)
            \(report.line)
            exposure (bits, of \(report.exposureCandidates) candidates): included \(mean(report.exposureIncluded)), excluded \(mean(report.exposureExcluded))
            report: \(report.directory)/audit.json (\(minutes)m\(String(format: "%02d", seconds))s)
            """
    }

    static func json(_ report: AuditReport) throws -> String {
        let summary: [String: Any] = [
            "claimed_epsilon": report.claimedEpsilon.map { $0 as Any } ?? NSNull(), "delta": report.delta,
            "confidence": report.confidence, "canaries": report.canaries, "included": report.included,
            "guesses": report.guesses, "correct": report.correct, "epsilon_lower_bound": report.epsilonLowerBound,
            "consistent": report.consistent, "exposure_included": report.exposureIncluded,
            "exposure_excluded": report.exposureExcluded, "seconds": report.seconds]
        let data = try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
