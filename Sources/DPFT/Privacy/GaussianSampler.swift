import CNoise
import Crypto
import Foundation
import Synchronization

// z = a standard normal draw, σ_t = the noise standard deviation, λ = the grid spacing (a power
// of two), s = σ_t / λ, k = the integer noise in grid units, x = a gradient coordinate,
// f(z) = exp(−z²/2).

/// The Gaussian noise of DP-SGD as a floating-point-safe mechanism (DESIGN.md §3).
///
/// **Construction.** For noise standard deviation σ_t the grid spacing is the power of two
/// λ = 2^(⌊log₂ σ_t⌋ − 22), so s = σ_t/λ ∈ [2²², 2²³). Each coordinate becomes
///
///     y = λ · (round(x / λ) + k),   k = round(s · z),   z ~ N(0, 1),
///
/// that is, y = round_λ(round_λ(x) + σ_t·z): the gradient is first snapped to the grid (Mironov
/// 2012's "snapping"; the power-of-two granularity of Google's "Secure Noise Generation",
/// differential-privacy library, 2020) and the noise is the continuous Gaussian rounded to the
/// same grid — the value that exact "interval refining" (Haney et al., "Precision-based attacks
/// and interval refining", 2022) would produce. Both terms are integers in grid units, so the
/// sum is exact; every later floating-point step (the Double sum, the cast to Float, the
/// division by the expected batch size) is a correctly rounded function of that exact sum,
/// i.e. post-processing.
///
/// **Why the privacy accounting still holds.** Because round_λ(x) ∈ λℤ, the output equals
/// round_λ(round_λ(x) + σ_t z): post-processing of the ordinary Gaussian mechanism applied to
/// the snapped gradient. Snapping moves each coordinate by at most λ/2, so the L2 sensitivity
/// grows from Δ to at most Δ + λ√d (d coordinates). The private step therefore draws noise of
/// standard deviation σ·(Δ + λ√d) with λ = 2^(⌊log₂ σΔ⌋ − 22) (`NoiseSource.addGaussian(to:
/// noiseMultiplier:sensitivity:)`): the mechanism on snapped gradients is then exactly the
/// Gaussian mechanism with multiplier σ, and the accountant's ε holds as reported. The noise
/// is larger than σΔ by at most σ√d·2⁻²² relatively: 0.055 % for the reference GPT
/// (d ≈ 5.3·10⁶, σ = 1), 0.27 % for GPT-2 small (d ≈ 1.24·10⁸).
///
/// **The sampler: a ziggurat laid on the grid.** A ziggurat (Marsaglia & Tsang, "The Ziggurat
/// Method for Generating Random Variables", J. Statistical Software 5(8), 2000) covers the
/// half-density f with 2048 boxes of equal area and samples uniformly from their union,
/// rejecting points above the curve. Here every box is a whole number of grid *cells* wide
/// (cell c is [c, c + 1)/s), so that in the common case the rounding to the grid is exact
/// integer arithmetic (`GridZiggurat`, built per grid):
/// - Box 0 is the base: M₀ cells of height f(r), r = R/s. Its first R cells form the rectangle
///   [0, r) × [0, f(r)); the other M₀ − R stand for the tail beyond r (area T(r) =
///   ∫_r^∞ f ≤ (M₀ − R)·f(r)/s).
/// - Box i ≥ 1 starts where box i − 1 ends, at height y_i; it is M_i cells wide, the fewest
///   that cover the curve at y_i (M_i ≥ s·f⁻¹(y_i)), and M₀·f(r)/M_i high. So every box has
///   area exactly M₀·f(r)/s. R is the largest whole number for which the stack reaches the mode.
/// - A proposal is 48 keystream bits: 11 pick the box, 1 the sign, 1 the half of the cell, 35
///   the cell c ∈ {0, …, M_i − 1} by Lemire's multiply-shift ("Fast Random Integer Generation
///   in an Interval", ACM TOMACS 2019), which is exactly uniform (it redraws the few values
///   that would bias it).
/// - When the cell lies wholly under the curve (c < L_i, the cells left of f⁻¹(y_{i+1})),
///   k = ±(c + half): the point is uniform in its cell, so the half it falls in is a fair bit
///   independent of the cell, and that half alone decides round(s·z). That is ≈ 99.75 % of
///   proposals, and their probabilities are exact rationals: no floating-point operation
///   touches them (`dpft_noise_fast_pass`, vector code).
/// - Otherwise (`settle`): a wedge cell takes 53 more bits for the point's position in the
///   cell (its first bit is the half) and 53 for its height, and accepts when the height lies
///   under f in double precision; the base's tail zone accepts with probability
///   T(r)·s/((M₀ − R)·f(r)) and then draws z > r by Marsaglia's exact tail method
///   ("Generating a variable from the tail of the normal distribution", Technometrics 6,
///   1964); a rejection starts a fresh proposal.
///
/// Uniforms in the tail have full floating-point resolution near 0 (a geometric exponent from
/// leading zero bits, 52-bit significand), so draws reach past 165σ: there is no cap like
/// Box–Muller's √(2·53·ln 2) ≈ 8.57σ on 53-bit uniforms.
///
/// **How exact.** Every rectangle cell's probability is an exact rational; Lemire's draw and
/// the half bit are exact too. Floating point enters in three places. (1) The wedge tests: the
/// point's coordinates and f are correctly rounded doubles, so acceptance boundaries are off by
/// a relative ≲ 2⁻⁵⁰ (its cell and half come from the position's bits, not from a rounding).
/// (2) The acceptance probabilities of the tail zone and Marsaglia's test, ≲ 2⁻⁵² each. As a
/// rejection sampler normalises by the accepted mass, (1) and (2) shift every point's
/// probability by a common relative ≲ 2⁻⁵⁰. (3) Beyond r, k = R + round(s·a) for z = r + a,
/// with s·a a double a few ulps off (< 2²⁵, so ≲ 2⁻²⁷ of a cell): mass moves between
/// neighbouring points beyond r by that much. So every grid point's probability is the exact
/// rounded-Gaussian one within a relative η ≲ 2⁻⁴⁵ for |k| < R and ≲ 2⁻²⁷ beyond, where
/// 2.5·10⁻⁵ of the draws land (r ≈ 4.22). (The ziggurat this replaced rounded 53-bit positions
/// in double precision: η ≲ 2⁻²⁶ at every point.)
///
/// **Cost.** Six keystream bytes per proposal (AES-256-CTR, `dpft_aes256ctr_keystream`: ≈ 15
/// GB/s per core with VAES, 7.7 from OpenSSL's libcrypto, on the 2-core AMD EPYC of DESIGN.md
/// §8) and one 64-bit table lookup. `make bench` prints the time per draw and the share of a
/// private full step (the budget is 2 %). The noise is a fixed cost per coordinate while the
/// step's arithmetic grows with the batch.
///
/// **What it protects against.**
/// - Mironov 2012 ("On significance of the least significant bits for differential privacy",
///   CCS): x + noise in floating point has a support that depends on x (its low bits reveal
///   x). Here the output support is λℤ for every x.
/// - Jin, McMurtry, Rubinstein & Ohrimenko 2022 ("Are We There Yet? Timing and Floating-Point
///   Attacks on Differential Privacy Systems", IEEE S&P): the same for Gaussian samplers
///   (Box–Muller and others), shown against DP-SGD; and the gaps of Box–Muller's outputs.
/// - Holohan & Braghin 2021 ("Secure Random Sampling in Differential Privacy", arXiv
///   2107.10138), the mitigation Opacus' `secure_mode` uses (the sum of 2n = 4 Gaussian draws
///   divided by √(2n) = 2): it makes the float artefacts hard to exploit but leaves the
///   support data-dependent and costs four draws. Here the support is data-independent by
///   construction, with one draw.
/// - Short tails: no cap near 8.6σ (see above); a predictable generator: the bits are the
///   AES-256-CTR keystream (`NoiseSource`, which bounds its distance from uniform), keyed by
///   the operating system unless a seed is recorded.
///
/// **What it does not protect against.**
/// - The residual η above. No published attack uses such differences (they need outputs of
///   zero probability). A bound on the extra privacy loss they allow is 2η per coordinate, so
///   per step 2⁻⁴⁴·d plus 2⁻²⁶ per coordinate beyond r: for GPT-2 small (d ≈ 1.24·10⁸, on
///   average 3.1·10³ coordinates beyond r) ≈ 7·10⁻⁶ + 5·10⁻⁵ (the old sampler's bound, 2⁻²⁵·d,
///   was 3.7); not a tight bound. The exact alternatives — the discrete Gaussian sampled
///   with integer arithmetic (Canonne, Kamath & Steinke, "The Discrete Gaussian for
///   Differential Privacy", NeurIPS 2020), convolution samplers (Micciancio & Walter,
///   "Gaussian Sampling over the Integers", CRYPTO 2017) or interval refining — cost far more
///   random bits or time per draw than 2 % of a step allows.
/// - Timing and cache side channels: the slow path (≈ 0.25 % of proposals) and the table
///   lookups depend on the noise, not on the data; an observer who times or watches
///   individual draws could learn noise values (Jin et al., part 2). Only the whole step's
///   time is visible to a normal user, summed over millions of draws.
/// - Floating-point error in the clipped sum x itself (e.g. Casacuberta et al., "Widespread
///   Underestimation of Sensitivity in Differentially Private Libraries", CCS 2022): the
///   sensitivity Δ is that of the exact clipped sum.
enum GaussianSampler {
    /// Coordinates per block: each block reads its own keystream, so the noise does not
    /// depend on how blocks are spread over threads.
    static let blockSize = 1 << 16
    /// λ = 2^(⌊log₂ σ_t⌋ − gridBits).
    static let gridBits = 22

