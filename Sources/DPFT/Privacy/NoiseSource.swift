import Crypto
import CNoise
import Foundation
import Synchronization

/// Gaussian noise for DP from a cryptographically secure generator (DESIGN.md §3).
///
/// Uniform bits are the AES-256 counter-mode keystream (NIST SP 800-38A: the CPU's VAES
/// instructions where it has them, OpenSSL's libcrypto otherwise, `keystreamImplementation`;
/// the construction of NIST's CTR_DRBG, SP 800-90A) keyed by 256 bits from the
/// operating system. A fixed seed is possible only when asked for explicitly (`seeded(_:)`),
/// and `isSeeded` lets the ledger record it. Counter blocks separate the streams: block
/// (stream, index, j) is the 4 little-endian bytes of `stream`, the 8 of `index`, then the
/// block number j < 2¹⁶ as 4 big-endian bytes; (0, counter) feeds `nextUniform()`, and
/// (2³¹ + call, block·2²⁰ + chunk) the blocks of the `call`-th `addGaussian`, whose
/// floating-point-safe construction, citations and limits are documented on `GaussianSampler`.
///
/// A block cipher never repeats an output block under one key, where truly random bits
/// would, rarely: over q blocks the keystream is at most q²/2¹²⁹ from uniform in statistical
/// distance (the PRP/PRF switching lemma). A run of 10⁴ GPT-2-small steps reads q ≈ 2³⁹
/// blocks per key, so ≤ 2⁻⁵¹: an additive term far below any δ a run uses, beside the usual
/// assumption that AES-256 is a pseudorandom permutation.
public struct NoiseSource {
    private let key: SymmetricKey
    private var counter: UInt64 = 0
    private var words: [UInt64] = []
    private var position = 0
    private var gaussianCalls: UInt32 = 0
    /// The explicit seed, or nil when the key came from the operating system.
    public let seed: UInt64?

    /// A source keyed by the operating system's secure random generator.
    public static func secure() -> NoiseSource { NoiseSource(key: SymmetricKey(size: .bits256), seed: nil) }

    /// A reproducible source (tests, exact resume); the key is SHA-256 of the seed.
    public static func seeded(_ seed: UInt64) -> NoiseSource {
        var value = seed.littleEndian
        let digest = SHA256.hash(data: withUnsafeBytes(of: &value) { Data($0) })
        return NoiseSource(key: SymmetricKey(data: Data(digest)), seed: seed)
    }

    /// A reproducible stream for one purpose and index (e.g. the noise of step 17) derived from
    /// `seed`: key = SHA-256(seed ‖ purpose ‖ index). A resumed run re-derives the same streams
    /// without storing any generator state.
    public static func seeded(_ seed: UInt64, purpose: String, index: UInt64) -> NoiseSource {
        var material = Data()
        withUnsafeBytes(of: seed.littleEndian) { material.append(contentsOf: $0) }
        material.append(contentsOf: Array(purpose.utf8))
        withUnsafeBytes(of: index.littleEndian) { material.append(contentsOf: $0) }
        return NoiseSource(key: SymmetricKey(data: Data(SHA256.hash(data: material))), seed: seed)
    }

    private init(key: SymmetricKey, seed: UInt64?) {
        self.key = key
        self.seed = seed
    }

    /// True when the noise is reproducible from a recorded seed.
    public var isSeeded: Bool { seed != nil }

    private static let chunkWords = Int(DPFT_KEYSTREAM_WORDS_MAX)

    /// Which code writes the keystream on this CPU: "VAES" (AES rounds on four blocks per
    /// AVX-512 instruction, `Sources/CNoise/keystream.c`) or "OpenSSL" (its libcrypto).
    public static var keystreamImplementation: String { dpft_keystream_uses_vaes() == 1 ? "VAES" : "OpenSSL" }

    /// Writes the keystream of counter blocks (stream, index, 0), (stream, index, 1), … to
    /// `words` (`dpft_aes256ctr_keystream`, C).
    static func keystream(key: SymmetricKey, stream: UInt32, index: UInt64, into words: UnsafeMutableBufferPointer<UInt64>) {
        // On the stack: a noise call reads thousands of chunks.
        withUnsafeTemporaryAllocation(byteCount: 16, alignment: 1) { block in
            block.storeBytes(of: stream.littleEndian, toByteOffset: 0, as: UInt32.self)
            block.storeBytes(of: index.littleEndian, toByteOffset: 4, as: UInt64.self)
            block.storeBytes(of: 0, toByteOffset: 12, as: UInt32.self)
            keystream(key: key, counterBlock: UnsafeRawBufferPointer(block), into: words)
        }
    }

    /// Writes the AES-256-CTR keystream from the 16-byte `counterBlock` to `words`.
    static func keystream(key: SymmetricKey, counterBlock: UnsafeRawBufferPointer, into words: UnsafeMutableBufferPointer<UInt64>) {
        precondition(counterBlock.count == 16, "an AES counter block is 16 bytes")
        let ok = key.withUnsafeBytes { keyBytes in
            dpft_aes256ctr_keystream(words.baseAddress, words.count, keyBytes.bindMemory(to: UInt8.self).baseAddress,
                                     counterBlock.bindMemory(to: UInt8.self).baseAddress)
        }
        if ok != 1 {
            fatalError("dpft: OpenSSL's libcrypto gave no AES-256-CTR keystream (is its default provider disabled?); the DP noise cannot be drawn")
        }
    }

