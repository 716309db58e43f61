import Foundation

/// Numerical (ε, δ) accountant on privacy-loss distributions (the distribution of the "privacy
/// random variable" of Gopi, Lee & Wutschitz 2021, "Numerical Composition of Differential
/// Privacy"). Sizes: h = grid spacing of losses, W = FFT window (a power of two), T = steps.
///
/// * **Upper bound (the reported ε)**: each segment's step is discretised pessimistically by
///   connect-the-dots (Doroshenko et al. 2022) for both the remove and the add direction; the
///   T-fold composition is the T-th power of the PLD's Fourier transform (a hand-written radix-2
///   FFT on a window W chosen by Chernoff bounds so that at most 1e-15 of mass wraps around;
///   that mass is added to δ). The result dominates the true composition, so ε is a guaranteed
///   upper bound (up to floating-point rounding, as in every FFT accountant). This is the
///   method of Google's dp_accounting `PLDAccountant`.
/// * **Estimate and lower bound**: Gopi et al.'s mean-preserving discretisation of the remove
///   direction on the same grid, composed in the same FFT, gives the estimate ε̃(δ); their
///   Thm 5.5 bounds its error by ε_err = h·√(T/2 · log(12/δ_err)) with δ_err = δ/1000, so
///   `epsilonLower` = ε̃(δ + δ_err) − ε_err ≤ true ε (as prv_accountant / Opacus compute).
///
/// Stated error: the true ε lies in [`epsilonLower`, `epsilon`]. With the default h = 1e-4 the
/// reported ε is in practice within ~1e-3 of the true ε (the tests compare with dp_accounting
/// and prv_accountant), and a priori the gap `epsilon − epsilonLower` is reported with every
/// answer. Cost: O(W log W) per segment, independent of T beyond the window width (≈ √T).
public struct PRVAccountant: Sendable {
    /// Spacing h of the privacy-loss grid (dp_accounting's `value_discretization_interval`).
    public let discretization: Double
    /// Mass that may be truncated from each end of the composed distribution (added to δ).
    public let tailMassTruncation: Double = 1e-15
    /// Largest FFT window the accountant will use (2²² points ≈ 64 MiB of spectra).
    public static let maximumWindow = 1 << 22
    /// Most grid points one step's privacy-loss distribution may span before the grid is
    /// coarsened (see `gridSpacing`).
    public static let maximumStepPoints = 1 << 18
    /// Coarsest grid spacing the accountant coarsens to; a step whose losses need more is
    /// refused with `AccountingError.gridTooLarge` (σ below ≈ 0.005: use the RDP accountant).
    public static let coarsestSpacing = 0.1

    /// - Throws: `AccountingError.invalidDiscretization` unless 0 < h ≤ 0.1.
    public init(discretization: Double = 1e-4) throws {
        guard discretization > 0, discretization <= 0.1 else {
            throw AccountingError.invalidDiscretization(discretization)
        }
        self.discretization = discretization
    }

    /// The accountant with h = 1e-4.
    public init() { self.discretization = 1e-4 }

