import Foundation
import Testing
@testable import DPFT

/// Inputs at the edges of what the accountants can represent: tiny σ (enormous ε per step) and
/// very loose targets. Each once crashed (a Double → Int trap) or took minutes; now each is a
/// typed error or an answer within the time limit.
@Suite struct AccountingLimitsTests {
    /// `dpft privacy epsilon --noise-multiplier 1e-9 --sample-rate 0.004338 --steps 1
    /// --delta 1e-5 --accountant prv` trapped converting an infinite grid index to Int.
    @Test(.timeLimit(.minutes(1)))
    func prvRefusesATinyNoiseMultiplierWithATypedError() throws {
        for sigma in [1e-9, 1e-5, 1e-3] {
            let segment = MechanismSegment(noiseMultiplier: sigma, sampleRate: 0.004338, steps: 1)
            #expect(throws: AccountingError.self, "σ = \(sigma)") {
                try Accountant.prv.epsilon(history: [segment], delta: 1e-5)
            }
            do {
                _ = try Accountant.prv.epsilon(history: [segment], delta: 1e-5)
            } catch let error as AccountingError {
                guard case .gridTooLarge = error else { Issue.record("σ = \(sigma): \(error)"); continue }
                #expect(error.description.contains("--accountant rdp"))
            }
        }
    }

    /// The grid indices of one step's PLD are checked as Doubles before conversion.
    @Test func gridIndicesRejectNonFiniteAndHugeSpans() {
        #expect(throws: AccountingError.self) { try Discretisation.gridIndices(0, .infinity) }
        #expect(throws: AccountingError.self) { try Discretisation.gridIndices(-.infinity, 0) }
        #expect(throws: AccountingError.self) { try Discretisation.gridIndices(0, .nan) }
        #expect(throws: AccountingError.self) { try Discretisation.gridIndices(0, 1e30) }
        #expect((try? Discretisation.gridIndices(-3, 5)).map { [$0.0, $0.1] } == [-3, 5])
    }

    /// Small σ (ε of tens to hundreds per step) is accounted on a coarser grid instead of
    /// failing or taking minutes. At q = 1 (the Gaussian mechanism) the exact ε is known: the
    /// answer must stay an upper bound, within 1% of it, and not above RDP's bound.
    @Test(.timeLimit(.minutes(1)), arguments: [0.05, 0.1, 0.2])
    func smallNoiseMultipliersAreAccountedOnACoarserGrid(sigma: Double) throws {
        let segment = MechanismSegment(noiseMultiplier: sigma, sampleRate: 1, steps: 1)
        let prv = try Accountant.prv.epsilon(history: [segment], delta: 1e-5)
        let rdp = try Accountant.rdp.epsilon(history: [segment], delta: 1e-5)
        #expect(prv.epsilon.isFinite && prv.epsilon > 0)
        #expect(prv.epsilon <= rdp.epsilon, "σ = \(sigma): PRV \(prv.epsilon) above RDP \(rdp.epsilon)")
        #expect(try #require(prv.epsilonLower) <= prv.epsilon)
        let exact = gaussianMechanismEpsilon(sigma: sigma, delta: 1e-5)
        #expect(prv.epsilon >= exact * (1 - 1e-9), "σ = \(sigma): PRV \(prv.epsilon) below the exact \(exact)")
        #expect(prv.epsilon <= exact * 1.01, "σ = \(sigma): PRV \(prv.epsilon) vs exact \(exact)")
    }

    /// `dpft privacy noise --epsilon 1000 --sample-rate 0.004338 --steps 3 --delta 1e-5
    /// --accountant prv` ran for minutes, and a recipe with `target_epsilon: 1e6` calibrated
    /// for over two; both now answer within the limit (a debug build; release takes ~2 s), and
    /// the answer still spends at most the target.
    @Test(.timeLimit(.minutes(1)), arguments: [1000.0, 1e6])
    func calibrationOfLooseTargetsFinishes(target: Double) throws {
        for accountant in Accountant.allCases {
            let calibration = try accountant.noiseMultiplier(targetEpsilon: target, delta: 1e-5,
                                                             sampleRate: 0.004338, steps: 3)
            #expect(calibration.spent.epsilon <= target)
            let atFloor = calibration.noiseMultiplier == Accountant.smallestNoiseMultiplier
            let tolerance = max(0.01, 1e-4 * target)
            #expect(atFloor || calibration.spent.epsilon >= target - tolerance,
                    "\(accountant) target \(target): σ = \(calibration.noiseMultiplier), ε = \(calibration.spent.epsilon)")
        }
    }
}