    /// Coordinates per pass of `fastPass` (the C kernel's limit).
    static let passSize = Int(DPFT_NOISE_PASS)

    /// Keystream words a pass of `count` proposals reads: 6 bytes each (`fastPass`), rounded up.
    static func wordsPerPass(_ count: Int) -> Int { (6 * count + 7) / 8 }

    /// Replaces each x of `values[range]` by Float(y) · `scale`, y = λ·(round(x/λ) + k), with k
    /// drawn from `words` (the product with `scale`, the step's division by its batch size, is
    /// post-processing of the rounded noisy value, fused to save a pass), in passes of
    /// `passSize` coordinates: `fastPass` gives each coordinate its own proposal and settles the
    /// ≈ 99.75 % that fall in a rectangle cell; the rest continue the same draw (`settle`) with
    /// the words that follow the pass. Every word is read once, so each coordinate's k is an
    /// independent draw, as in a one-at-a-time loop; separating the rare slow path lets the
    /// common one run as vector code without branches (`dpft_noise_fast_pass`).
    static func addNoise(to values: UnsafeMutableBufferPointer<Float>, range: Range<Int>, grid: NoiseGrid,
                         words: inout KeystreamWords, scale: Float = 1) {
        let inverseSpacing = 1 / grid.spacing  // a power of two: x · inverseSpacing is exact
        let pendingIndex = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: passSize)
        let pendingProposal = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: passSize)
        defer { pendingIndex.deallocate(); pendingProposal.deallocate() }
        grid.ziggurat.bounds.withUnsafeBufferPointer { bounds in
            for start in stride(from: range.lowerBound, to: range.upperBound, by: passSize) {
                let pass = start..<min(start + passSize, range.upperBound)
                let count = words.withNextWords(wordsPerPass(pass.count)) { passWords in
                    fastPass(values, pass, passWords, bounds: bounds, inverseSpacing: inverseSpacing,
                             spacing: grid.spacing, scale: scale, pendingIndex: pendingIndex,
                             pendingProposal: pendingProposal)
                }
                for p in 0..<count {
                    let i = pass.lowerBound + Int(pendingIndex[p])
                    let k = settle(pendingProposal[p], ziggurat: grid.ziggurat, words: &words)
                    values[i] = Float((roundToEven(Double(values[i]) * inverseSpacing) + k) * grid.spacing) * scale
                }
            }
        }
    }

    /// The common path for `values[pass]`: proposal j takes the 32-bit little-endian integer at
    /// byte 4j of `passWords` and the 16-bit tag at byte 4·count + 2j (`proposal(_:of:count:)`).
    /// Where its cell is a rectangle cell, adds the noise; elsewhere leaves the value and lists
    /// j and the proposal in `pendingIndex`/`pendingProposal`. Returns how many were listed.
    /// The C kernel computes, bit for bit, what `rectangleNoise` and the snapping of `addNoise`
    /// compute one coordinate at a time (`NoiseSamplerTests` compares them). It adds in 32-bit
    /// integers, so it also lists the rare coordinates beyond that range (|x/λ| ≥ 2³⁰, NaN,
    /// grids outside [2⁻¹²⁶, 2⁹⁶]): `settle` returns such a proposal's k
    /// without reading keystream, and `addNoise` snaps it in double precision.
    @inline(__always)
    static func fastPass(_ values: UnsafeMutableBufferPointer<Float>, _ pass: Range<Int>, _ passWords: UnsafeBufferPointer<UInt64>,
                         bounds: UnsafeBufferPointer<UInt64>, inverseSpacing: Double, spacing: Double, scale: Float = 1,
                         pendingIndex: UnsafeMutableBufferPointer<UInt32>, pendingProposal: UnsafeMutableBufferPointer<UInt64>) -> Int {
        precondition(passWords.count >= wordsPerPass(pass.count), "a pass needs 6 keystream bytes per coordinate")
        return dpft_noise_fast_pass(values.baseAddress! + pass.lowerBound, UnsafeRawPointer(passWords.baseAddress!), pass.count,
                                    bounds.baseAddress!, inverseSpacing, spacing, scale,
                                    pendingIndex.baseAddress!, pendingProposal.baseAddress!)
    }

    /// Proposal j of a pass of `count` read from `words` as the C kernel reads it: the 32 cell
    /// bits (little-endian, byte 4j) shifted up 32, over the 16-bit tag (byte 4·count + 2j).
    static func proposal(_ j: Int, of words: [UInt64], count: Int) -> UInt64 {
        func bytes(at offset: Int, _ length: Int) -> UInt64 {
            (0..<length).reduce(0) { value, b in
                let byte = (words[(offset + b) / 8] >> (8 * UInt64((offset + b) % 8))) & 0xFF
                return value | byte << (8 * UInt64(b))
            }
        }
        return bytes(at: 4 * j, 4) << 32 | bytes(at: 4 * count + 2 * j, 2)
    }

    /// A proposal's fields. Its low 16 bits are the tag, laid out as CNoise.h's
    /// `DPFT_NOISE_BOX_MASK`, `…_SIGN_BIT`, `…_HALF_BIT` and `…_CELL_TOP_SHIFT` say (the C kernel
    /// reads the same constants): the box, the sign, the half and the high three of the 35 cell
    /// bits; bits 32–63 are the low 32 cell bits. (Bits 16–31 are not read.)
    private static var boxMask: UInt64 { UInt64(DPFT_NOISE_BOX_MASK) }
    private static var signShift: UInt64 { UInt64(DPFT_NOISE_SIGN_BIT) }
    private static var halfShift: UInt64 { UInt64(DPFT_NOISE_HALF_BIT) }
    private static var cellTopShift: UInt64 { UInt64(DPFT_NOISE_CELL_TOP_SHIFT) }
    @inline(__always)
    static func box(_ proposal: UInt64) -> Int { Int(truncatingIfNeeded: proposal & boxMask) }
    @inline(__always)
    static func signBit(_ proposal: UInt64) -> UInt64 { (proposal >> signShift & 1) << 63 }
    /// ±magnitude by the proposal's sign bit (set into the Double's sign, as the C kernel does).
    @inline(__always)
    static func signed(_ magnitude: Double, by proposal: UInt64) -> Double {
        Double(bitPattern: magnitude.bitPattern | signBit(proposal))
    }
    @inline(__always)
    static func half(_ proposal: UInt64) -> UInt64 { (proposal >> halfShift) & 1 }
    @inline(__always)
    static func cellBits(_ proposal: UInt64) -> UInt64 {
        (proposal >> cellTopShift & ((1 << (cellBitCount - 32)) - 1)) << 32 | proposal >> 32
    }

    /// Lemire's product of 35 random bits and a box's cell count: the cell is its top bits
    /// (`product >> 35`); it is exactly uniform when the low 35 bits are ≥ 2³⁵ mod cells, and
    /// certainly so when they are ≥ cells (the fast path's test).
    @inline(__always)
    static func lemireProduct(_ bits: UInt64, cells: UInt64) -> UInt64 { bits * cells }
    static var cellBitCount: UInt64 { UInt64(DPFT_NOISE_CELL_BITS) }
    static var lowMask: UInt64 { (1 << cellBitCount) - 1 }

    /// k for a proposal the fast path accepts (a rectangle cell, with its Lemire draw accepted
    /// without a division), or nil: the C kernel's arithmetic one coordinate at a time.
    static func rectangleNoise(_ proposal: UInt64, ziggurat: GridZiggurat) -> Double? {
        let box = box(proposal)
        let cells = ziggurat.cells[box]
        let product = lemireProduct(cellBits(proposal), cells: cells)
        let cell = product >> cellBitCount
        guard product & lowMask >= cells, cell < ziggurat.inner[box] else { return nil }
        return signed(Double(cell + half(proposal)), by: proposal)
    }

    /// Finishes a draw whose proposal the fast path did not settle: the rest of Lemire's draw,
    /// then a rectangle cell, a wedge test or the tail; after a rejection, fresh proposals from
    /// `words` (one word each) until one is accepted. Returns k as an integer-valued Double.
    static func settle(_ first: UInt64, ziggurat: GridZiggurat, words: inout KeystreamWords) -> Double {
        var proposal = first
        while true {
            let box = box(proposal)
            let cells = ziggurat.cells[box]
            let threshold = ziggurat.lemireThreshold[box]
            var product = lemireProduct(cellBits(proposal), cells: cells)
            while product & lowMask < threshold {
                product = lemireProduct(words.next() >> (64 - cellBitCount), cells: cells)
            }
            let cell = product >> cellBitCount
            if cell < ziggurat.inner[box] { return signed(Double(cell + half(proposal)), by: proposal) }
            if let k = box == 0 ? ziggurat.tailNoise(words: &words) : ziggurat.wedgeNoise(box: box, cell: cell, words: &words) {
                return signed(k, by: proposal)
            }
            proposal = words.next()
        }
    }

    /// Rounds to the nearest integer, ties to even. Below 2⁵¹ in magnitude, adding and
    /// subtracting 1.5·2⁵² does it in two additions (IEEE round-to-nearest-even; Swift never
    /// folds them) instead of a libm call, which baseline x86-64 code would make per draw.
    @inline(__always)
    static func roundToEven(_ value: Double) -> Double {
        abs(value) < 0x1p51 ? (value + 0x1.8p52) - 0x1.8p52 : value.rounded(.toNearestOrEven)
    }

    /// Marsaglia (1964): a > 0 such that r + a has density ∝ exp(−z²/2) beyond r: a = −ln(U₁)/r,
    /// b = −ln(U₂), accept when 2b > a²; both uniforms have full resolution near 0 so that large
    /// a is reachable.
    static func tailExcess(beyond r: Double, words: inout KeystreamWords) -> Double {
        while true {
            let a = -log(words.nextFullPrecisionUniform()) / r
            let b = -log(words.nextFullPrecisionUniform())
            if 2 * b > a * a { return a }
        }
    }
}

