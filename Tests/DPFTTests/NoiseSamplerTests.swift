import CNoise
import Crypto
import _CryptoExtras
import Foundation
import Testing
@testable import DPFT

/// The DP noise sampler (`GaussianSampler`, `NoiseSource.addGaussian`) against N(0, 1): shape
/// (Kolmogorov–Smirnov), tails, independence of neighbouring draws, the grid, reproducibility.
/// Tolerances are stated with each check; none is widened to pass.
struct NoiseSamplerTests {
    static let drawCount = 1_000_000

    /// Q(t) = P(Z > t) for Z ~ N(0, 1).
    static func upperTail(_ t: Double) -> Double { 0.5 * erfc(t / 2.squareRoot()) }

    /// 10⁶ standard normal draws from a seeded source (noise added to zeros).
    static let draws: [Double] = {
        var source = NoiseSource.seeded(11)
        var values = [Float](repeating: 0, count: drawCount)
        values.withUnsafeMutableBufferPointer { source.addGaussian(to: $0, standardDeviation: 1) }
        return values.map(Double.init)
    }()

    /// One-sample KS against Φ over 10⁶ draws. Critical value at α = 0.001: 1.9495/√n ≈ 0.00195.
    @Test func kolmogorovSmirnovOverAMillionDraws() {
        let sorted = Self.draws.sorted()
        let n = Double(sorted.count)
        var statistic = 0.0
        for (index, value) in sorted.enumerated() {
            let cdf = 1 - Self.upperTail(value)
            statistic = max(statistic, abs(Double(index + 1) / n - cdf), abs(cdf - Double(index) / n))
        }
        #expect(statistic < 1.9495 / n.squareRoot(), "KS statistic \(statistic)")
    }

    /// Mean within 5 standard errors (5/√n); variance within 5 standard errors (5·√(2/n)).
    @Test func meanAndVariance() {
        let n = Double(Self.draws.count)
        let mean = Self.draws.reduce(0, +) / n
        let variance = Self.draws.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
        #expect(abs(mean) < 5 / n.squareRoot(), "mean \(mean)")
        #expect(abs(variance - 1) < 5 * (2 / n).squareRoot(), "variance \(variance)")
    }

    /// Counts of |z| beyond t over 10⁶ draws vs n·2Q(t), within 4 binomial standard deviations
    /// (t = 4: expected 63.3; t = r ≈ 3.654, where the ziggurat's tail branch starts: 258). At
    /// 5σ and 6σ 10⁶ draws expect 0.57 and 0.002, so only a gross excess is checked there; the
    /// tail branch itself is tested far out below.
    @Test func tailMassOfAMillionDraws() {
        let n = Double(Self.draws.count)
        for t in [NoiseGrid(standardDeviation: 1).ziggurat.r, 4.0] {
            let p = 2 * Self.upperTail(t)
            let count = Double(Self.draws.filter { abs($0) > t }.count)
            let sd = (n * p * (1 - p)).squareRoot()
            #expect(abs(count - n * p) < 4 * sd, "beyond \(t)σ: \(count) vs \(n * p) ± \(sd)")
        }
        #expect(Self.draws.filter { abs($0) > 5 }.count <= 5)  // Poisson(0.57): P(≥ 6) ≈ 4·10⁻⁶
        #expect(Self.draws.filter { abs($0) > 6 }.count <= 1)  // Poisson(0.002): P(≥ 2) ≈ 2·10⁻⁶
    }

    /// The tail branch alone (z > r ≈ 4.22): 10⁶ draws beyond 4.5σ, 5σ, 6σ vs Q(t)/Q(r)
    /// (expected 2.74·10⁵, 2.31·10⁴, 79.5), within 4 binomial standard deviations, and beyond 7σ
    /// at most 3 (expected 0.10).
    @Test func tailBranchMassBeyondFourAndAHalfFiveSixSigma() {
        var words = KeystreamWords(key: .init(data: [UInt8](repeating: 7, count: 32)), stream: 7, block: 0, chunkWords: 100_000)
        let r = NoiseGrid(standardDeviation: 1).ziggurat.r
        let n = 1_000_000
        #expect(r > 4 && r < 4.5)
        var beyond = [4.5: 0, 5.0: 0, 6.0: 0, 7.0: 0]
        for _ in 0..<n {
            let z = r + GaussianSampler.tailExcess(beyond: r, words: &words)
            for t in beyond.keys where z > t { beyond[t]! += 1 }
        }
        for t in [4.5, 5.0, 6.0] {
            let p = Self.upperTail(t) / Self.upperTail(r)
            let sd = (Double(n) * p * (1 - p)).squareRoot()
            #expect(abs(Double(beyond[t]!) - Double(n) * p) < 4 * sd, "beyond \(t)σ: \(beyond[t]!) vs \(Double(n) * p) ± \(sd)")
        }
        #expect(beyond[7]! <= 3)
    }

