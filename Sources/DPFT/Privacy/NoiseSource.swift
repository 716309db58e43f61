import Crypto
import Foundation

/// Gaussian noise for DP from a cryptographically secure generator (DESIGN.md §3).
///
/// Uniform bits are the ChaCha20 keystream (RFC 8439, via swift-crypto's ChaChaPoly sealing
/// zeros under a fresh nonce per chunk) keyed by 256 bits from the operating system; normals
/// come from the Box–Muller transform on 53-bit uniforms. A fixed seed is possible only when
/// asked for explicitly (`seeded(_:)`), and `isSeeded` lets the ledger record it.
public struct NoiseSource {
    private let key: SymmetricKey
    private var counter: UInt64 = 0
    private var bytes: [UInt8] = []
    private var position = 0
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

    private mutating func refill() {
        var nonceBytes = [UInt8](repeating: 0, count: 12)
        withUnsafeBytes(of: counter.littleEndian) { nonceBytes.replaceSubrange(4..<12, with: $0) }
        counter += 1
        let nonce = try! ChaChaPoly.Nonce(data: nonceBytes)
        let sealed = try! ChaChaPoly.seal([UInt8](repeating: 0, count: Self.chunkBytes), using: key, nonce: nonce)
        bytes = [UInt8](sealed.ciphertext)
        position = 0
    }

    /// A uniform double in (0, 1) from 53 random bits.
    public mutating func nextUniform() -> Double {
        if position + 8 > bytes.count { refill() }
        var word: UInt64 = 0
        for k in 0..<8 { word |= UInt64(bytes[position + k]) << (8 * UInt64(k)) }
        position += 8
        return (Double(word >> 11) + 0.5) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// Adds independent N(0, standardDeviation²) samples to every element of `values`.
    public mutating func addGaussian(to values: UnsafeMutableBufferPointer<Float>, standardDeviation: Double) {
        var i = 0
        while i < values.count {
            let radius = (-2 * log(nextUniform())).squareRoot() * standardDeviation
            let angle = 2 * Double.pi * nextUniform()
            values[i] += Float(radius * cos(angle))
            if i + 1 < values.count { values[i + 1] += Float(radius * sin(angle)) }
            i += 2
        }
    }
}