/// The grid for one noise standard deviation: λ, s = σ_t/λ, and the ziggurat on that grid.
struct NoiseGrid {
    let spacing: Double
    let scale: Double
    let ziggurat: GridZiggurat

    init(standardDeviation: Double) {
        precondition(standardDeviation > 0 && standardDeviation.isFinite, "noise standard deviation must be positive and finite")
        self.init(standardDeviation: standardDeviation, spacing: Self.spacing(for: standardDeviation))
    }

    /// A grid of a given spacing (a power of two) for noise of `standardDeviation` (at least
    /// one spacing: the ziggurat needs s ≥ 1).
    init(standardDeviation: Double, spacing: Double) {
        self.spacing = spacing
        scale = standardDeviation / spacing
        ziggurat = GridZiggurat.reused(scale: scale)
    }

    /// λ = 2^(⌊log₂ σ_t⌋ − 22).
    static func spacing(for standardDeviation: Double) -> Double {
        Double(sign: .plus, exponent: standardDeviation.exponent - GaussianSampler.gridBits, significand: 1)
    }

    /// The largest σ `init(noiseMultiplier:sensitivity:coordinates:)` takes for d coordinates:
    /// its scale is s = σΔ/λ + σ√d < 2²³ + σ√d, and the ziggurat needs s < 2²⁵, so σ√d ≤ 2²⁴.
    /// (GPT-2 small's 1.24·10⁸ values allow σ ≤ 1504; DP-SGD uses σ of about 0.5 to 10.)
    static func largestNoiseMultiplier(coordinates: Int) -> Double {
        0x1p24 / Double(max(coordinates, 1)).squareRoot()
    }