    /// No cap: uniforms keep full resolution near 0, so a run of zero keystream words reaches
    /// 2⁻¹²⁹ (53-bit uniforms stop at 2⁻⁵³) and the tail reaches past 25σ (r + 128·ln 2/r ≈ 25.3;
    /// Box–Muller on 53-bit uniforms: 8.57σ).
    @Test func tailsAreNotCapped() {
        var words = KeystreamWords(fixedWords: [0, 0, 1 << 63])
        #expect(words.nextFullPrecisionUniform() == (0.5 + 0x1p-53) * 0x1p-128)
        words = KeystreamWords(fixedWords: [0, 0, 1 << 63] + [UInt64](repeating: 0, count: 7) + [1 << 63])
        let r = NoiseGrid(standardDeviation: 1).ziggurat.r
        let z = r + GaussianSampler.tailExcess(beyond: r, words: &words)
        #expect(z > 25, "tail draw \(z)")
    }

    /// Neighbouring draws are independent: (a − b)/√2 and (a + b)/√2 over 5·10⁵ disjoint pairs
    /// both have variance 1 within 5·√(2/m); the lag-1 correlation is below 5/√n.
    @Test func consecutiveDrawsAreIndependent() {
        let draws = Self.draws
        let pairs = draws.count / 2
        var difference = 0.0, sum = 0.0
        for i in 0..<pairs {
            let a = draws[2 * i], b = draws[2 * i + 1]
            difference += (a - b) * (a - b) / 2
            sum += (a + b) * (a + b) / 2
        }
        let tolerance = 5 * (2 / Double(pairs)).squareRoot()
        #expect(abs(difference / Double(pairs) - 1) < tolerance, "variance along (1, −1): \(difference / Double(pairs))")
        #expect(abs(sum / Double(pairs) - 1) < tolerance, "variance along (1, 1): \(sum / Double(pairs))")
        var lagProduct = 0.0
        for i in 1..<draws.count { lagProduct += draws[i - 1] * draws[i] }
        let correlation = lagProduct / Double(draws.count - 1)
        #expect(abs(correlation) < 5 / Double(draws.count).squareRoot(), "lag-1 correlation \(correlation)")
    }

    /// Outputs lie on the grid λℤ (λ = 2^(⌊log₂ σ⌋ − 22)) whatever the input's low bits, and the
    /// noise is (output − input) ≈ N(0, σ²).
    @Test func outputsLieOnThePowerOfTwoGrid() {
        var source = NoiseSource.seeded(3)
        let inputs = (0..<20_000).map { Float($0) * 0.001 + 1e-7 }
        var values = inputs
        values.withUnsafeMutableBufferPointer { source.addGaussian(to: $0, standardDeviation: 0.7) }
        let spacing = 0x1p-23  // 0.7 ∈ [2⁻¹, 2⁰)
        #expect(values.allSatisfy { (Double($0) / spacing).rounded() == Double($0) / spacing })
        let noise = zip(values, inputs).map { Double($0) - Double($1) }
        let std = (noise.reduce(0) { $0 + $1 * $1 } / Double(noise.count)).squareRoot()
        #expect(abs(std - 0.7) / 0.7 < 0.03, "std \(std)")  // 5 standard errors of 1/√(2n) ≈ 0.5 %
    }

    /// Same seed → same noise, whatever the thread count; secure sources differ; each call on a
    /// source draws fresh noise.
    @Test func seededNoiseIsReproducibleAcrossThreadCounts() {
        func noise(_ source: inout NoiseSource, threads: Int, count: Int = 200_000) -> [Float] {
            var values = [Float](repeating: 0, count: count)
            values.withUnsafeMutableBufferPointer { source.addGaussian(to: $0, standardDeviation: 1, threads: threads) }
            return values
        }
        var a = NoiseSource.seeded(5), b = NoiseSource.seeded(5)
        let first = noise(&a, threads: 1)
        #expect(first == noise(&b, threads: 3))
        #expect(noise(&a, threads: 2) == noise(&b, threads: 1))
        #expect(noise(&a, threads: 2) != first)
        var c = NoiseSource.secure(), d = NoiseSource.secure()
        #expect(noise(&c, threads: 2, count: 16) != noise(&d, threads: 2, count: 16))
    }

