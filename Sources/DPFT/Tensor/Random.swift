import Foundation

// Seeded pseudo-random numbers for initialisation and sampling (never for DP noise, which
// comes from a cryptographically secure generator).

/// xoshiro256** seeded through SplitMix64: fast, reproducible across platforms.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    public mutating func next() -> UInt64 {
        let result = rotate(state.1 &* 5, 7) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = rotate(state.3, 45)
        return result
    }

    private func rotate(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A uniform double in (0, 1).
    public mutating func nextOpenUnit() -> Double {
        (Double(next() >> 11) + 0.5) * (1.0 / 9_007_199_254_740_992.0)
    }

    /// A standard normal sample (Box–Muller).
    public mutating func nextNormal() -> Double {
        let u1 = nextOpenUnit(), u2 = nextOpenUnit()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}


extension Tensor {
    /// Fills every element with `value`.
    public func fill(_ value: Float) {
        buffer.update(repeating: value)
    }

    /// Fills with normal(mean, std) samples from `generator`.
    public func fillNormal(mean: Float = 0, std: Float, using generator: inout SeededGenerator) {
        let p = pointer
        for i in 0..<count { p[i] = mean + std * Float(generator.nextNormal()) }
    }
}