    /// The grid for the Gaussian mechanism with noise multiplier σ at L2 sensitivity Δ, after
    /// snapping d coordinates: λ = 2^(⌊log₂ σΔ⌋ − 22) and noise σ·(Δ + λ√d). Snapping moves each
    /// coordinate by at most λ/2, so neighbouring snapped sums differ by at most Δ + λ√d; noise
    /// σ·(Δ + λ√d) makes the snapped mechanism exactly the Gaussian mechanism with multiplier σ
    /// that the accountant assumes (the noise is larger than σΔ by the relative λ√d/Δ ≤
    /// σ√d·2⁻²², 0.055 % for the reference GPT at σ = 1).
    init(noiseMultiplier: Double, sensitivity: Double, coordinates: Int) {
        precondition(noiseMultiplier > 0 && noiseMultiplier.isFinite && sensitivity > 0 && sensitivity.isFinite,
                     "noise multiplier and sensitivity must be positive and finite")
        precondition(noiseMultiplier <= Self.largestNoiseMultiplier(coordinates: coordinates),
                     "the caller checks largestNoiseMultiplier (PrivateGradient throws noiseBeyondTheGrid)")
        let spacing = Self.spacing(for: noiseMultiplier * sensitivity)
        let inflated = noiseMultiplier * (sensitivity + spacing * Double(coordinates).squareRoot())
        self.init(standardDeviation: inflated, spacing: spacing)
    }
}