    /// ε spent by `history` at `delta`: the connect-the-dots upper bound (the guarantee), with
    /// Gopi et al.'s estimate and certified lower bound.
    /// - Throws: `AccountingError` for invalid segments or δ, when the grid would exceed
    ///   `maximumWindow`, or when δ is below the grid's floating-point resolution.
    public func epsilon(history: [MechanismSegment], delta: Double) throws -> PrivacySpent {
        try validate(history: history, delta: delta)
        let segments = merged(history)
        guard !segments.isEmpty else {
            return PrivacySpent(epsilon: 0, delta: delta, accountant: .prv, epsilonLower: 0, epsilonEstimate: 0)
        }
        let h = try gridSpacing(segments)
        let totalSteps = segments.reduce(0) { $0 + $1.steps }
        let deltaError = delta / 1000

        // Remove direction: connect-the-dots (real part) and Gopi's mean-preserving PLD
        // (imaginary part) share one FFT window.
        let gopiRange = try gopiTruncation(segments, delta: delta, deltaError: deltaError,
                                           epsilonError: gopiError(totalSteps: totalSteps, deltaError: deltaError, h: h))
        var removeParts: [(DiscretePLD, DiscretePLD, Int)] = []
        for segment in segments {
            let mechanism = SubsampledGaussian(sigma: segment.noiseMultiplier, sampleRate: segment.sampleRate)
            let pessimistic = try Discretisation.connectTheDots(mechanism, .remove, h: h)
            let meanPreserving = try Discretisation.meanPreserving(
                mechanism, h: h, lowerTruncation: -gopiRange, upperTruncation: gopiRange)
            removeParts.append((pessimistic, meanPreserving, segment.steps))
        }
        let removeBounds = chernoffBounds(removeParts.map { ($0.0, $0.2) })
        let removeWindow = try fftWindow(removeBounds)
        let gopiWindow = try fftWindow(chernoffBounds(removeParts.map { ($0.1, $0.2) }))
        let window = try fftSize(max(removeWindow.upper, gopiWindow.upper) - min(removeWindow.lower, gopiWindow.lower) + 1)
        try checkResolution(delta: delta - deltaError, window: window)
        let removeComposed = compose(removeParts.map { ($0.0, $0.1, $0.2) }, window: window)

        let removeUpper = pessimisticEpsilon(
            delta, masses: removeComposed.real, window: window, readFrom: removeWindow.lower,
            bounds: removeBounds, infinityMass: composedInfinityMass(removeParts.map { ($0.0, $0.2) }), h: h)
        // Gopi et al.'s estimate is unbiased only without clamping; its losses carry the
        // composed mean-matching shift.
        let gopiShift = removeParts.reduce(0.0) { $0 + Double($1.2) * $1.1.lossShift }
        let gopi = { (target: Double) in
            epsilonForDelta(target, masses: removeComposed.imaginary, window: window, readFrom: gopiWindow.lower,
                            readTo: gopiWindow.lower + window, h: h, lossShift: gopiShift, infinityMass: 0,
                            clampNegative: false)
        }
        let epsilonError = gopiError(totalSteps: totalSteps, deltaError: deltaError, h: h)
        let estimate = gopi(delta)
        let lower = max(0, gopi(delta + deltaError) - epsilonError)

        // Add direction: it only matters if it exceeds the remove direction. A coarse grid (8h)
        // gives a valid upper bound cheaply; refine only if that bound is not below.
        var epsilon = removeUpper
        if segments.contains(where: { $0.sampleRate < 1 }) {
            var addUpper = try addDirectionEpsilon(segments, delta: delta, h: 8 * h)
            if addUpper > removeUpper { addUpper = try addDirectionEpsilon(segments, delta: delta, h: h) }
            epsilon = max(epsilon, addUpper)
        }
        var warnings: [String] = []
        if !epsilon.isFinite {
            warnings.append("no finite ε at δ = \(delta): the privacy-loss distribution puts more than δ at infinite loss.")
        }
        return PrivacySpent(epsilon: epsilon, delta: delta, accountant: .prv,
                            epsilonLower: min(lower, epsilon), epsilonEstimate: max(0, estimate), warnings: warnings)
    }

    /// Gopi et al. Thm 5.5: the mean-preserving estimate is within ε_err of the truth (with δ
    /// off by δ_err) when h = ε_err / √(T/2 · log(12/δ_err)); so for our h,
    /// ε_err = h·√(T/2 · log(12/δ_err)) (h: the spacing used, `discretization` by default).
    func gopiError(totalSteps: Int, deltaError: Double, h: Double? = nil) -> Double {
        (h ?? discretization) * (Double(totalSteps) / 2 * log(12 / deltaError)).squareRoot()
    }

