import Foundation
import Testing
@testable import DPFT

/// What a ledger may contain and how it is written (issue 12 items 1 and 4).
@Suite struct PrivacyLedgerTests {
    private func ledger(epsilon: Double, noiseSeed: UInt64?) -> PrivacyLedger {
        let grouping = try! Grouping(strategy: "all-layer", groups: [ParameterGroup(name: "all", threshold: 1, parameters: ["w"])],
                                     parameters: ["w"])
        return PrivacyLedger(accountant: "prv", epsilon: epsilon, delta: 1e-5, targetEpsilon: nil, noiseMultiplier: 1,
                             sampleRate: 0.01, steps: 10,
                             history: [MechanismSegment(noiseMultiplier: 1, sampleRate: 0.01, steps: 10)],
                             clipping: .abadi, threshold: 1, grouping: grouping, datasetSize: 1000,
                             expectedBatchSize: 10, recipeHash: "abc", noiseSeed: noiseSeed)
    }

    /// ε = ∞ (σ → 0, or no finite ε at δ) was written as an empty string; now it is explicit
    /// and reads back as +∞.
    @Test func infiniteEpsilonIsWrittenExplicitly() throws {
        let text = ledger(epsilon: .infinity, noiseSeed: nil).json
        #expect(!text.isEmpty)
        #expect(text.contains(#""epsilon" : "Infinity""#), "\(text)")
        #expect(try PrivacyLedger(json: text).epsilon == .infinity)
        let finite = ledger(epsilon: 2.5, noiseSeed: nil).json
        #expect(try PrivacyLedger(json: finite) == ledger(epsilon: 2.5, noiseSeed: nil))
    }

    /// A seeded run's ledger says so and is marked as no private release, but never holds the
    /// seed; a secure run's ledger is a private release.
    @Test func seededLedgersRecordOnlyThatTheyWereSeeded() throws {
        let seed: UInt64 = 987_654_321_123
        let seeded = ledger(epsilon: 1, noiseSeed: seed)
        #expect(seeded.noise == "seeded" && !seeded.privateRelease)
        #expect(!seeded.json.contains(String(seed)) && !seeded.json.contains("noise_seed"))
        let secure = ledger(epsilon: 1, noiseSeed: nil)
        #expect(secure.noise == "secure" && secure.privateRelease)
    }

    /// Ledgers written before `private_release` existed still load, and one that recorded a
    /// seed is read as no private release.
    @Test func olderLedgersStillLoad() throws {
        var text = ledger(epsilon: 1, noiseSeed: 5).json
        text = text.replacingOccurrences(of: #""private_release" : false,"#, with: #""noise_seed" : 5,"#)
        #expect(!text.contains("private_release"))
        let old = try PrivacyLedger(json: text)
        #expect(old.noise == "seeded" && !old.privateRelease)
    }
}
