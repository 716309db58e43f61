import Foundation
import Testing
@testable import DPFT

/// ε of the Gaussian mechanism with sensitivity 1 and noise σ at δ, exactly (Balle & Wang 2018,
/// Thm 8): δ(ε) = Φ(1/(2σ) − εσ) − e^ε Φ(−1/(2σ) − εσ), solved for ε by bisection. Both terms
/// are evaluated in log space, so that the large ε of small σ (hundreds) does not overflow e^ε.
func gaussianMechanismEpsilon(sigma: Double, delta: Double) -> Double {
    func deltaAt(_ epsilon: Double) -> Double {
        let first = logNormalSurvival(-(1 / (2 * sigma) - epsilon * sigma))
        let second = epsilon + logNormalSurvival(1 / (2 * sigma) + epsilon * sigma)
        return exp(first) - exp(second)
    }
    var low = 0.0, high = 10_000.0
    for _ in 0..<200 {
        let middle = 0.5 * (low + high)
        if deltaAt(middle) > delta { low = middle } else { high = middle }
    }
    return high
}

@Suite struct AccountingTests {
    // MARK: FFT

    @Test(arguments: [2, 4, 8, 16, 32, 128, 512])
    func fftMatchesNaiveTransform(size: Int) {
        var generator = SeededGenerator(seed: UInt64(size))
        let real = (0..<size).map { _ in Double.random(in: -1...1, using: &generator) }
        let imaginary = (0..<size).map { _ in Double.random(in: -1...1, using: &generator) }
        let fft = FFT(count: size)
        var fastReal = real, fastImaginary = imaginary
        fft.forward(real: &fastReal, imaginary: &fastImaginary)
        let naive = discreteFourierTransformNaive(real: real, imaginary: imaginary)
        var worst = 0.0
        for k in 0..<size {
            worst = max(worst, abs(fastReal[k] - naive.real[k]), abs(fastImaginary[k] - naive.imaginary[k]))
        }
        // Both sum `size` terms of magnitude ≤ √2: rounding of order size·1e-16.
        #expect(worst <= 1e-13 * Double(size), "largest difference \(worst) at N = \(size)")
        fft.inverse(real: &fastReal, imaginary: &fastImaginary)
        var roundTrip = 0.0
        for k in 0..<size {
            roundTrip = max(roundTrip, abs(fastReal[k] - real[k]), abs(fastImaginary[k] - imaginary[k]))
        }
        #expect(roundTrip <= 1e-14 * Double(size), "round trip error \(roundTrip) at N = \(size)")
    }

    // MARK: RDP

