import Foundation
import Testing
@testable import DPFT

/// The reference values written by tools/make_accounting_fixtures.py (Opacus, dp_accounting,
/// prv_accountant and mpmath; see the script for what each one is).
struct AccountingReference: Decodable {
    struct RDPValue: Decodable { var epsilon: Double; var order: Double }
    struct PRVValue: Decodable { var lower: Double; var estimate: Double; var upper: Double }
    struct Segment: Decodable { var noiseMultiplier: Double; var sampleRate: Double; var steps: Int }
    struct Point: Decodable {
        var noiseMultiplier: Double
        var sampleRate: Double
        var steps: Int
        var delta: Double
        var rdpOpacus: RDPValue
        var rdpDpAccounting: RDPValue
        var pldDpAccounting: Double
        var prvAccountant: PRVValue?

        var segment: MechanismSegment {
            MechanismSegment(noiseMultiplier: noiseMultiplier, sampleRate: sampleRate, steps: steps)
        }
        var name: String { "σ=\(noiseMultiplier) q=\(sampleRate) T=\(steps) δ=\(delta)" }
    }
    struct History: Decodable {
        var segments: [Segment]
        var delta: Double
        var rdpOpacus: RDPValue
        var pldDpAccounting: Double
        var prvAccountant: PRVValue?

        var history: [MechanismSegment] {
            segments.map { MechanismSegment(noiseMultiplier: $0.noiseMultiplier, sampleRate: $0.sampleRate, steps: $0.steps) }
        }
    }
    struct PerOrder: Decodable { var noiseMultiplier: Double; var sampleRate: Double; var rdp: [Double] }

    var orders: [Double]
    var pldDiscretization: Double
    var prvEpsError: Double
    var points: [Point]
    var histories: [History]
    var rdpPerOrder: [PerOrder]

    static func load() throws -> AccountingReference {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(AccountingReference.self,
                                  from: Data(contentsOf: Fixtures.url("accounting/reference.json")))
    }
}

/// |a − b| / max(|b|, floor).
private func relativeDifference(_ a: Double, _ b: Double, floor: Double = 1e-300) -> Double {
    abs(a - b) / max(abs(b), floor)
}

@Suite struct AccountingReferenceTests {
    @Test func fixtureSpansTheIssuesRanges() throws {
        let reference = try AccountingReference.load()
        #expect(reference.points.count >= 30)
        #expect(reference.orders == RDPAccountant.defaultOrders, "the fixture was made for other RDP orders")
        let qs = reference.points.map(\.sampleRate), sigmas = reference.points.map(\.noiseMultiplier)
        let steps = reference.points.map(\.steps), deltas = reference.points.map(\.delta)
        #expect(qs.min()! <= 1e-4 && qs.max()! >= 0.5)
        #expect(sigmas.min()! <= 0.5 && sigmas.max()! >= 20)
        #expect(steps.min()! == 1 && steps.max()! >= 100_000)
        #expect(deltas.min()! <= 1e-8 && deltas.max()! >= 1e-3)
    }

