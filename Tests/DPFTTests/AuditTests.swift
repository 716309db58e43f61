import Foundation
import Testing
@testable import DPFT

/// `dpft audit`'s parts and its purpose: exposure computed exactly, guesses counted, canaries
/// drawn fairly, and an engine that adds 100× too little noise caught by the bound.
@Suite(.serialized) struct AuditTests {
    /// Exposure on the full space of 2-digit secrets (100 candidates, enumerated in order) against
    /// a brute-force rank: losses |v − 37| for candidate value v, secret 41 (loss 4): candidates
    /// 34…40 (losses 3…0) rank below it and 33 ties with it (loss 4), so rank = 1 + 7 + ½ and
    /// exposure = log₂ 100 − log₂ 8.5.
    @Test func exposureIsExactOnASmallSpace() {
        let canary = Canary(key: "canary k", secret: "4 1", included: true)
        var generator = SystemRandomNumberGenerator()
        let candidates = canary.candidateSecrets(limit: 1000, using: &generator)
        #expect(candidates.count == 100 && candidates.first == "0 0" && candidates.last == "9 9" && candidates[41] == "4 1")
        let losses = candidates.map { Double(abs(Int($0.replacingOccurrences(of: " ", with: ""))! - 37)) }
        let exposure = CanaryScoring.exposure(secretLoss: losses[41], candidateLosses: losses)
        let bruteRank = 1 + Double(losses.filter { $0 < 4 }.count) + Double(losses.filter { $0 == 4 }.count - 1) / 2
        #expect(bruteRank == 8.5)
        #expect(abs(exposure - (log2(100) - log2(8.5))) < 1e-12)
        #expect(CanaryScoring.exposure(secretLoss: 0, candidateLosses: [0, 1, 2, 3]) == 2, "ranked first: log₂|R| bits")
        #expect(CanaryScoring.exposure(secretLoss: 3, candidateLosses: [0, 1, 2, 3]) == 0, "ranked last: 0 bits")
        let sampled = Canary(key: "canary k", secret: "1 2 3 4 5 6", included: true).candidateSecrets(limit: 50, using: &generator)
        #expect(sampled.count == 50 && Set(sampled).count == 50 && sampled.contains("1 2 3 4 5 6"))
    }

    @Test func guessesAreTheHighestInAndTheLowestOut() {
        let scores = [5.0, -1, 3, 0, 4, -2]
        let included = [true, false, false, false, true, true]
        // in: 0 (5.0), 4 (4.0) — both right; out: 5 (−2) wrong, 1 (−1) right.
        #expect(PrivacyAudit.correctGuesses(scores: scores, included: included, guesses: 4) == 3)
        #expect(PrivacyAudit.correctGuesses(scores: scores, included: included, guesses: 0) == 0)
        #expect(PrivacyAudit.correctGuesses(scores: scores, included: included, guesses: 6) == 3 + 1)
    }

    /// 4,000 canaries: unique keys, secrets of the asked length, inclusion a fair coin (within
    /// 4.5 binomial standard deviations of 2,000).
    @Test func canariesAreUniqueAndIncludedWithProbabilityOneHalf() {
        var generator = SystemRandomNumberGenerator()
        let canaries = Canary.make(count: 4000, secret: .digits(6), using: &generator)
        #expect(Set(canaries.map(\.key)).count == 4000)
        #expect(canaries.allSatisfy { $0.secret.split(separator: " ").count == 6 && $0.secret.allSatisfy { $0 == " " || $0.isNumber } })
        #expect(abs(canaries.filter(\.included).count - 2000) < Int(4.5 * 1000.0.squareRoot()))
        #expect(canaries[0].record(format: .chat).contains(#""role":"assistant""#))
        #expect(canaries[0].record(format: .text).contains(canaries[0].secret))
    }

    /// The test that proves the audit guards the engine: a run whose noise is scaled down 100×
    /// while its ledger claims ε = 1 (RDP) memorises its canaries, and the audit's lower bound
    /// exceeds the claim. gpt2-tiny, full fine-tuning, 10 ordinary records and 60 canaries of
    /// 4 digits, 300 steps of expected batch 16 with Adam at 0.01; 30 guesses (27 right are
    /// needed to exceed ε = 1). At learning rate 0.003 the included and excluded scores
    /// overlapped and 23–30 guesses were right (a CI run failed at 23); at 0.01 two runs put
    /// every guess right, the 15 highest included scores ≥ 3.6 and every excluded one ≤ 2.4.
    @Test(.timeLimit(.minutes(10))) func anEngineWithTooLittleNoiseIsCaught() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = try ModelConfig(contentsOf: Fixtures.repository.appendingPathComponent("recipes/models/gpt2-tiny.json"))
        var base = Checkpoint.initialized(config: config, seed: 1)
        base.tokenizerModel = try Tokenizer(contentsOf: Fixtures.url("tokenizer/tok.model")).modelBytes
        try base.write(to: directory.appendingPathComponent("base.h5"))
        let words = ["red", "green", "blue", "small", "large", "fast", "slow", "happy", "cold", "warm"]
        let lines = (0..<10).map { #"{"instruction": "Name the colour.", "input": "item \#(words[$0])", "output": "\#(words[$0 % 3])"}"# }
        try Data(lines.joined(separator: "\n").utf8).write(to: directory.appendingPathComponent("train.jsonl"))
        let recipeURL = directory.appendingPathComponent("recipe.json")
        try Data("""
            {"name": "audit-broken", "model": {"checkpoint": "\(directory.appendingPathComponent("base.h5").path)"}, "adapter": null,
             "data": {"train": "\(directory.appendingPathComponent("train.jsonl").path)", "max_length": 128,
                      "template": {"prompt": "{instruction}{input}:", "prompt_no_input": "{instruction}:", "response": " {output}"}},
             "privacy": {"target_epsilon": 1.0, "accountant": "rdp", "clipping": "abadi", "threshold": 1.0},
             "training": {"steps": 300, "batch_size": 16, "physical_batch_size": 16,
                          "optimizer": {"name": "adam", "learning_rate": 0.01}},
             "output": {"directory": "\(directory.appendingPathComponent("run").path)"}}
            """.utf8).write(to: recipeURL)
        var options = AuditOptions()
        options.canaries = 60
        options.guesses = 30
        options.secret = .digits(4)
        options.exposureCanaries = 2
        options.brokenNoiseScale = 0.01
        let report = try PrivacyAudit.run(recipe: try Recipe.load(from: recipeURL), options: options) { _ in }
        let claimed = try #require(report.claimedEpsilon)
        #expect(abs(claimed - 1) < 0.02, "the ledger claims the recipe's ε")
        #expect(report.epsilonLowerBound > claimed, "\(report.line): \(report.correct) of \(report.guesses) guesses right")
        #expect(!report.consistent && report.line.contains("VIOLATED"))
        let saved = try PrivacyAudit.canaries(fromReport: directory.appendingPathComponent("run-audit/audit.json"))
        #expect(saved == report.canaryList)
    }
}