/// The ziggurat of f(z) = exp(−z²/2) on the grid of scale s: 2048 boxes of area exactly
/// M₀·f(r)/s, each a whole number of cells (width 1/s) wide (`GaussianSampler` has the
/// construction). Margins of 10⁻³ cell keep the double-precision edges on the safe side: a box
/// covers the curve at its bottom, and a cell counted as a rectangle cell lies under the curve
/// at its box's top, for the exact heights.
struct GridZiggurat: Sendable {
    static let boxes = Int(DPFT_NOISE_BOX_MASK) + 1
    static let margin = 1e-3

    /// s.
    let scale: Double
    /// R: the base box's rectangle cells; r = R/s.
    let baseCells: UInt64
    let r: Double
    /// M_i: box i's cells.
    let cells: [UInt64]
    /// L_i: box i's cells wholly under the curve (the base box's: R).
    let inner: [UInt64]
    /// M_i | L_i << 32 per box (the C kernel's table).
    let bounds: [UInt64]
    /// 2³⁵ mod M_i: Lemire's draw keeps a product whose low 35 bits reach it.
    let lemireThreshold: [UInt64]
    /// y_i: box i's bottom (y₀ = 0); y₂₀₄₈ ≥ 1 is the top of the last box.
    let bottom: [Double]
    /// Box i's height: f(r) for the base, M₀·f(r)/M_i above it.
    let height: [Double]
    /// P(accept) in the base's tail zone: T(r)·s/((M₀ − R)·f(r)).
    let tailAcceptance: Double

