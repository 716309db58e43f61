import CNoise
import Crypto
import Foundation

// z = a standard normal draw, σ_t = the noise standard deviation, λ = the grid spacing (a power
// of two), s = σ_t / λ, k = the integer noise in grid units, x = a gradient coordinate.

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
/// **The sampler.** z comes from the ziggurat of Marsaglia & Tsang ("The Ziggurat Method for
/// Generating Random Variables", J. Statistical Software 5(8), 2000): 256 strips of equal
/// area, one 64-bit ChaCha20 word per draw in ≈ 98.5 % of draws (8 bits strip, 1 bit sign,
/// 53 bits position). The strip edges are solved at start to double precision (the base edge
/// r ≈ 3.6542 closes the stack exactly). In a strip's rectangle, k = round(u · X_i · s / 2⁵³)
/// for a 53-bit integer u, so every grid point receives ≈ 2³⁰/X_i equally likely values of u:
/// each grid point's probability is the exact rounded-Gaussian one within a relative
/// η ≲ 2⁻²⁶ (≥ 2²⁸ values per point, a few miscounted or misrounded at the edges). Wedges
/// test the density exp(−z²/2) in double precision. The tail beyond r uses Marsaglia's exact method ("Generating a variable
/// from the tail of the normal distribution", Technometrics 6, 1964) on uniforms with full
/// floating-point resolution near 0 (a geometric exponent from leading zero bits, 52-bit
/// significand), so draws reach past 180σ: there is no cap like Box–Muller's √(2·53·ln 2) ≈
/// 8.57σ on 53-bit uniforms.
///
/// **Cost.** About 4.3 CPU ns per draw on the 2-core AMD EPYC of DESIGN.md §8, spread over
/// both cores: ChaCha20 (OpenSSL's libcrypto, whose AVX-512 code runs at ≈ 4.5 GB/s per core
/// there, 8 bytes per draw; `dpft_chacha20_keystream`) is ≈ 40 % of it, the vectorised common
/// path (`dpft_noise_fast_pass`) ≈ 45 %, most of that its two table gathers per draw. `make
/// bench` prints the share of a private full step (the budget is 2 %). The noise is a fixed
/// cost per coordinate while the step's arithmetic grows with the batch.
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
///   ChaCha20 keystream (RFC 8439), keyed by the operating system unless a seed is recorded.
///
/// **What it does not protect against.**
/// - The residual η: the discrete distribution actually sampled differs from the exact
///   rounded Gaussian by a relative η ≲ 2⁻²⁶ per grid point (2⁻⁵⁰-scale in wedges and tail).
///   No published attack uses such differences (they need outputs of zero probability), but
///   the worst-case bound on the extra privacy loss they allow is 2ηd per step (≈ 0.16 for
///   the reference GPT, a bound that assumes all d errors align; not a tight one). The exact
///   alternatives — the discrete Gaussian sampled with integer arithmetic (Canonne, Kamath &
///   Steinke, "The Discrete Gaussian for Differential Privacy", NeurIPS 2020), convolution
///   samplers (Micciancio & Walter, "Gaussian Sampling over the Integers", CRYPTO 2017) or
///   interval refining — cost far more random bits or time per draw than 2 % of a step allows.
/// - Timing and cache side channels: the ziggurat's slow paths (≈ 1.5 % of draws) and its
///   table lookups depend on the noise, not on the data; an observer who times or watches
///   individual draws could learn noise values (Jin et al., part 2). Only the whole step's
///   time is visible to a normal user, summed over millions of draws.
/// - Floating-point error in the clipped sum x itself (e.g. Casacuberta et al., "Widespread
///   Underestimation of Sensitivity in Differentially Private Libraries", CCS 2022): the
///   sensitivity Δ is that of the exact clipped sum.
enum GaussianSampler {
    /// Coordinates per block: each block reads its own ChaCha20 stream, so the noise does not
    /// depend on how blocks are spread over threads.
    static let blockSize = 1 << 16
    /// λ = 2^(⌊log₂ σ_t⌋ − gridBits).
    static let gridBits = 22

    /// Coordinates per pass of `fastPass` (the C kernel's limit).
    static let passSize = Int(DPFT_NOISE_PASS)