    /// The grid spacing for `segments`: `discretization`, unless one step's losses span more
    /// than `maximumStepPoints` points of it — then the span divided by that many points. Only
    /// small σ (ε in the tens or more per step) spans that far: σ = 0.5, q = 0.5 spans 2.1·10⁵
    /// points of 1e-4 and keeps h; σ = 0.3, q = 1 spans 7.8·10⁵ and gets h ≈ 3·10⁻⁴. Any spacing keeps connect-the-dots an upper bound; a coarser one only
    /// loosens it and widens the stated gap [`epsilonLower`, `epsilon`]. This bounds the time
    /// and memory of every answer, so noise calibration stays fast for any target.
    /// - Throws: `AccountingError.gridTooLarge` when even `coarsestSpacing` cannot hold a step.
    func gridSpacing(_ segments: [MechanismSegment]) throws -> Double {
        var span = 0.0
        for segment in segments {
            let range = SubsampledGaussian(sigma: segment.noiseMultiplier, sampleRate: segment.sampleRate)
                .connectTheDotsRange(.remove)
            span = max(span, range.upper - range.lower)
        }
        let limit = Double(PRVAccountant.maximumStepPoints)
        let needed = span / limit
        guard needed.isFinite, needed <= PRVAccountant.coarsestSpacing else {
            let points = needed.isFinite ? span / discretization : Double(Int.max)
            throw AccountingError.gridTooLarge(points: Int(min(points, Double(Int.max / 2))),
                                               limit: PRVAccountant.maximumStepPoints)
        }
        return max(discretization, needed)
    }

    /// Truncation L of the privacy random variable (Gopi et al. Remark 5.6, as prv_accountant's
    /// `compute_safe_domain_size`): the RDP ε of the whole history at δ_err/4 and of each single
    /// step at δ_err/(8T), whichever is larger, plus 3 (and at least ε_err + 3).
    func gopiTruncation(_ segments: [MechanismSegment], delta: Double, deltaError: Double,
                        epsilonError: Double) throws -> Double {
        let rdp = RDPAccountant()
        let totalSteps = segments.reduce(0) { $0 + $1.steps }
        var composed = [Double](repeating: 0, count: rdp.orders.count)
        var largest = 0.0
        for segment in segments {
            var single = segment
            single.steps = 1
            let perStep = try rdp.rdp(history: [single])
            for index in composed.indices { composed[index] += Double(segment.steps) * perStep[index] }
            largest = max(largest, try rdp.epsilon(rdp: perStep, delta: deltaError / 8 / Double(totalSteps)).epsilon)
        }
        largest = max(largest, try rdp.epsilon(rdp: composed, delta: deltaError / 4).epsilon)
        return max(largest, epsilonError) + 3
    }

    /// ε of the add direction alone (connect-the-dots at spacing `h`).
    func addDirectionEpsilon(_ segments: [MechanismSegment], delta: Double, h: Double) throws -> Double {
        var parts: [(DiscretePLD, Int)] = []
        for segment in segments {
            let mechanism = SubsampledGaussian(sigma: segment.noiseMultiplier, sampleRate: segment.sampleRate)
            parts.append((try Discretisation.connectTheDots(mechanism, .add, h: h), segment.steps))
        }
        let bounds = chernoffBounds(parts)
        let fftRange = try fftWindow(bounds)
        let window = try fftSize(fftRange.upper - fftRange.lower + 1)
        try checkResolution(delta: delta, window: window)
        let composed = compose(parts.map { ($0.0, nil, $0.1) }, window: window)
        return pessimisticEpsilon(delta, masses: composed.real, window: window, readFrom: fftRange.lower,
                                  bounds: bounds, infinityMass: composedInfinityMass(parts), h: h)
    }

    /// ε of a composed connect-the-dots PLD. Reading stops at the loss above which the Chernoff
    /// bound leaves at most 10⁻⁶·δ of mass, and that mass is added at +∞: the δ-curve only gets
    /// more pessimistic, and the FFT rounding noise (≈1e-16 a point) of the far, empty part of
    /// the window is not summed into δ.
    func pessimisticEpsilon(_ delta: Double, masses: [Double], window: Int, readFrom: Int,
                            bounds: ChernoffBounds, infinityMass: Double, h: Double) -> Double {
        let readTail = 1e-6 * delta
        let readTo = min(readFrom + window, bounds.upper(tail: readTail))
        return epsilonForDelta(delta, masses: masses, window: window, readFrom: readFrom, readTo: readTo,
                               h: h, lossShift: 0, infinityMass: infinityMass + readTail, clampNegative: true)
    }