    /// The bits are AES-256-CTR's: NIST SP 800-38A F.5.5 (CTR-AES256.Encrypt), whose output
    /// blocks #1–#2 are the keystream from counter block f0f1…feff; the second block's counter
    /// carries into byte 14 (…fcfdfeff + 1 = …fcfdff00), as the big-endian increment must.
    @Test func keystreamIsNISTAES256CTR() {
        let key = SymmetricKey(data: Self.hex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"))
        let expected = Self.hex("0bdf7df1591716335e9a8b15c860c502" + "5a6e699d536119065433863c8f657b94")
        let words = [UInt64](unsafeUninitializedCapacity: 4) { buffer, initialized in
            Self.hex("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff").withUnsafeBytes {
                NoiseSource.keystream(key: key, counterBlock: $0, into: buffer)
            }
            initialized = 4
        }
        let bytes = words.flatMap { word in (0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) } }
        #expect(bytes == expected)
    }

    /// The index of the first word where `a` and `b` differ (their length where one is a prefix of
    /// the other), or nil when they are equal.
    static func firstDifference(_ a: [UInt64], _ b: [UInt64]) -> Int? {
        a == b ? nil : (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
    }

    static func hex(_ text: String) -> [UInt8] {
        stride(from: 0, to: text.count, by: 2).map { offset in
            let start = text.index(text.startIndex, offsetBy: offset)
            return UInt8(text[start..<text.index(start, offsetBy: 2)], radix: 16)!
        }
    }

    /// OpenSSL's keystream (the noise's) equals swift-crypto's AES-CTR (BoringSSL) for a random
    /// key, for (stream, index) prefixes that use every byte, over 2¹⁷ words (2¹⁶ blocks, a
    /// whole chunk), 3 words and 4099: past many blocks, and not a whole number of the block
    /// batches vector code works in.
    @Test func keystreamEqualsSwiftCryptosAESCTR() throws {
        let key = SymmetricKey(size: .bits256)
        for (stream, index, count) in [(UInt32(0x8000_0007), UInt64(0x0123_4567_89AB_CDEF), 1 << 17),
                                       (0, 0, 3), (0xFFFF_FFFF, 42 << 20 | 1, 4099)] {
            var prefix: [UInt8] = []
            withUnsafeBytes(of: stream.littleEndian) { prefix.append(contentsOf: $0) }
            withUnsafeBytes(of: index.littleEndian) { prefix.append(contentsOf: $0) }
            // A 12-byte nonce: swift-crypto starts the 32-bit big-endian counter after it at 0.
            let reference = try AES._CTR.encrypt(Data(count: count * 8), using: key, nonce: .init(nonceBytes: prefix))
            let expected = reference.withUnsafeBytes { raw in
                (0..<count).map { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)) }
            }
            #expect(Self.firstDifference(NoiseSource.keystream(key: key, stream: stream, index: index, count: count), expected) == nil)
        }
    }

    /// The VAES loop equals OpenSSL's AES-256-CTR: whole 16-block groups, a partial group and an
    /// odd word count (half a block), a counter that starts mid-way, and one whose last 32 bits
    /// would wrap (the loop hands that to OpenSSL, which carries into byte 11).
    @Test(.enabled(if: dpft_keystream_uses_vaes() == 1, "the CPU has no VAES: dpft uses OpenSSL alone"))
    func keystreamVAESLoopEqualsOpenSSL() {
        let key = [UInt8]((0..<32).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) })
        for (counter, count) in [(Self.hex("000102030405060708090a0b00000000"), 1 << 17),
                                 (Self.hex("ffeeddccbbaa99887766554400001234"), 4099),
                                 (Self.hex("0000000000000000000000000000fff0"), 33),
                                 (Self.hex("0102030405060708090a0b0cfffffffe"), 16)] {
            func words(_ body: (UnsafeMutablePointer<UInt64>) -> Int32) -> [UInt64] {
                [UInt64](unsafeUninitializedCapacity: count) { buffer, initialized in
                    #expect(body(buffer.baseAddress!) == 1)
                    initialized = count
                }
            }
            let vaes = words { dpft_aes256ctr_keystream($0, count, key, counter) }
            let openssl = words { dpft_aes256ctr_keystream_openssl($0, count, key, counter) }
            // The first differing word, not the arrays: printing 2¹⁷ words takes minutes.
            #expect(Self.firstDifference(vaes, openssl) == nil, "counter block \(counter), \(count) words")
        }
    }

    /// A pass of `count` proposals as random words, with proposal j's bytes (32 cell bits at 4j,
    /// the tag at 4·count + 2j, little-endian) set for the rare branches: 3 the tail zone, 4 a
    /// Lemire product whose low bits are below the cell count, 5 a wedge cell, 6–8 rectangle
    /// cells; and inputs: small, huge (past 2⁵¹ grid units, where snapping takes the
    /// library rounding), tiny, negative, either side of 2³⁰ grid units (7, 8), and −0 at 6 with
    /// noise −0 (the double path's snapping makes it +0, and so must the kernel).
    static func fastPassCase(grid: NoiseGrid, count: Int) -> (words: [UInt64], inputs: [Float]) {
        let ziggurat = grid.ziggurat
        var source = NoiseSource.seeded(21)
        var words = (0..<GaussianSampler.wordsPerPass(count)).map { _ in UInt64((source.nextUniform() * 0x1p53).rounded(.down)) << 11 | UInt64((source.nextUniform() * 2048).rounded(.down)) }
        func set(_ j: Int, bits: UInt32, tag: UInt16) {
            words.withUnsafeMutableBytes { raw in
                raw.storeBytes(of: bits.littleEndian, toByteOffset: 4 * j, as: UInt32.self)
                raw.storeBytes(of: tag.littleEndian, toByteOffset: 4 * count + 2 * j, as: UInt16.self)
            }
        }
        // Tags: box in bits 0–10, sign 11, half 12, the high three of the 35 cell bits 13–15.
        set(3, bits: .max, tag: 0xE000)  // box 0's last cell: the tail zone
        set(4, bits: 0, tag: 0x1005)  // product 0: low bits below the cells
        let wedge = UInt64(ziggurat.inner[9])  // box 9's first cell outside the rectangle
        let middle = ((wedge << 35) + (1 << 34)) / ziggurat.cells[9]  // 35 bits in the cell's middle
        set(5, bits: UInt32(truncatingIfNeeded: middle), tag: 0x0809 | UInt16(middle >> 32) << 13)
        set(6, bits: 1, tag: 0x0805)  // box 5, cell 0 (cell bits 1), negative, lower half: k = −0
        set(7, bits: 1 << 22, tag: 0x1006)  // rectangle cells for the inputs either side of 2³⁰
        set(8, bits: 1 << 24, tag: 0x0807)
        var inputs = (0..<count).map { j -> Float in
            let base = Float(source.nextUniform() - 0.5)
            return j % 17 == 0 ? base * 3e16 : j % 5 == 0 ? base * 1e-6 : base
        }
        inputs[6] = -0.0
        inputs[7] = Float(0x1p30 * grid.spacing)
        inputs[8] = Float(-(0x1p30 - 64) * grid.spacing)
        return (words, inputs)
    }

    /// The vectorised common path (`dpft_noise_fast_pass`, C, one build per x86-64 level) against
    /// the rectangle branch written out one coordinate at a time (`rectangleNoise`, proposals
    /// read from the words byte by byte, snapping in double precision): the same bits for every
    /// settled coordinate, untouched values and the right (index, proposal) pairs for every
    /// other — those outside a rectangle cell, and those the kernel's 32-bit sum leaves to the
    /// double path (|x/λ| ≥ 2³⁰).
    @Test func vectorFastPassEqualsTheScalarRectangleBranch() {
        let grid = NoiseGrid(standardDeviation: 0.37)
        let ziggurat = grid.ziggurat
        let inverseSpacing = 1 / grid.spacing
        let count = GaussianSampler.passSize - 3  // a pass whose tags start mid-word
        let (words, inputs) = Self.fastPassCase(grid: grid, count: count)
        var values = inputs
        var pendingIndex = [UInt32](repeating: 0, count: GaussianSampler.passSize)
        var pendingProposal = [UInt64](repeating: 0, count: GaussianSampler.passSize)
        let listed = values.withUnsafeMutableBufferPointer { v in
            words.withUnsafeBufferPointer { w in
                ziggurat.bounds.withUnsafeBufferPointer { bounds in
                    pendingIndex.withUnsafeMutableBufferPointer { index in
                        pendingProposal.withUnsafeMutableBufferPointer { proposal in
                            GaussianSampler.fastPass(v, 0..<count, w, bounds: bounds, inverseSpacing: inverseSpacing,
                                                     spacing: grid.spacing, pendingIndex: index, pendingProposal: proposal)
                        }
                    }
                }
            }
        }
        var expectedOutside: [Int] = [], outsideTheIntegers: [Int] = []
        for j in 0..<count {
            let proposal = GaussianSampler.proposal(j, of: words, count: count)
            guard let k = GaussianSampler.rectangleNoise(proposal, ziggurat: ziggurat) else { expectedOutside.append(j); continue }
            let scaled = Double(inputs[j]) * inverseSpacing, snapped = GaussianSampler.roundToEven(scaled)
            guard abs(scaled) < 0x1p30 else {
                expectedOutside.append(j)
                outsideTheIntegers.append(j)
                continue
            }
            let expected = Float((snapped + k) * grid.spacing)
            #expect(values[j].bitPattern == expected.bitPattern, "coordinate \(j): \(values[j]) vs \(expected)")
        }
        #expect([3, 4, 5, 7].allSatisfy(expectedOutside.contains) && !expectedOutside.contains(6) && !expectedOutside.contains(8))
        #expect(outsideTheIntegers.contains(7) && outsideTheIntegers.contains(17))
        #expect(values[6].bitPattern == Float(0).bitPattern, "−0 plus noise −0 snaps to +0")
        #expect(pendingIndex[0..<listed].map(Int.init) == expectedOutside)
        #expect(pendingProposal[0..<listed].elementsEqual(expectedOutside.map { GaussianSampler.proposal($0, of: words, count: count) }))
        #expect(expectedOutside.allSatisfy { values[$0].bitPattern == inputs[$0].bitPattern })
        #expect(count - expectedOutside.count > count * 9 / 10, "most proposals settle in the fast path")
    }

    /// A whole pass of `addNoise` (the kernel, then `settle` and double-precision snapping for
    /// what it lists) against one coordinate at a time in Swift: proposal j from the pass's
    /// words, `rectangleNoise` or else `settle` reading the words after the pass in order, the
    /// snapped sum in double precision, rounded to Float, times the scale. The same bits for
    /// every coordinate, the huge ones included.
    @Test func aPassOfAddNoiseEqualsTheOneAtATimeDraw() {
        let grid = NoiseGrid(standardDeviation: 0.37)
        let count = GaussianSampler.passSize - 3
        let (passWords, inputs) = Self.fastPassCase(grid: grid, count: count)
        var source = NoiseSource.seeded(29)
        let following = (0..<4096).map { _ in UInt64((source.nextUniform() * 0x1p32).rounded(.down)) << 32 | UInt64((source.nextUniform() * 0x1p32).rounded(.down)) }
        let scale = Float(1) / 3
        var values = inputs
        var words = KeystreamWords(fixedWords: passWords + following)
        values.withUnsafeMutableBufferPointer {
            GaussianSampler.addNoise(to: $0, range: 0..<count, grid: grid, words: &words, scale: scale)
        }
        var rest = KeystreamWords(fixedWords: following)
        var differing: [Int] = []
        for j in 0..<count {
            let proposal = GaussianSampler.proposal(j, of: passWords, count: count)
            let k = GaussianSampler.rectangleNoise(proposal, ziggurat: grid.ziggurat)
                ?? GaussianSampler.settle(proposal, ziggurat: grid.ziggurat, words: &rest)
            let snapped = GaussianSampler.roundToEven(Double(inputs[j]) / grid.spacing)
            let expected = Float((snapped + k) * grid.spacing) * scale
            if values[j].bitPattern != expected.bitPattern { differing.append(j) }
        }
        #expect(differing.isEmpty, "coordinates \(differing) differ")
    }

    /// The slow path finishes Lemire's draw: a product whose low 35 bits fall below 2³⁵ mod
    /// cells is redrawn from the next word (35 bits), and the cell that word gives, a rectangle
    /// cell here, yields k = ±(cell + half).
    @Test func settleRedrawsARejectedCellFromTheNextWord() {
        let ziggurat = NoiseGrid(standardDeviation: 1).ziggurat
        let box = 7, cells = ziggurat.cells[box], threshold = (1 << 35) % cells
        #expect(threshold > 0)
        let cell: UInt64 = 1234
        let bits = ((cell << 35) + threshold + cells - 1) / cells  // the first value whose product's low bits reach the threshold
        var words = KeystreamWords(fixedWords: [bits << 29])
        // Proposal: cell bits 0 (product 0, rejected), box 7, negative, upper half.
        let k = GaussianSampler.settle(0x1800 | UInt64(box), ziggurat: ziggurat, words: &words)
        #expect(k == -Double(cell + 1))
    }

    /// The grid ziggurat's boxes, recomputed in 80-bit precision from the integer table: each
    /// covers the curve at its bottom (M_i/s ≥ f⁻¹(y_i)); every rectangle cell lies under the
    /// curve at its box's top (L_i/s ≤ f⁻¹(y_{i+1})); the stack passes the mode only in its last
    /// box; the tail zone holds the tail's area. For the noise's scales ≈ 99.77 % of proposals
    /// are rectangle cells and r is the continuous 2048-box ziggurat's 4.2163704095118969 to
    /// within a cell (Marsaglia & Tsang's equations, solved by bisection in 40-digit mpmath:
    /// v = r·f(r) + T(r), x_{i+1} = f⁻¹(f(x_i) + v/x_i) from x₁ = r, f(x_2047) + v/x_2047 = 1,
    /// `tools/ziggurat_r.py`; the same recursion with 256 boxes gives their published
    /// 3.6541528853610088).
    @Test func gridZigguratCoversTheCurveWithEqualBoxes() {
        #if arch(x86_64)
        for s in [1.0, 2.5, 7.3, 0x1p22, 0x1p23 - 1, 5_123_456.789] {
            let z = GridZiggurat(scale: s)
            let scale = Float80(s)
            let r = Float80(z.baseCells) / scale, fr = expl(-r * r / 2)
            let boxArea = Float80(z.cells[0]) * fr / scale
            func halfWidth(_ y: Float80) -> Float80 { y >= 1 ? 0 : (-2 * logl(y)).squareRoot() }
            var y = fr
            #expect(Float80(z.inner[0]) / scale <= r)
            for i in 1..<GridZiggurat.boxes {
                #expect(Float80(z.cells[i]) / scale >= halfWidth(y), "s = \(s): box \(i) does not cover the curve")
                let top = y + boxArea * scale / Float80(z.cells[i])
                #expect(Float80(z.inner[i]) / scale <= halfWidth(top), "s = \(s): box \(i)'s rectangle passes the curve")
                #expect(abs(Double(y) - z.bottom[i]) <= 1e-12 && z.inner[i] <= z.cells[i])
                if s > 1000 { #expect(i == GridZiggurat.boxes - 1 || top < 1, "s = \(s): box \(i) passes the mode") }
                y = top
            }
            #expect(y >= 1, "s = \(s): the stack ends below the mode at \(y)")
            let tailArea = Float80((Double.pi / 2).squareRoot() * erfc(Double(r) / 2.squareRoot()))
            #expect(Float80(z.cells[0] - z.baseCells) * fr / scale >= tailArea * (1 + 1e-12))
            #expect(z.tailAcceptance > 0 && z.tailAcceptance < 1)
            if s > 1000 {
                let rectangles = zip(z.inner, z.cells).reduce(0.0) { $0 + Double($1.0) / Double($1.1) } / Double(GridZiggurat.boxes)
                #expect(rectangles > 0.9976 && rectangles < 0.9979, "s = \(s): rectangle share \(rectangles)")
                #expect(abs(z.r - 4.2163704095118969) < 1e-5, "s = \(s): r = \(z.r)")
            }
        }
        #endif
    }

    /// A grid reuses the last ziggurat only for the same scale: alternating σ gives each grid the
    /// tables a fresh build gives.
    @Test func gridsReuseTheZigguratOfTheSameScaleOnly() {
        for sigma in [1.0, 0.37, 0.37, 1.0, 3.0e-5] {
            let grid = NoiseGrid(standardDeviation: sigma), fresh = GridZiggurat(scale: grid.scale)
            #expect(grid.ziggurat.scale == grid.scale)
            #expect(grid.ziggurat.bounds == fresh.bounds && grid.ziggurat.bottom == fresh.bottom)
        }
    }

    /// The grid ziggurat's distribution worked out from its table, without sampling, equals the
    /// rounded Gaussian's: per box (each chosen with probability 1/2048) a rectangle cell gives
    /// half its 1/M_i to k = c and half to k = c + 1, a wedge cell the integral of its
    /// acceptance probability over each half (20-point Gauss–Legendre on pieces where it is
    /// smooth), the tail zone its acceptance times the tail rounded to the grid. Normalised,
    /// P(|k|) matches 2·(Q(lower) − Q(upper)) over k's cell (from erfc) within 10⁻¹² relative for every
    /// k ≤ 6σ, on coarse grids where wedges carry much of every point's mass.
    @Test func gridZigguratDistributionIsTheRoundedGaussian() {
        for s in [2.5, 7.3] {
            let z = GridZiggurat(scale: s), largest = Int(9 * s)
            let f = { (x: Double) in exp(-0.5 * x * x) }
            var mass = [Double](repeating: 0, count: largest + 2)
            for box in 0..<GridZiggurat.boxes {
                let cells = Int(z.cells[box]), inner = Int(z.inner[box]), cellWeight = 1 / Double(cells)
                for c in 0..<min(inner, largest) {
                    mass[c] += cellWeight / 2
                    mass[c + 1] += cellWeight / 2
                }
                if box == 0 {
                    let zone = Double(cells - inner) * cellWeight * z.tailAcceptance
                    let tailArea = (Double.pi / 2).squareRoot() * erfc(z.r / 2.squareRoot())
                    for k in inner...largest {
                        let lower = k == inner ? z.r : (Double(k) - 0.5) / s
                        mass[k] += zone * Self.integral(from: lower, to: (Double(k) + 0.5) / s, of: f) / tailArea
                    }
                    continue
                }
                let bottom = z.bottom[box], height = z.height[box]
                let accept = { (x: Double) in min(1, max(0, (f(x) - bottom) / height)) }
                let breaks = [GridZiggurat.halfWidth(at: bottom + height), GridZiggurat.halfWidth(at: bottom)]
                for c in inner..<min(cells, largest) {
                    for (half, k) in [(0.0, c), (0.5, c + 1)] {
                        let lower = (Double(c) + half) / s, upper = lower + 0.5 / s
                        let points = [lower] + breaks.filter { $0 > lower && $0 < upper } + [upper]
                        let integral = zip(points, points.dropFirst()).reduce(0) { $0 + Self.integral(from: $1.0, to: $1.1, of: accept) }
                        mass[k] += cellWeight * s * integral
                    }
                }
            }
            let total = mass[0...largest].reduce(0, +)
            for k in 0...Int(6 * s) {
                let lower = k == 0 ? 0 : (Double(k) - 0.5) / s, upper = (Double(k) + 0.5) / s
                let exact = 2 * (Self.upperTail(lower) - Self.upperTail(upper))  // no cancellation far out
                #expect(abs(mass[k] / total - exact) <= 1e-12 * exact, "s = \(s), |k| = \(k): \(mass[k] / total) vs \(exact)")
            }
        }
    }

    /// ∫_a^b g by 20-point Gauss–Legendre (nodes and weights from Newton's method on P₂₀).
    static func integral(from a: Double, to b: Double, of g: (Double) -> Double) -> Double {
        let half = 0.5 * (b - a), middle = 0.5 * (a + b)
        return zip(legendre.nodes, legendre.weights).reduce(0) { $0 + $1.1 * g(middle + half * $1.0) } * half
    }

    static let legendre: (nodes: [Double], weights: [Double]) = {
        let n = 20
        var nodes: [Double] = [], weights: [Double] = []
        for i in 1...n {
            var x = cos(Double.pi * (Double(i) - 0.25) / (Double(n) + 0.5)), derivative = 0.0
            for _ in 0..<100 {
                var p0 = 1.0, p1 = x
                for m in 2...n { (p0, p1) = (p1, ((2 * Double(m) - 1) * x * p1 - (Double(m) - 1) * p0) / Double(m)) }
                derivative = Double(n) * (x * p1 - p0) / (x * x - 1)
                let step = p1 / derivative
                x -= step
                if abs(step) < 1e-16 { break }
            }
            nodes.append(x)
            weights.append(2 / ((1 - x * x) * derivative * derivative))
        }
        return (nodes, weights)
    }()

    /// The whole sampler (fast and slow paths) against the exact rounded Gaussian on coarse
    /// grids, where every grid point's probability is large and most draws take the slow path:
    /// σ = 2.5 and 1.25 grid units, 10⁶ draws each, Pearson's χ² over k = −K … K with k ≤ −K and
    /// k ≥ K pooled (K = 10 and 5: 20 and 10 degrees of freedom, critical values 45.31 and
    /// 29.59 at α = 0.001).
    @Test func coarseGridDrawsMatchTheRoundedGaussian() {
        for (seed, sigma, bound, critical) in [(UInt64(31), 2.5, 10, 45.31), (32, 1.25, 5, 29.59)] {
            var source = NoiseSource.seeded(seed)
            let n = 1_000_000
            var values = [Float](repeating: 0, count: n)
            values.withUnsafeMutableBufferPointer { source.addGaussian(to: $0, grid: NoiseGrid(standardDeviation: sigma, spacing: 1), threads: 2) }
            var observed = [Double](repeating: 0, count: 2 * bound + 1)
            for value in values { observed[min(2 * bound, max(0, Int(value) + bound))] += 1 }
            func cdf(_ k: Int) -> Double { 0.5 * erfc(-(Double(k) + 0.5) / sigma / 2.squareRoot()) }  // P(K ≤ k)
            let expected = (-bound...bound).map { k in
                Double(n) * (k == -bound ? cdf(k) : k == bound ? 1 - cdf(k - 1) : cdf(k) - cdf(k - 1))
            }
            let chiSquare = zip(observed, expected).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) / $1.1 }
            #expect(chiSquare < critical, "σ = \(sigma) grid units: χ² = \(chiSquare)")
        }
    }

    /// DP-SGD's entry point pays for the snapping: noise σ·(Δ + λ√d) on the grid λ of σΔ, so the
    /// snapped mechanism is the Gaussian mechanism with multiplier σ at sensitivity Δ + λ√d.
    @Test func theStepsNoiseCoversTheSnappingsSensitivity() {
        for (sigma, sensitivity, d) in [(1.0, 1.0, 5_300_000), (0.6303, 2.5, 1_000), (3.0, 0.1, 124_000_000)] {
            let grid = NoiseGrid(noiseMultiplier: sigma, sensitivity: sensitivity, coordinates: d)
            let lambda = NoiseGrid.spacing(for: sigma * sensitivity)
            #expect(grid.spacing == lambda)
            let expected = sigma * (sensitivity + lambda * Double(d).squareRoot())
            #expect(abs(grid.scale * grid.spacing - expected) <= 1e-15 * expected)
            #expect(grid.scale * grid.spacing > sigma * sensitivity)
        }
        var source = NoiseSource.seeded(5)
        var values = [Float](repeating: 0.1, count: 4096)
        values.withUnsafeMutableBufferPointer { source.addGaussian(to: $0, noiseMultiplier: 1, sensitivity: 1) }
        let lambda = NoiseGrid.spacing(for: 1)
        #expect(values.allSatisfy { (Double($0) / lambda).rounded() == Double($0) / lambda }, "outputs on the grid")
    }

    /// The step's division by its batch size, fused into the noise pass, gives the bits of a
    /// separate pass after it: on the vector path and the slow path (3·10⁵ draws take both; a
    /// block boundary and a short last pass too), and alone when σ = 0.
    @Test func scalingInTheNoisePassEqualsScalingAfterIt() {
        var inputs = [Float](repeating: 0, count: 300_001)
        var source = NoiseSource.seeded(17)
        for i in inputs.indices { inputs[i] = Float(source.nextUniform() - 0.5) * 3 }
        for (sigma, scale) in [(1.3, Float(1) / 3), (0.02, Float(0.125)), (0, Float(1) / 7)] {
            var separate = inputs, fused = inputs
            var first = NoiseSource.seeded(23), second = NoiseSource.seeded(23)
            separate.withUnsafeMutableBufferPointer { first.addGaussian(to: $0, noiseMultiplier: sigma, sensitivity: 2) }
            for i in separate.indices { separate[i] *= scale }
            fused.withUnsafeMutableBufferPointer {
                second.addGaussian(to: $0, noiseMultiplier: sigma, sensitivity: 2, thenScaleBy: scale)
            }
            let differing = zip(separate, fused).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(differing == 0, "σ = \(sigma), scale \(scale): \(differing) values differ")
            #expect(sigma == 0 || zip(separate, inputs).contains { $0 != $1 * scale }, "noise was added")
        }
    }
}