    /// The stack with the largest R that reaches the mode (bisection: the stack for R = 1
    /// reaches it, the one for r = 4.5 does not).
    init(scale s: Double) {
        // M₀ < 4.5·s < 2²⁸ keeps Lemire's 35-bit products below 2⁶³. The step's grids have
        // s < 2²³ + σ√d, so this holds unless σ√d (the snapping's extra noise, in grid units)
        // tops 2²⁴: noise eight times the σΔ asked for.
        precondition(s >= 1 && s < 0x1p25, "the grid ziggurat needs a scale in [1, 2²⁵)")
        var low: UInt64 = 1, high = UInt64((4.5 * s).rounded(.up)) + 1
        precondition(Self.stack(baseCells: low, scale: s).reachesMode && !Self.stack(baseCells: high, scale: s).reachesMode)
        while high - low > 1 {
            let middle = (low + high) / 2
            if Self.stack(baseCells: middle, scale: s).reachesMode { low = middle } else { high = middle }
        }
        let stack = Self.stack(baseCells: low, scale: s)
        scale = s
        baseCells = low
        r = Double(low) / s
        cells = stack.cells
        inner = stack.inner
        bounds = zip(stack.cells, stack.inner).map { $0 | $1 << 32 }
        lemireThreshold = stack.cells.map { (1 << GaussianSampler.cellBitCount) % $0 }
        bottom = stack.bottom
        height = stack.height
        tailAcceptance = stack.tailAcceptance
    }