    /// Joins segments with equal (σ, q) (composition commutes) and drops those without loss.
    func merged(_ history: [MechanismSegment]) -> [MechanismSegment] {
        var result: [MechanismSegment] = []
        for segment in history where !segment.isFree {
            if let index = result.firstIndex(where: {
                $0.noiseMultiplier == segment.noiseMultiplier && $0.sampleRate == segment.sampleRate
            }) {
                result[index].steps += segment.steps
            } else {
                result.append(segment)
            }
        }
        return result
    }

    func fftSize(_ points: Int) throws -> Int {
        var size = 2
        while size < points { size *= 2 }
        guard size <= PRVAccountant.maximumWindow else {
            throw AccountingError.gridTooLarge(points: points, limit: PRVAccountant.maximumWindow)
        }
        return size
    }

    /// Sums over W grid points carry rounding of order W·ulp; δ must stay well above that
    /// (prv_accountant has the same guard).
    func checkResolution(delta: Double, window: Int) throws {
        let smallest = 10 * Double(window) * Double.ulpOfOne
        guard delta > smallest else {
            throw AccountingError.deltaTooSmallForGrid(delta: delta, smallestDelta: smallest, gridPoints: window)
        }
    }

    /// 1 − Π (1 − m_s)^{T_s} + the truncated tail mass: the composed mass at +∞.
    func composedInfinityMass(_ parts: [(DiscretePLD, Int)]) -> Double {
        let logFinite = parts.reduce(0.0) { $0 + Double($1.1) * log1p(-$1.0.infinityMass) }
        return -expm1(logFinite) + tailMassTruncation
    }

    /// Chernoff bounds on the composition S of the finite parts of `parts` (loss indices):
    ///     P(S ≥ u) ≤ e^{−λu} Π_s M_s(λ)^{T_s},   M_s(λ) = Σ_k p_{s,k} e^{λk}   (λ > 0),
    /// and the mirror image with λ < 0, minimised over a set of λ (as dp_accounting's
    /// `compute_self_convolve_bounds`).
    struct ChernoffBounds {
        /// (λ, Σ_s T_s log M_s(λ)) for each λ tried.
        var moments: [(lambda: Double, logMoment: Double)]
        var trivialLower: Int, trivialUpper: Int

        /// The smallest index u with P(S ≥ u) ≤ `tail`.
        func upper(tail: Double) -> Int {
            var best = trivialUpper + 1
            for (lambda, logMoment) in moments where lambda > 0 {
                let bound = (logMoment - log(tail)) / lambda
                if bound.isFinite, bound < Double(best) { best = Int(bound.rounded(.up)) }   // < Int.max/4
            }
            return best
        }

        /// The largest index l with P(S ≤ l) ≤ `tail`.
        func lower(tail: Double) -> Int {
            var best = trivialLower - 1
            for (lambda, logMoment) in moments where lambda < 0 {
                let bound = (logMoment - log(tail)) / lambda
                if bound.isFinite, bound > Double(best) { best = Int(bound.rounded(.down)) }
            }
            return best
        }
    }

    func chernoffBounds(_ parts: [(DiscretePLD, Int)]) -> ChernoffBounds {
        let longest = Double(parts.map { $0.0.masses.count }.max() ?? 1)
        // The atoms (index, log mass) of each PLD, as two arrays.
        var atomIndices: [[Double]] = [], atomLogMasses: [[Double]] = []
        for (pld, _) in parts {
            var indices: [Double] = [], logMasses: [Double] = []
            for (i, mass) in pld.masses.enumerated() where mass > 0 {
                indices.append(Double(pld.lowerIndex + i)); logMasses.append(log(mass))
            }
            atomIndices.append(indices); atomLogMasses.append(logMasses)
        }
        var moments: [(lambda: Double, logMoment: Double)] = []
        // λ from 1/(4n) to 320/n per grid index (n = the longest single-step PLD); any λ gives a
        // valid bound, the set only decides how tight the window is.
        let scales: [Double] = [0.25, 0.5, 1, 2, 3, 4, 6, 8, 12, 16, 20, 30, 40, 60, 80, 120, 160, 240, 320]
        for scale in scales {
            for sign in [1.0, -1.0] {
                let lambda = sign * scale / longest   // per grid index
                var logMoment = 0.0
                for part in parts.indices {
                    logMoment += Double(parts[part].1) * logSumExp(atomLogMasses[part], plus: lambda, times: atomIndices[part])
                }
                moments.append((lambda, logMoment))
            }
        }
        // The support of the sum, in Double (index × steps can exceed Int), kept within Int.
        let limit = Double(Int.max / 4)
        let lowest = parts.reduce(0.0) { $0 + Double($1.0.lowerIndex) * Double($1.1) }
        let highest = parts.reduce(0.0) { $0 + Double($1.0.upperIndex) * Double($1.1) }
        return ChernoffBounds(moments: moments, trivialLower: Int(max(-limit, lowest)),
                              trivialUpper: Int(min(limit, highest)))
    }

