import CVectorMath

/// tanh and exp over arrays, eight lanes at a time through glibc's vector math library
/// (libmvec) on CPUs with AVX2 and FMA, else glibc's scalar functions (`CVectorMath`).
/// glibc bounds both paths' error by 4 ulp. Each element's result is independent of the
/// array it sits in, so chunking work over threads never changes a result.
enum VectorMath {
    /// y[i] = tanh(x[i]); `y` may be `x`.
    @inline(__always)
    static func tanh(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        if count > 0 { dpft_tanhf(x, y, count) }
    }

    /// y[i] = exp(x[i]); `y` may be `x`.
    @inline(__always)
    static func exp(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        if count > 0 { dpft_expf(x, y, count) }
    }

    /// True when the libmvec path is in use on this CPU.
    static var isVectorised: Bool { dpft_vector_math_is_vectorised() != 0 }
}

extension VectorMath {
    /// Σ x[i], in sixteen interleaved partial sums combined in a fixed order (the same on every
    /// CPU and thread count): sixteen independent additions in flight instead of one chain.
    @inline(__always)
    static func sum(_ x: UnsafePointer<Float>, count: Int) -> Float { dpft_sumf(x, count) }

    /// max x[i] (−∞ for none); a NaN element gives NaN.
    @inline(__always)
    static func maximum(_ x: UnsafePointer<Float>, count: Int) -> Float { dpft_maxf(x, count) }

    /// x[i] *= factor, in chunks on every core (a whole model's gradient is 124 M values for
    /// GPT-2 small); elementwise, so the result does not depend on the thread count.
    static func scale(_ x: UnsafeMutablePointer<Float>, count: Int, by factor: Float) {
        let shared = UncheckedSendable(x)
        Parallel.forEachChunk(count, minimumPerChunk: 1 << 16) { range in
            let x = shared.value
            for i in range { x[i] *= factor }
        }
    }
}