    /// Adds y = λ·(round(x/λ) + k) to `values[range]`, with k drawn from `words`, in passes of
    /// `passSize` coordinates: `fastPass` gives each coordinate its own next word and settles the
    /// ≈ 98.5 % whose point lies in its strip's inner rectangle; the rest continue the same
    /// ziggurat iteration (wedge or tail test on that point, then fresh points) with the words
    /// that follow the pass. Every word is read once, so each coordinate's k is an independent
    /// ziggurat draw, as in a one-at-a-time loop; separating the rare slow path lets the common
    /// one run as vector code without branches (`dpft_noise_fast_pass`).
    static func addNoise(to values: UnsafeMutableBufferPointer<Float>, range: Range<Int>, grid: NoiseGrid,
                         words: inout KeystreamWords) {
        let table = ZigguratTable.shared
        let inverseSpacing = 1 / grid.spacing  // a power of two: x · inverseSpacing is exact
        let pendingIndex = UnsafeMutableBufferPointer<UInt32>.allocate(capacity: passSize)
        let pendingWord = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: passSize)
        defer { pendingIndex.deallocate(); pendingWord.deallocate() }
        table.innerLimit.withUnsafeBufferPointer { innerLimit in
            grid.stripScale.withUnsafeBufferPointer { stripScale in
                for start in stride(from: range.lowerBound, to: range.upperBound, by: passSize) {
                    let pass = start..<min(start + passSize, range.upperBound)
                    let count = words.withNextWords(pass.count) { passWords in
                        fastPass(values, pass, passWords, innerLimit: innerLimit, stripScale: stripScale,
                                 inverseSpacing: inverseSpacing, spacing: grid.spacing,
                                 pendingIndex: pendingIndex, pendingWord: pendingWord)
                    }
                    for p in 0..<count {
                        let i = pass.lowerBound + Int(pendingIndex[p])
                        let k = settle(pendingWord[p], innerLimit: innerLimit, stripScale: stripScale, grid: grid,
                                       table: table, words: &words)
                        values[i] = Float((roundToEven(Double(values[i]) * inverseSpacing) + k) * grid.spacing)
                    }
                }
            }
        }
    }

    /// The common path for `values[pass]`, coordinate j with word `passWords[j]`: where the
    /// point is inside its strip's rectangle, adds the noise; elsewhere leaves the value and
    /// lists j and the word in `pendingIndex`/`pendingWord`. Returns how many were listed.
    /// The C kernel computes, bit for bit, what `gridNoise`'s rectangle branch and the snapping
    /// of `addNoise` compute one coordinate at a time (`GaussianSamplerTests` compares them).
    @inline(__always)
    static func fastPass(_ values: UnsafeMutableBufferPointer<Float>, _ pass: Range<Int>, _ passWords: UnsafeBufferPointer<UInt64>,
                         innerLimit: UnsafeBufferPointer<UInt64>, stripScale: UnsafeBufferPointer<Double>,
                         inverseSpacing: Double, spacing: Double,
                         pendingIndex: UnsafeMutableBufferPointer<UInt32>, pendingWord: UnsafeMutableBufferPointer<UInt64>) -> Int {
        dpft_noise_fast_pass(values.baseAddress! + pass.lowerBound, passWords.baseAddress!, pass.count,
                             innerLimit.baseAddress!, stripScale.baseAddress!, inverseSpacing, spacing,
                             pendingIndex.baseAddress!, pendingWord.baseAddress!)
    }

    /// Finishes a draw whose first point (`word`) fell outside its strip's rectangle: the wedge
    /// or tail test on that point, then fresh points from `words` until one is accepted.
    static func settle(_ word: UInt64, innerLimit: UnsafeBufferPointer<UInt64>, stripScale: UnsafeBufferPointer<Double>,
                       grid: NoiseGrid, table: ZigguratTable, words: inout KeystreamWords) -> Double {
        let sign = (word & 0x100) << 55
        if let z = slowPath(strip: Int(truncatingIfNeeded: word & 0xFF), u: word >> 11, table: table, words: &words) {
            return Double(bitPattern: roundToEven(z * grid.scale).bitPattern | sign)
        }
        return gridNoise(innerLimit: innerLimit, stripScale: stripScale, grid: grid, table: table, words: &words)
    }

    /// One draw of k = round(s·z), z ~ N(0, 1), as an integer-valued Double.
    @inline(__always)
    static func gridNoise(innerLimit: UnsafeBufferPointer<UInt64>, stripScale: UnsafeBufferPointer<Double>,
                          grid: NoiseGrid, table: ZigguratTable, words: inout KeystreamWords) -> Double {
        while true {
            let word = words.next()
            let strip = Int(truncatingIfNeeded: word & 0xFF)
            // Bit 8 becomes the sign bit of k ≥ 0 without a branch (a random branch would be
            // mispredicted every other draw). A −0 this makes is harmless: snapped + (−0) is
            // +0 when snapped is (the rounding below never returns −0).
            let sign = (word & 0x100) << 55
            let u = word >> 11  // 53 bits
            if u < innerLimit[strip] {
                // Inside the rectangle that lies under the curve: z = u · X_i / 2⁵³, and
                // s·z < 2²⁵ needs no range check before the rounding (u < 2⁵³ converts as Int64).
                let k = (Double(Int64(bitPattern: u)) * stripScale[strip] + 0x1.8p52) - 0x1.8p52
                return Double(bitPattern: k.bitPattern | sign)
            }
            if let z = slowPath(strip: strip, u: u, table: table, words: &words) {
                return Double(bitPattern: roundToEven(z * grid.scale).bitPattern | sign)
            }
        }
    }

    /// Rounds to the nearest integer, ties to even. Below 2⁵¹ in magnitude, adding and
    /// subtracting 1.5·2⁵² does it in two additions (IEEE round-to-nearest-even; Swift never
    /// folds them) instead of a libm call, which baseline x86-64 code would make per draw.
    @inline(__always)
    static func roundToEven(_ value: Double) -> Double {
        abs(value) < 0x1p51 ? (value + 0x1.8p52) - 0x1.8p52 : value.rounded(.toNearestOrEven)
    }

    /// The base strip's tail or a wedge; nil when the point is rejected (start again).
    static func slowPath(strip: Int, u: UInt64, table: ZigguratTable, words: inout KeystreamWords) -> Double? {
        if strip == 0 { return tail(beyond: table.edge[1], words: &words) }
        let z = Double(u) * 0x1p-53 * table.edge[strip]
        let height = table.height[strip] + words.nextUniform() * (table.height[strip + 1] - table.height[strip])
        return height < exp(-0.5 * z * z) ? z : nil
    }

    /// Marsaglia (1964): z > r with density ∝ exp(−z²/2). a = −ln(U₁)/r, b = −ln(U₂), accept when
    /// 2b > a²; both uniforms have full resolution near 0 so that large a is reachable.
    static func tail(beyond r: Double, words: inout KeystreamWords) -> Double {
        while true {
            let a = -log(words.nextFullPrecisionUniform()) / r
            let b = -log(words.nextFullPrecisionUniform())
            if 2 * b > a * a { return r + a }
        }
    }
}