    @Test func rdpSpecialCases() {
        for alpha in [1.5, 2, 7.3, 32] {
            // q = 1: the Gaussian mechanism, α/(2σ²).
            #expect(RDPAccountant.rdp(order: alpha, noiseMultiplier: 0.7, sampleRate: 1) == alpha / (2 * 0.7 * 0.7))
            #expect(RDPAccountant.rdp(order: alpha, noiseMultiplier: .infinity, sampleRate: 0.1) == 0)
            #expect(RDPAccountant.rdp(order: alpha, noiseMultiplier: 1, sampleRate: 0) == 0)
        }
        // α = 2 in closed form: A₂ = Σ_k C(2,k)(1−q)^{2−k} q^k e^{(k²−k)/(2σ²)} = 1 + q²(e^{1/σ²} − 1).
        for (sigma, q) in [(0.5, 0.3), (1.0, 0.01), (4.0, 1e-4)] {
            let expected = log1p(q * q * expm1(1 / (sigma * sigma)))
            let value = RDPAccountant.rdp(order: 2, noiseMultiplier: sigma, sampleRate: q)
            #expect(abs(value - expected) <= 1e-14 * expected, "σ=\(sigma) q=\(q): \(value) vs \(expected)")
        }
        // RDP is non-decreasing in the order, across the integer and fractional code paths.
        for (sigma, q) in [(0.6, 0.2), (1.0, 0.01), (3.0, 0.5), (20.0, 1e-4)] {
            let values = RDPAccountant.defaultOrders.map {
                RDPAccountant.rdp(order: $0, noiseMultiplier: sigma, sampleRate: q)
            }
            for index in 1..<values.count {
                #expect(values[index] >= values[index - 1] * (1 - 1e-12),
                        "σ=\(sigma) q=\(q): rdp(\(RDPAccountant.defaultOrders[index])) < rdp(\(RDPAccountant.defaultOrders[index - 1]))")
            }
        }
    }

    @Test func rdpConversionIsBalleEtAlTheorem21() throws {
        let accountant = RDPAccountant()
        let segment = MechanismSegment(noiseMultiplier: 1.1, sampleRate: 0.01, steps: 5000)
        let delta = 1e-5
        let spent = try accountant.epsilon(history: [segment], delta: delta)
        let alpha = try #require(spent.rdpOrder)
        let rdp = 5000 * RDPAccountant.rdp(order: alpha, noiseMultiplier: 1.1, sampleRate: 0.01)
        let expected = rdp + log((alpha - 1) / alpha) - (log(delta) + log(alpha)) / (alpha - 1)
        #expect(abs(spent.epsilon - expected) <= 1e-12 * expected)
        #expect(spent.warnings.isEmpty)
    }

    @Test func rdpWarnsWhenTheBestOrderIsAtAnEnd() throws {
        // Lots of noise, one step: the bound keeps improving with the order.
        let spent = try RDPAccountant().epsilon(
            history: [MechanismSegment(noiseMultiplier: 50, sampleRate: 0.001, steps: 1)], delta: 1e-5)
        #expect(spent.rdpOrder == RDPAccountant.defaultOrders.last)
        #expect(spent.warnings.count == 1)
    }

    /// A history is the sum of its parts: RDP adds per order, and the PRV accountant gives the
    /// same ε whatever the order of the segments or the way a constant stretch is split.
    @Test func historyEqualsTheSumOfItsParts() throws {
        let first = MechanismSegment(noiseMultiplier: 1.0, sampleRate: 0.02, steps: 700)
        let second = MechanismSegment(noiseMultiplier: 0.7, sampleRate: 0.05, steps: 120)
        let accountant = RDPAccountant()
        let whole = try accountant.rdp(history: [first, second])
        let parts = zip(try accountant.rdp(history: [first]), try accountant.rdp(history: [second])).map(+)
        for (a, b) in zip(whole, parts) { #expect(abs(a - b) <= 1e-14 * b) }
        var firstHalf = first, secondHalf = first
        firstHalf.steps = 300; secondHalf.steps = 400
        for (a, b) in zip(try accountant.rdp(history: [firstHalf, second, secondHalf]), whole) {
            #expect(abs(a - b) <= 1e-14 * b)
        }

        let prv = PRVAccountant()
        let reference = try prv.epsilon(history: [first, second], delta: 1e-6)
        let swapped = try prv.epsilon(history: [second, first], delta: 1e-6)
        let split = try prv.epsilon(history: [firstHalf, second, secondHalf], delta: 1e-6)
        #expect(abs(swapped.epsilon - reference.epsilon) <= 1e-9 * reference.epsilon)
        #expect(abs(split.epsilon - reference.epsilon) <= 1e-9 * reference.epsilon)
        // Composition only adds privacy loss.
        let firstAlone = try prv.epsilon(history: [first], delta: 1e-6)
        #expect(firstAlone.epsilon < reference.epsilon)
    }

    @Test func emptyAndFreeHistoriesSpendNothing() throws {
        for accountant in Accountant.allCases {
            #expect(try accountant.epsilon(history: [], delta: 1e-5).epsilon == 0)
            let free = [MechanismSegment(noiseMultiplier: 1, sampleRate: 0.1, steps: 0),
                        MechanismSegment(noiseMultiplier: .infinity, sampleRate: 0.1, steps: 100)]
            #expect(try accountant.epsilon(history: free, delta: 1e-5).epsilon == 0)
        }
    }

    // MARK: PRV

    /// Without subsampling, T steps of σ are one Gaussian mechanism with σ/√T, whose ε is known
    /// exactly. The PRV accountant must be above it (it is an upper bound) and within 1e-3 of
    /// it, relative.
    @Test(arguments: [(1.0, 1, 1e-5), (8.0, 100, 1e-6), (50.0, 10_000, 1e-8), (20.0, 1000, 1e-3)])
    func prvMatchesTheExactGaussianMechanism(sigma: Double, steps: Int, delta: Double) throws {
        let exact = gaussianMechanismEpsilon(sigma: sigma / Double(steps).squareRoot(), delta: delta)
        let spent = try PRVAccountant().epsilon(
            history: [MechanismSegment(noiseMultiplier: sigma, sampleRate: 1, steps: steps)], delta: delta)
        #expect(spent.epsilon >= exact - 1e-9, "PRV \(spent.epsilon) below the exact \(exact)")
        #expect(spent.epsilon - exact <= 1e-3 * exact, "PRV \(spent.epsilon), exact \(exact)")
        #expect(try #require(spent.epsilonLower) <= exact)
    }

    /// The single-step hockey-stick curves: q = 1 is the Gaussian mechanism (both directions),
    /// and connect-the-dots reproduces δ exactly at its grid points.
    @Test func singleStepHockeyStick() throws {
        let gaussian = SubsampledGaussian(sigma: 1.3, sampleRate: 1)
        for epsilon in [0.0, 0.5, 2.0, 6.0] {
            let expected = normalCDF(1 / 2.6 - epsilon * 1.3) - exp(epsilon) * normalCDF(-1 / 2.6 - epsilon * 1.3)
            #expect(abs(gaussian.delta(epsilon, .remove) - expected) <= 1e-13)
            #expect(abs(gaussian.delta(epsilon, .add) - expected) <= 1e-13)
        }
        // Both directions against brute force: δ(ε) = ∫ (P(x) − e^ε Q(x))₊ dx on a fine grid.
        for (sigma, q) in [(0.9, 0.05), (2.0, 0.3), (0.6, 0.001)] {
            let mechanism = SubsampledGaussian(sigma: sigma, sampleRate: q)
            func density(_ x: Double, _ mean: Double) -> Double {
                exp(-(x - mean) * (x - mean) / (2 * sigma * sigma)) / (sigma * (2 * Double.pi).squareRoot())
            }
            for epsilon in [-0.5, 0.01, 0.3, 1.0, 2.5] {
                var remove = 0.0, add = 0.0
                let low = -16 * sigma, high = 1 + 16 * sigma, points = 400_000
                let dx = (high - low) / Double(points)
                for i in 0..<points {
                    let x = low + (Double(i) + 0.5) * dx   // midpoint rule
                    let mixture = (1 - q) * density(x, 0) + q * density(x, 1), base = density(x, 0)
                    remove += max(0, mixture - exp(epsilon) * base) * dx
                    add += max(0, base - exp(epsilon) * mixture) * dx
                }
                #expect(abs(mechanism.delta(epsilon, .remove) - remove) <= 1e-6 * remove + 1e-12,
                        "σ=\(sigma) q=\(q) ε=\(epsilon): remove \(mechanism.delta(epsilon, .remove)), brute force \(remove)")
                #expect(abs(mechanism.delta(epsilon, .add) - add) <= 1e-6 * add + 1e-12,
                        "σ=\(sigma) q=\(q) ε=\(epsilon): add \(mechanism.delta(epsilon, .add)), brute force \(add)")
            }
        }
        let mechanism = SubsampledGaussian(sigma: 0.9, sampleRate: 0.05)
        let h = 1e-3
        let pld = try Discretisation.connectTheDots(mechanism, .remove, h: h)
        #expect(pld.masses.allSatisfy { $0 >= 0 })
        #expect(abs(pld.masses.reduce(0, +) + pld.infinityMass - 1) <= 1e-9)
        for index in stride(from: pld.lowerIndex + 1, through: pld.upperIndex, by: 997) {
            let epsilon = Double(index) * h
            var delta = pld.infinityMass
            for (i, mass) in pld.masses.enumerated() where Double(pld.lowerIndex + i) * h > epsilon {
                delta += mass * (1 - exp(epsilon - Double(pld.lowerIndex + i) * h))
            }
            let exact = mechanism.delta(epsilon, .remove)
            #expect(abs(delta - exact) <= 1e-9 * max(exact, 1e-12), "ε=\(epsilon): discrete \(delta), exact \(exact)")
        }
    }

    // MARK: calibration

    /// σ → ε → σ: calibrating for the ε that σ spends returns σ′ ≥ σ (ε decreases with σ)
    /// spending ε′ ∈ [ε − 0.01, ε] (the tolerance).
    @Test(arguments: [(Accountant.rdp, 1.0, 0.01, 1000, 1e-5), (.rdp, 0.6, 1e-4, 100_000, 1e-8),
                      (.rdp, 8.0, 0.3, 2000, 1e-3), (.prv, 1.1, 0.004, 2000, 1e-5), (.prv, 3.0, 0.2, 50, 1e-6)])
    func calibrationRoundTrip(accountant: Accountant, sigma: Double, q: Double, steps: Int, delta: Double) throws {
        let segment = MechanismSegment(noiseMultiplier: sigma, sampleRate: q, steps: steps)
        let epsilon = try accountant.epsilon(history: [segment], delta: delta).epsilon
        let calibration = try accountant.noiseMultiplier(targetEpsilon: epsilon, delta: delta, sampleRate: q, steps: steps)
        #expect(calibration.spent.epsilon <= epsilon)
        #expect(calibration.spent.epsilon >= epsilon - 0.01)
        #expect(calibration.noiseMultiplier >= sigma * (1 - 1e-9))
        let check = MechanismSegment(noiseMultiplier: calibration.noiseMultiplier, sampleRate: q, steps: steps)
        #expect(try accountant.epsilon(history: [check], delta: delta).epsilon == calibration.spent.epsilon)
    }

    @Test func calibrationRejectsAnUnreachableTarget() throws {
        #expect(throws: AccountingError.self) {
            try Accountant.rdp.noiseMultiplier(targetEpsilon: 1e-3, delta: 1e-8, sampleRate: 0.5, steps: 100_000)
        }
        do {
            _ = try Accountant.rdp.noiseMultiplier(targetEpsilon: 1e-3, delta: 1e-8, sampleRate: 0.5, steps: 100_000)
        } catch let error as AccountingError {
            guard case .unreachableEpsilon(let target, _, let smallest, _) = error else {
                Issue.record("unexpected error \(error)"); return
            }
            #expect(target == 1e-3 && smallest > 1e-3)
            #expect(error.description.contains("0.001"))
        }
    }

    @Test func maxStepsStopsAtTheBudget() throws {
        for accountant in Accountant.allCases {
            let history = [MechanismSegment(noiseMultiplier: 1.0, sampleRate: 0.01, steps: 300)]
            let steps = try accountant.maxSteps(epsilonBudget: 2, delta: 1e-5, noiseMultiplier: 1.2,
                                                sampleRate: 0.01, history: history)
            func spent(_ n: Int) throws -> Double {
                try accountant.epsilon(history: history + [MechanismSegment(noiseMultiplier: 1.2, sampleRate: 0.01, steps: n)],
                                       delta: 1e-5).epsilon
            }
            #expect(steps > 0)
            #expect(try spent(steps) <= 2, "\(accountant): \(steps) steps overspend")
            #expect(try spent(steps + 1) > 2, "\(accountant): \(steps + 1) steps would still fit")
        }
        // A history over budget leaves no steps.
        let spent = [MechanismSegment(noiseMultiplier: 0.5, sampleRate: 0.1, steps: 1000)]
        #expect(try Accountant.rdp.maxSteps(epsilonBudget: 1, delta: 1e-5, noiseMultiplier: 1,
                                            sampleRate: 0.01, history: spent) == 0)
    }

    // MARK: input validation

    @Test func invalidInputIsATypedErrorNamingTheValue() throws {
        let cases: [(MechanismSegment, Double, AccountingError)] = [
            (MechanismSegment(noiseMultiplier: 1, sampleRate: 0, steps: 10), 1e-5, .invalidSampleRate(0)),
            (MechanismSegment(noiseMultiplier: 1, sampleRate: 1.5, steps: 10), 1e-5, .invalidSampleRate(1.5)),
            (MechanismSegment(noiseMultiplier: 1, sampleRate: -0.1, steps: 10), 1e-5, .invalidSampleRate(-0.1)),
            (MechanismSegment(noiseMultiplier: 0, sampleRate: 0.1, steps: 10), 1e-5, .invalidNoiseMultiplier(0)),
            (MechanismSegment(noiseMultiplier: -2, sampleRate: 0.1, steps: 10), 1e-5, .invalidNoiseMultiplier(-2)),
            (MechanismSegment(noiseMultiplier: 1, sampleRate: 0.1, steps: -3), 1e-5, .invalidSteps(-3)),
            (MechanismSegment(noiseMultiplier: 1, sampleRate: 0.1, steps: 10), 0, .invalidDelta(0)),
            (MechanismSegment(noiseMultiplier: 1, sampleRate: 0.1, steps: 10), 1, .invalidDelta(1)),
            (MechanismSegment(noiseMultiplier: 1, sampleRate: 0.1, steps: 10), -1e-5, .invalidDelta(-1e-5)),
        ]
        for accountant in Accountant.allCases {
            for (segment, delta, expected) in cases {
                #expect(throws: expected) { try accountant.epsilon(history: [segment], delta: delta) }
            }
        }
        #expect(AccountingError.invalidSampleRate(1.5).description.contains("1.5"))
        #expect(AccountingError.invalidDelta(0).description.contains("delta 0.0"))
        #expect(AccountingError.invalidNoiseMultiplier(-2).description.contains("-2"))
        #expect(AccountingError.invalidSteps(-3).description.contains("-3"))
        #expect(throws: AccountingError.invalidSteps(Int.max)) {
            try Accountant.prv.epsilon(history: [MechanismSegment(noiseMultiplier: 1, sampleRate: 0.1, steps: Int.max)], delta: 1e-5)
        }
        #expect(throws: AccountingError.invalidSteps(0)) {
            try Accountant.rdp.noiseMultiplier(targetEpsilon: 1, delta: 1e-5, sampleRate: 0.01, steps: 0)
        }
        // NaN is rejected, not propagated.
        #expect(throws: AccountingError.self) {
            try Accountant.rdp.epsilon(history: [MechanismSegment(noiseMultiplier: .nan, sampleRate: 0.1, steps: 1)], delta: 1e-5)
        }
        #expect(throws: AccountingError.self) {
            try Accountant.rdp.epsilon(history: [MechanismSegment(noiseMultiplier: 1, sampleRate: .nan, steps: 1)], delta: 1e-5)
        }
        #expect(throws: AccountingError.invalidEpsilon(-1)) {
            try Accountant.rdp.noiseMultiplier(targetEpsilon: -1, delta: 1e-5, sampleRate: 0.01, steps: 10)
        }
        #expect(throws: AccountingError.invalidDiscretization(0)) { try PRVAccountant(discretization: 0) }
    }

    @Test func samplingFromBatchSizeDatasetSizeAndEpochs() throws {
        let segment = try MechanismSegment(noiseMultiplier: 1, batchSize: 256, datasetSize: 60_000, epochs: 3)
        #expect(segment.sampleRate == 256.0 / 60_000)
        #expect(segment.steps == 704)   // ⌈3 · 60000 / 256⌉ = ⌈703.125⌉
        let exact = try MechanismSegment(noiseMultiplier: 1, batchSize: 100, datasetSize: 1000, epochs: 2)
        #expect(exact.steps == 20)
        let half = try MechanismSegment(noiseMultiplier: 1, batchSize: 100, datasetSize: 1000, epochs: 0.55)
        #expect(half.steps == 6)
        #expect(throws: AccountingError.self) {
            try MechanismSegment(noiseMultiplier: 1, batchSize: 2000, datasetSize: 1000, epochs: 1)
        }
        #expect(throws: AccountingError.self) {
            try MechanismSegment(noiseMultiplier: 1, batchSize: 10, datasetSize: 0, epochs: 1)
        }
        #expect(throws: AccountingError.self) {
            try MechanismSegment(noiseMultiplier: 1, batchSize: 10, datasetSize: 100, epochs: -1)
        }
        // E·N beyond Int: no trap, the steps come from the floating-point quotient.
        let huge = try MechanismSegment(noiseMultiplier: 1, batchSize: Int.max / 2, datasetSize: Int.max / 2, epochs: 7)
        #expect(huge.steps == 7)
    }
}