    /// The most recently built ziggurat, which every step of a run asks for again (the same σ, Δ
    /// and d give the same s): building one takes ≈ 2.7 ms of bisection over 2048-box stacks, more
    /// than half the reference GPT's noise of a step (4.4 ms).
    private static let last = Mutex<GridZiggurat?>(nil)

    /// `GridZiggurat(scale: s)`, built only when the last one asked for had another scale.
    static func reused(scale s: Double) -> GridZiggurat {
        if let ziggurat = last.withLock({ $0 }), ziggurat.scale == s { return ziggurat }
        let ziggurat = GridZiggurat(scale: s)
        last.withLock { $0 = ziggurat }
        return ziggurat
    }

    /// f⁻¹(y) for y ∈ (0, 1); 0 at and above the mode.
    static func halfWidth(at y: Double) -> Double { y >= 1 ? 0 : (-2 * log(y)).squareRoot() }

    private struct Stack {
        var cells: [UInt64] = [], inner: [UInt64] = [], bottom: [Double] = [0], height: [Double] = []
        var tailAcceptance = 0.0
        var reachesMode: Bool { bottom.last! >= 1 }
    }

    private static func stack(baseCells: UInt64, scale s: Double) -> Stack {
        let r = Double(baseCells) / s, fr = exp(-0.5 * r * r)
        let tailArea = (Double.pi / 2).squareRoot() * erfc(r / 2.squareRoot())
        // The tail zone's M₀ − R cells hold the tail's area with room to spare.
        let baseBoxCells = baseCells + UInt64((tailArea * s / fr).rounded(.down)) + 2
        let boxArea = Double(baseBoxCells) * fr  // × 1/s: every box's area
        var stack = Stack()
        stack.cells = [baseBoxCells]
        stack.inner = [baseCells]
        stack.height = [fr]
        stack.bottom.append(fr)
        stack.tailAcceptance = tailArea * s / (Double(baseBoxCells - baseCells) * fr)
        for i in 1..<boxes {
            let cells = UInt64((s * halfWidth(at: stack.bottom[i]) + margin).rounded(.down)) + 1
            stack.cells.append(cells)
            stack.height.append(boxArea / Double(cells))
            stack.bottom.append(stack.bottom[i] + boxArea / Double(cells))
            stack.inner.append(UInt64(max(0, (s * halfWidth(at: stack.bottom[i + 1]) - margin).rounded(.down))))
        }
        return stack
    }

    /// A wedge cell's draw: the point's position in the cell (53 bits; the first is the half)
    /// and height (53 bits) from `words`; k = cell + half when the point lies under the curve,
    /// nil otherwise.
    func wedgeNoise(box: Int, cell: UInt64, words: inout KeystreamWords) -> Double? {
        let position = words.next() >> 11
        let z = (Double(cell) + Double(position) * 0x1p-53) / scale
        let y = bottom[box] + words.nextUniform() * height[box]
        return y < exp(-0.5 * z * z) ? Double(cell + (position >> 52)) : nil
    }