/// The grid for one noise standard deviation: λ, s = σ_t/λ, and s·X_i/2⁵³ per strip.
struct NoiseGrid {
    let spacing: Double
    let scale: Double
    let stripScale: [Double]

    init(standardDeviation: Double) {
        precondition(standardDeviation > 0 && standardDeviation.isFinite, "noise standard deviation must be positive and finite")
        self.init(standardDeviation: standardDeviation, spacing: Self.spacing(for: standardDeviation))
    }

    /// A grid of a given spacing (a power of two) for noise of `standardDeviation`.
    init(standardDeviation: Double, spacing: Double) {
        self.spacing = spacing
        scale = standardDeviation / spacing
        let scale = scale
        stripScale = ZigguratTable.shared.edge.map { $0 * scale * 0x1p-53 }
    }

    /// λ = 2^(⌊log₂ σ_t⌋ − 22).
    static func spacing(for standardDeviation: Double) -> Double {
        Double(sign: .plus, exponent: standardDeviation.exponent - GaussianSampler.gridBits, significand: 1)
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
        let spacing = Self.spacing(for: noiseMultiplier * sensitivity)
        let inflated = noiseMultiplier * (sensitivity + spacing * Double(coordinates).squareRoot())
        self.init(standardDeviation: inflated, spacing: spacing)
    }
}

/// The ziggurat for exp(−z²/2) with 256 strips of equal area v (Marsaglia & Tsang 2000).
/// Strip i ≥ 1 is [0, X_i] × [f(X_i), f(X_{i+1})] with X decreasing; strip 0 is the base
/// [0, X_0] × [0, f(r)] with X_0 = v/f(r), whose part beyond r = X_1 stands for the tail.
struct ZigguratTable: Sendable {
    static let strips = 256
    static let shared = ZigguratTable()

    /// X_0 … X_256 (X_256 = 0).
    let edge: [Double]
    /// f(X_i) = exp(−X_i²/2), i = 0 … 256 (f(X_256) = 1).
    let height: [Double]
    /// ⌊X_{i+1}/X_i · 2⁵³⌋: a 53-bit u below it gives a point under the curve for sure.
    let innerLimit: [UInt64]

    private init() {
        // Bisect the base edge r so that the stack of equal-area strips closes at the mode.
        var low = 3.0, high = 4.5
        for _ in 0..<200 {
            let middle = 0.5 * (low + high)
            if Self.stack(r: middle) == nil { low = middle } else { high = middle }
        }
        edge = Self.stack(r: high)!
        height = edge.map { exp(-0.5 * $0 * $0) }
        let edge = edge
        innerLimit = (0..<Self.strips).map { UInt64(edge[$0 + 1] / edge[$0] * 0x1p53) }
    }

    /// The edges for base edge r, or nil when the strips reach the mode before the last one
    /// (r too small). With r too large the last strip ends below the mode and is stretched to
    /// it; the bisection drives that gap to zero.
    private static func stack(r: Double) -> [Double]? {
        let f = { (z: Double) in exp(-0.5 * z * z) }
        let area = r * f(r) + (Double.pi / 2).squareRoot() * erfc(r / 2.squareRoot())
        var edge = [area / f(r), r]
        for _ in 1..<(strips - 1) {
            let next = area / edge[edge.count - 1] + f(edge[edge.count - 1])
            if next >= 1 { return nil }
            edge.append((-2 * log(next)).squareRoot())
        }
        if area / edge[strips - 1] + f(edge[strips - 1]) > 1 { return nil }
        edge.append(0)
        return edge
    }
}

/// The ChaCha20 keystream of one (stream, block) nonce prefix, read as 64-bit words, each
/// once and in order. Chunks of the block use nonces (stream, block·2²⁰ + chunk), so no two
/// chunks share a nonce. Each chunk is written into one buffer the reader owns, after the
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
