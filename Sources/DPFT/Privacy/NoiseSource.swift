import Crypto
import _CryptoExtras
import Foundation

/// Gaussian noise for DP from a cryptographically secure generator (DESIGN.md §3).
///
/// Uniform bits are the ChaCha20 keystream (RFC 8439, via swift-crypto's ChaCha20 encrypting
/// zeros from block counter 1, which is what ChaChaPoly's ciphertext of zeros is) keyed by 256
/// bits from the operating system. A fixed
/// seed is possible only when asked for explicitly (`seeded(_:)`), and `isSeeded` lets the
/// ledger record it. Nonces separate the streams: (0, counter) for `nextUniform()`, and
/// (2³¹ + call, block·2²⁰ + chunk) for the blocks of the `call`-th `addGaussian`, whose
/// floating-point-safe construction, citations and limits are documented on `GaussianSampler`.
public struct NoiseSource {
    private let key: SymmetricKey
    private var counter: UInt64 = 0
    private var words = KeystreamChunk(littleEndianBytes: Data())
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

    private static let chunkBytes = 1 << 20
    private static let zeros = [UInt8](repeating: 0, count: chunkBytes)

    /// `count` 64-bit words of the keystream under nonce (stream, index), kept in the bytes
    /// swift-crypto returns (no copy).
    static func keystream(key: SymmetricKey, stream: UInt32, index: UInt64, count: Int) -> KeystreamChunk {
        precondition(count * 8 <= chunkBytes, "keystream chunk too large")
        var nonceBytes: [UInt8] = []
        withUnsafeBytes(of: stream.littleEndian) { nonceBytes.append(contentsOf: $0) }
        withUnsafeBytes(of: index.littleEndian) { nonceBytes.append(contentsOf: $0) }
        // Block counter 1 onwards, as ChaChaPoly (RFC 8439 §2.8) encrypts: the same keystream
        // as sealing zeros, without computing a Poly1305 tag nobody reads.
        let keystream = try! Insecure.ChaCha20CTR.encrypt(zeros[0..<(count * 8)], using: key,
                                                          counter: .init(offset: 1), nonce: .init(data: nonceBytes))
        return KeystreamChunk(littleEndianBytes: keystream)
    }

    /// A uniform double in (0, 1) from 53 random bits.
    public mutating func nextUniform() -> Double {
        if position == words.count {
            words = Self.keystream(key: key, stream: 0, index: counter, count: Self.chunkBytes / 8)
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
    /// λ√d is paid for and the accountant's ε for σ holds (`GaussianSampler`).
    public mutating func addGaussian(to values: UnsafeMutableBufferPointer<Float>, noiseMultiplier: Double,
                                     sensitivity: Double) {
        guard noiseMultiplier > 0, !values.isEmpty else { return }
        let grid = NoiseGrid(noiseMultiplier: noiseMultiplier, sensitivity: sensitivity, coordinates: values.count)
        addGaussian(to: values, grid: grid, threads: Parallel.threadCount)
    }

    mutating func addGaussian(to values: UnsafeMutableBufferPointer<Float>, standardDeviation: Double, threads: Int) {
        precondition(standardDeviation >= 0 && standardDeviation.isFinite, "noise standard deviation must be finite and ≥ 0")
        guard standardDeviation > 0, !values.isEmpty else { return }
        addGaussian(to: values, grid: NoiseGrid(standardDeviation: standardDeviation), threads: threads)
    }

    private mutating func addGaussian(to values: UnsafeMutableBufferPointer<Float>, grid: NoiseGrid, threads: Int) {
        precondition(gaussianCalls < 1 << 31, "too many noise calls on one source")
        let stream = 0x8000_0000 | gaussianCalls
        gaussianCalls += 1
        let blockSize = GaussianSampler.blockSize
        let blocks = (values.count + blockSize - 1) / blockSize
        let workers = max(1, min(threads, blocks)), count = values.count
        // Blocks are disjoint ranges of `values`, which is what makes sharing the pointer sound.
        let shared = UncheckedSendable((values: values, key: key))
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            for block in stride(from: worker, to: blocks, by: workers) {
                let range = (block * blockSize)..<min(count, (block + 1) * blockSize)
                // ≈ 1.02 words per draw, and a pass may skip the last < 256 words of a chunk; a
                // second chunk is made in the rare case the first runs short.
                var words = KeystreamWords(key: shared.value.key, stream: stream, block: UInt64(block),
                                           chunkWords: 4096)
                GaussianSampler.addNoise(to: shared.value.values, range: range, grid: grid, words: &words)
            }
        }
    }
}

/// 64-bit words of ChaCha20 keystream, stored as swift-crypto's `Data` in the CPU's byte order.
struct KeystreamChunk {
    private var bytes: Data

    /// The keystream as produced: words in little-endian byte order.
    init(littleEndianBytes: Data) {
        bytes = littleEndianBytes
        #if _endian(big)
        bytes.withUnsafeMutableBytes { raw in
            for i in 0..<(raw.count / 8) {
                let word = raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)
                raw.storeBytes(of: UInt64(littleEndian: word), toByteOffset: i * 8, as: UInt64.self)
            }
        }
        #endif
    }

    var count: Int { bytes.count / 8 }

    subscript(i: Int) -> UInt64 {
        bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) }
    }

    /// Copies the words to the start of `destination`, which has room for `count`.
    func copyWords(to destination: UnsafeMutableBufferPointer<UInt64>) {
        precondition(destination.count >= count, "keystream destination too small")
        bytes.withUnsafeBytes { UnsafeMutableRawBufferPointer(destination).copyMemory(from: $0) }
    }
}