    /// The base's tail zone: accepted with probability `tailAcceptance`, then z = r + a beyond r
    /// and k = R + round(s·a) (R = s·r exactly); nil when the zone rejects.
    func tailNoise(words: inout KeystreamWords) -> Double? {
        guard words.nextUniform() < tailAcceptance else { return nil }
        let a = GaussianSampler.tailExcess(beyond: r, words: &words)
        return Double(baseCells) + GaussianSampler.roundToEven(a * scale)
    }
}

/// The AES-256-CTR keystream of one (stream, block) prefix, read as 64-bit words, each once
/// and in order. Chunks of the block use counter blocks (stream, block·2²⁰ + chunk, j), so no
/// two chunks share a counter block (`NoiseSource`). Each chunk is written into one buffer the reader owns, after the
/// previous chunk's unread words: reading is a plain load, with no reference counting, and no
/// word is skipped when a pass needs more than a chunk has left.
struct KeystreamWords: ~Copyable {
    let key: SymmetricKey
    let stream: UInt32
    let block: UInt64
    let chunkWords: Int
    private var chunk: UInt64 = 0
    private let buffer: UnsafeMutableBufferPointer<UInt64>
    private var filled = 0
    private var position = 0

    /// Reads of up to `chunkWords` words at a time (`withNextWords`).
    init(key: SymmetricKey, stream: UInt32, block: UInt64, chunkWords: Int) {
        self.key = key
        self.stream = stream
        self.block = block
        self.chunkWords = chunkWords
        buffer = .allocate(capacity: 2 * chunkWords)
    }

    /// Fixed words, then a trap (tests of rare paths).
    init(fixedWords: [UInt64]) {
        key = SymmetricKey(size: .bits256)
        stream = 0
        block = 0
        chunkWords = fixedWords.count
        buffer = .allocate(capacity: fixedWords.count)
        _ = buffer.initialize(from: fixedWords)
        filled = fixedWords.count
        chunk = 1 << 20
    }

    deinit { buffer.deallocate() }

    /// The next `count` words (at most `chunkWords`) as one buffer.
    mutating func withNextWords<Result>(_ count: Int, _ body: (UnsafeBufferPointer<UInt64>) -> Result) -> Result {
        precondition(count <= chunkWords, "keystream read larger than a chunk")
        if filled - position < count { refill() }
        precondition(filled - position >= count, "keystream chunk smaller than a pass")
        defer { position += count }
        return body(UnsafeBufferPointer(rebasing: buffer[position..<(position + count)]))
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        if position == filled { refill() }
        position += 1
        return buffer[position - 1]
    }

    /// Moves the unread words (fewer than `chunkWords`) to the front and appends the next chunk.
    private mutating func refill() {
        precondition(chunk < 1 << 20, "keystream block exhausted")
        let unread = filled - position
        if unread > 0 {
            UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: buffer.baseAddress! + position,
                                                                    byteCount: unread * 8)
        }
        NoiseSource.keystream(key: key, stream: stream, index: block << 20 | chunk,
                              into: UnsafeMutableBufferPointer(rebasing: buffer[unread..<(unread + chunkWords)]))
        filled = unread + chunkWords
        chunk += 1
        position = 0
    }

    /// A uniform in (0, 1) from 53 bits, centred in its cell.
    mutating func nextUniform() -> Double {
        (Double(next() >> 11) + 0.5) * 0x1p-53
    }

    /// A uniform in (0, 1) with full floating-point resolution near 0: the exponent comes from
    /// the count of leading zero bits (geometric, as for an infinite binary expansion), the 52
    /// significand bits from the bits that follow, centred in their cell.
    mutating func nextFullPrecisionUniform() -> Double {
        var scale = 1.0
        var word = next()
        var zeroWords = 0
        while word == 0 {  // probability 2⁻⁶⁴ per word
            zeroWords += 1
            if zeroWords == 14 { return 0x1p-960 }
            scale *= 0x1p-64
            word = next()
        }
        let shift = word.leadingZeroBitCount
        var bits = word << UInt64(shift)
        if shift > 12 { bits |= next() >> UInt64(64 - shift) }
        let significand = (Double(bits >> 12) + 0.5) * 0x1p-52  // in (0.5, 1)
        return significand * scale * Double(sign: .plus, exponent: -shift, significand: 1)
    }
}