    /// An upper bound on log Σᵢ exp(aᵢ + λ·bᵢ), shifted by the largest exponent so that nothing
    /// overflows. Terms more than 40 below the largest are not exponentiated: each is counted
    /// as e^{−40} instead (at most that, so the sum only grows and the Chernoff bound built on
    /// it stays valid). For the large λ that set the window's ends most terms are that small,
    /// which saves most of the exponentials of a wide grid.
    private func logSumExp(_ a: [Double], plus lambda: Double, times b: [Double]) -> Double {
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                var largest = -Double.infinity
                for i in 0..<a.count {
                    let exponent = a[i] + lambda * b[i]
                    if exponent > largest { largest = exponent }
                }
                let cutoff = largest - 40
                var sum = 0.0, negligible = 0
                for i in 0..<a.count {
                    let exponent = a[i] + lambda * b[i]
                    if exponent < cutoff { negligible += 1 } else { sum += exp(exponent - largest) }
                }
                return largest + log(sum + Double(negligible) * exp(-40.0))
            }
        }
    }

    /// The FFT window: loss indices [lower, upper] outside which the composition has at most
    /// `tailMassTruncation`/2 on each side (that mass may wrap around; it is added to δ).
    func fftWindow(_ bounds: ChernoffBounds) throws -> (lower: Int, upper: Int) {
        let lower = bounds.lower(tail: tailMassTruncation / 2), upper = bounds.upper(tail: tailMassTruncation / 2)
        guard upper - lower + 1 <= PRVAccountant.maximumWindow else {
            throw AccountingError.gridTooLarge(points: upper - lower + 1, limit: PRVAccountant.maximumWindow)
        }
        return (lower, upper)
    }

    /// Composes each segment's PLDs `steps` times and all segments together by one FFT
    /// round trip on a circular window of W points: loss index k lives at position k mod W.
    /// Two real PLDs travel together as the real and imaginary parts of one complex signal
    /// (first and optional second); their transforms are separated by conjugate symmetry,
    ///     A_j = (Z_j + conj Z_{W−j})/2,   B_j = (Z_j − conj Z_{W−j})/(2i),
    /// raised to their powers as exp(T·log), multiplied across segments, recombined as A + iB
    /// and transformed back. Negative rounding noise is clamped to 0 by the readers.
    func compose(_ parts: [(DiscretePLD, DiscretePLD?, Int)], window: Int) -> (real: [Double], imaginary: [Double]) {
        precondition(parts.allSatisfy { ($0.1 == nil) == (parts[0].1 == nil) },
                     "either every part has a second PLD or none has")
        let fft = FFT(count: window)
        // Accumulated log-transforms: log|A|, arg A, log|B|, arg B.
        var logModulusA = [Double](repeating: 0, count: window), angleA = [Double](repeating: 0, count: window)
        var logModulusB = [Double](repeating: 0, count: window), angleB = [Double](repeating: 0, count: window)
        for (first, second, steps) in parts {
            var real = [Double](repeating: 0, count: window), imaginary = [Double](repeating: 0, count: window)
            for (i, mass) in first.masses.enumerated() {
                real[positiveModulo(first.lowerIndex + i, window)] += mass
            }
            if let second {
                for (i, mass) in second.masses.enumerated() {
                    imaginary[positiveModulo(second.lowerIndex + i, window)] += mass
                }
            }
            fft.forward(real: &real, imaginary: &imaginary)
            let power = Double(steps)
            // |A|^T underflows (to 0) when |A|² < e^{−2·745/T}: skip the logs there.
            let smallestSquare = exp(-2 * 745 / power)
            for j in 0..<window {
                let mirror = (window - j) & (window - 1)
                let (zr, zi, mr, mi) = (real[j], imaginary[j], real[mirror], imaginary[mirror])
                let ar = 0.5 * (zr + mr), ai = 0.5 * (zi - mi)       // (Z_j + conj Z_{W−j})/2
                let squareA = ar * ar + ai * ai
                if squareA < smallestSquare || logModulusA[j] == -.infinity {
                    logModulusA[j] = -.infinity
                } else {
                    logModulusA[j] += power * 0.5 * log(squareA)
                    angleA[j] += power * atan2(ai, ar)
                }
                if second != nil {
                    let br = 0.5 * (zi + mi), bi = 0.5 * (mr - zr)   // (Z_j − conj Z_{W−j})/(2i)
                    let squareB = br * br + bi * bi
                    if squareB < smallestSquare || logModulusB[j] == -.infinity {
                        logModulusB[j] = -.infinity
                    } else {
                        logModulusB[j] += power * 0.5 * log(squareB)
                        angleB[j] += power * atan2(bi, br)
                    }
                }
            }
        }
        let hasSecond = parts.contains { $0.1 != nil }
        var real = [Double](repeating: 0, count: window), imaginary = [Double](repeating: 0, count: window)
        for j in 0..<window {
            // A + iB with A = e^{logModulusA + i angleA}, B likewise; underflowing terms are 0.
            if logModulusA[j] > -745 {
                let modulus = exp(logModulusA[j])
                real[j] += modulus * cos(angleA[j]); imaginary[j] += modulus * sin(angleA[j])
            }
            if hasSecond, logModulusB[j] > -745 {
                let modulus = exp(logModulusB[j])
                real[j] -= modulus * sin(angleB[j]); imaginary[j] += modulus * cos(angleB[j])
            }
        }
        fft.inverse(real: &real, imaginary: &imaginary)
        return (real, imaginary)
    }

    /// The smallest ε ≥ 0 with δ(ε) ≤ `delta` for the composed PLD whose masses sit at
    /// positions k mod W for loss indices k ∈ [readFrom, readTo): losses k·h + lossShift.
    ///
    /// δ(ε) = m_∞ + Σ_{y_k > ε} p_k (1 − e^{ε − y_k}) is continuous and decreasing; scanning
    /// from the largest loss down with D₁ = Σ p_k and D₂ = Σ p_k e^{−y_k} over the atoms above,
    /// the answer in [y_k, y_{k+1}] solves m_∞ + D₁ − e^ε D₂ = δ. With `clampNegative`, FFT
    /// rounding noise below 0 is read as 0 (true masses are ≥ 0), which can only raise δ.
    func epsilonForDelta(_ delta: Double, masses: [Double], window: Int, readFrom: Int, readTo: Int,
                         h: Double, lossShift: Double, infinityMass: Double, clampNegative: Bool) -> Double {
        if infinityMass >= delta { return .infinity }
        var above = infinityMass, weightedAbove = 0.0   // m_∞ + D₁, D₂ over atoms above y
        for index in stride(from: readTo - 1, through: readFrom, by: -1) {
            let loss = Double(index) * h + lossShift
            if loss <= 0 { break }
            // δ at ε = loss (atoms strictly above it). (D₂ ≤ 0 only from noise in an empty tail.)
            if weightedAbove > 0, above - exp(loss) * weightedAbove > delta {
                return log((above - delta) / weightedAbove)
            }
            var mass = masses[positiveModulo(index, window)]
            if clampNegative { mass = max(0, mass) }
            above += mass
            weightedAbove += mass * exp(-loss)
        }
        // δ(0) = m_∞ + D₁ − D₂ over the atoms with positive loss.
        if above - weightedAbove <= delta || weightedAbove <= 0 { return 0 }
        return log((above - delta) / weightedAbove)
    }
}

@inline(__always)
func positiveModulo(_ value: Int, _ modulus: Int) -> Int {
    let remainder = value % modulus
    return remainder < 0 ? remainder + modulus : remainder
}