    /// `count` (at most `DPFT_KEYSTREAM_WORDS_MAX`, 2¹⁷) words of the keystream under nonce (stream, index).
    static func keystream(key: SymmetricKey, stream: UInt32, index: UInt64, count: Int) -> [UInt64] {
        [UInt64](unsafeUninitializedCapacity: count) { words, initialized in
            keystream(key: key, stream: stream, index: index, into: words)
            initialized = count
        }
    }

    /// A uniform double in (0, 1) from 53 random bits.
    public mutating func nextUniform() -> Double {
        if position == words.count {
            words = Self.keystream(key: key, stream: 0, index: counter, count: Self.chunkWords)
            counter += 1
            position = 0
        }
        position += 1
        return (Double(words[position - 1] >> 11) + 0.5) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Adds independent noise N(0, standardDeviation²), rounded to a power-of-two grid, to every
    /// element of `values`, after snapping each element to that grid (`GaussianSampler`: the
    /// result is exact before the final rounding to Float, so no floating-point artefact can
    /// depend on `values`). Blocks of 2¹⁶ elements run on `Parallel.threadCount` threads, each
    /// from its own keystream: a seeded source gives the same noise whatever the thread count.
    ///
    /// This form is for tests and benchmarks of the sampler: DP-SGD's step uses
    /// `addGaussian(to:noiseMultiplier:sensitivity:)`, which also pays for the snapping.
    mutating func addGaussian(to values: UnsafeMutableBufferPointer<Float>, standardDeviation: Double) {
        addGaussian(to: values, standardDeviation: standardDeviation, threads: Parallel.threadCount)
    }

    /// The Gaussian mechanism with noise multiplier σ on a sum of L2 sensitivity Δ: every element
    /// is snapped to the grid λ = 2^(⌊log₂ σΔ⌋ − 22) and gets noise of standard deviation
    /// σ·(Δ + λ√d) rounded to it (d = `values.count`), so that the snapping's extra sensitivity
    /// λ√d is paid for and the accountant's ε for σ holds (`GaussianSampler`). Each noisy value,
    /// once rounded to Float, is then multiplied by `scale` in the same pass (DP-SGD's division by
    /// the expected batch size: post-processing, the same bits as a separate pass; on GPT-2 small
    /// that pass took 18 ms a step here). With σ = 0 the values are only scaled.
    public mutating func addGaussian(to values: UnsafeMutableBufferPointer<Float>, noiseMultiplier: Double,
                                     sensitivity: Double, thenScaleBy scale: Float = 1) {
        guard noiseMultiplier > 0, !values.isEmpty else {
            if scale != 1, let base = values.baseAddress { VectorMath.scale(base, count: values.count, by: scale) }
            return
        }
        let grid = NoiseGrid(noiseMultiplier: noiseMultiplier, sensitivity: sensitivity, coordinates: values.count)
        addGaussian(to: values, grid: grid, threads: Parallel.threadCount, scale: scale)
    }

    mutating func addGaussian(to values: UnsafeMutableBufferPointer<Float>, standardDeviation: Double, threads: Int) {
        precondition(standardDeviation >= 0 && standardDeviation.isFinite, "noise standard deviation must be finite and ≥ 0")
        guard standardDeviation > 0, !values.isEmpty else { return }
        addGaussian(to: values, grid: NoiseGrid(standardDeviation: standardDeviation), threads: threads)
    }

    mutating func addGaussian(to values: UnsafeMutableBufferPointer<Float>, grid: NoiseGrid, threads: Int,
                              scale: Float = 1) {
        precondition(gaussianCalls < 1 << 31, "too many noise calls on one source")
        let stream = 0x8000_0000 | gaussianCalls
        gaussianCalls += 1
        let blockSize = GaussianSampler.blockSize
        let blocks = (values.count + blockSize - 1) / blockSize
        let workers = max(1, min(threads, blocks)), count = values.count
        // Blocks are disjoint ranges of `values`, which is what makes sharing the pointer sound.
        let shared = UncheckedSendable((values: values, key: key))
        // Blocks are handed out in turn, not dealt in advance: a thread the machine delays for a
        // while then takes fewer blocks instead of leaving the others idle at the end. Each block
        // draws from its own keystream, so which thread runs it changes no bit.
        let nextBlock = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while case let block = nextBlock.wrappingAdd(1, ordering: .relaxed).oldValue, block < blocks {
                let range = (block * blockSize)..<min(count, (block + 1) * blockSize)
                // ≈ 0.77 words per draw (6 bytes per proposal, more on the slow path): a block reads about
                // 12 chunks of 4096 words (32 KiB).
                var words = KeystreamWords(key: shared.value.key, stream: stream, block: UInt64(block),
                                           chunkWords: 4096)
                GaussianSampler.addNoise(to: shared.value.values, range: range, grid: grid, words: &words,
                                         scale: scale)
            }
        }
    }
}