    /// Same orders, same conversion (Balle et al. 2020 Thm 21): ε within 1e-6 relative of
    /// Opacus, at the same best order. dp_accounting sums |terms| of the fractional-order series
    /// (an upper bound of the exact value), so dpft may only be lower than it.
    @Test func rdpEpsilonMatchesOpacus() throws {
        let reference = try AccountingReference.load()
        let accountant = RDPAccountant()
        var worst = (difference: 0.0, name: "")
        for point in reference.points {
            let spent = try accountant.epsilon(history: [point.segment], delta: point.delta)
            let difference = relativeDifference(spent.epsilon, point.rdpOpacus.epsilon)
            if difference > worst.difference { worst = (difference, point.name) }
            #expect(difference <= 1e-6, "\(point.name): dpft \(spent.epsilon), Opacus \(point.rdpOpacus.epsilon)")
            #expect(abs((spent.rdpOrder ?? 0) - point.rdpOpacus.order) < 1e-9,
                    "\(point.name): best order \(String(describing: spent.rdpOrder)), Opacus \(point.rdpOpacus.order)")
            #expect(spent.epsilon <= point.rdpDpAccounting.epsilon * (1 + 1e-6),
                    "\(point.name): dpft \(spent.epsilon) above dp_accounting \(point.rdpDpAccounting.epsilon)")
        }
        print("RDP ε vs Opacus: largest relative difference \(worst.difference) at \(worst.name)")
    }

    /// Per-order RDP of one step against 40-digit numerical integration of A_α (mpmath): an
    /// implementation-independent check of the integer sum and the fractional series, including
    /// q = 1e-4, σ = 20 where A_α − 1 ≈ 1e-12. Tolerance 1e-9 relative: the sums run over up to
    /// ~10⁴ terms in double precision, each with relative rounding ~1e-15.
    @Test func rdpPerOrderMatchesHighPrecisionIntegration() throws {
        let reference = try AccountingReference.load()
        var worst = (difference: 0.0, name: "")
        for row in reference.rdpPerOrder {
            for (alpha, expected) in zip(reference.orders, row.rdp) {
                let value = RDPAccountant.rdp(order: alpha, noiseMultiplier: row.noiseMultiplier, sampleRate: row.sampleRate)
                let difference = relativeDifference(value, expected)
                let name = "σ=\(row.noiseMultiplier) q=\(row.sampleRate) α=\(alpha)"
                if difference > worst.difference { worst = (difference, name) }
                #expect(difference <= 1e-9, "\(name): dpft \(value), mpmath \(expected)")
            }
        }
        print("RDP per order vs mpmath: largest relative difference \(worst.difference) at \(worst.name)")
    }

    /// The PRV accountant's reported ε (connect-the-dots, the same discretisation as
    /// dp_accounting's PLDAccountant at h = 1e-4) agrees with dp_accounting to 1e-3 of ε,
    /// relative also for small ε (an absolute 1e-3 was 44% slack at ε = 0.002). Both are upper bounds, so neither may fall below
    /// prv_accountant's certified lower bound, and dpft's certified lower bound may not exceed
    /// either reference's upper bound; the estimates of dpft and prv_accountant (both Gopi et
    /// al.'s) agree within the sum of their error bounds.
    @Test func prvMatchesPLDAndPRVReferences() throws {
        let reference = try AccountingReference.load()
        let accountant = PRVAccountant()
        #expect(accountant.discretization == reference.pldDiscretization)
        var worst = (difference: 0.0, name: "")
        for point in reference.points {
            let spent = try accountant.epsilon(history: [point.segment], delta: point.delta)
            let lower = try #require(spent.epsilonLower), estimate = try #require(spent.epsilonEstimate)
            let difference = abs(spent.epsilon - point.pldDpAccounting) / point.pldDpAccounting
            if difference > worst.difference { worst = (difference, point.name) }
            #expect(difference <= 1e-3, "\(point.name): dpft \(spent.epsilon), dp_accounting PLD \(point.pldDpAccounting)")
            #expect(lower <= spent.epsilon && lower <= point.pldDpAccounting,
                    "\(point.name): lower bound \(lower) above an upper bound")
            if let prv = point.prvAccountant {
                #expect(spent.epsilon >= prv.lower, "\(point.name): dpft \(spent.epsilon) below prv_accountant's lower bound \(prv.lower)")
                #expect(lower <= prv.upper, "\(point.name): dpft lower bound \(lower) above prv_accountant's upper bound \(prv.upper)")
                let allowed = reference.prvEpsError + accountant.gopiError(totalSteps: point.steps, deltaError: point.delta / 1000)
                #expect(abs(estimate - prv.estimate) <= allowed,
                        "\(point.name): estimate \(estimate) vs prv_accountant \(prv.estimate)")
            }
        }
        print("PRV ε vs dp_accounting PLD: largest relative difference \(worst.difference) at \(worst.name)")
    }

    /// Histories where σ and q change part way: RDP against Opacus (sum of per-segment RDP), PRV
    /// against dp_accounting's composition of the segments' PLDs.
    @Test func heterogeneousHistoriesMatchReferences() throws {
        let reference = try AccountingReference.load()
        for entry in reference.histories {
            let name = entry.segments.map { "(\($0.noiseMultiplier), \($0.sampleRate), \($0.steps))" }.joined(separator: " ")
            let rdp = try RDPAccountant().epsilon(history: entry.history, delta: entry.delta)
            #expect(relativeDifference(rdp.epsilon, entry.rdpOpacus.epsilon) <= 1e-6,
                    "\(name): RDP \(rdp.epsilon), Opacus \(entry.rdpOpacus.epsilon)")
            let prv = try PRVAccountant().epsilon(history: entry.history, delta: entry.delta)
            #expect(abs(prv.epsilon - entry.pldDpAccounting) / entry.pldDpAccounting <= 1e-3,
                    "\(name): PRV \(prv.epsilon), dp_accounting PLD \(entry.pldDpAccounting)")
            if let reference = entry.prvAccountant {
                #expect(prv.epsilon >= reference.lower, "\(name): PRV \(prv.epsilon) below prv_accountant's lower bound \(reference.lower)")
            }
        }
    }
}
