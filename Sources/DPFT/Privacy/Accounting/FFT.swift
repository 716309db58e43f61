import Foundation

/// A radix-2 (stages fused in pairs: radix 4) complex FFT in Double on split real/imaginary arrays (iterative Cooley–Tukey,
/// decimation in time). Used by the PRV accountant to compose privacy-loss distributions:
/// the distribution of a sum of independent losses is the convolution of their distributions,
/// i.e. the product of their transforms.
///
/// N = `count` (a power of two). Twiddles e^{−2πik/N} are computed directly with sin/cos (not by
/// recurrence) so that their error is one rounding each.
struct FFT {
    let count: Int
    private let cosines: [Double]   // (N/2) cos(2πk/N)
    private let sines: [Double]     // (N/2) sin(2πk/N)

    init(count: Int) {
        precondition(count >= 2 && count & (count - 1) == 0, "FFT size \(count) is not a power of two ≥ 2")
        self.count = count
        let half = count / 2
        var cosines = [Double](repeating: 0, count: half), sines = [Double](repeating: 0, count: half)
        for k in 0..<half {
            let angle = 2 * Double.pi * Double(k) / Double(count)
            cosines[k] = cos(angle); sines[k] = sin(angle)
        }
        self.cosines = cosines; self.sines = sines
    }

    /// X_k = Σ_n x_n e^{−2πikn/N}, in place.
    func forward(real: inout [Double], imaginary: inout [Double]) {
        transform(real: &real, imaginary: &imaginary, sign: -1)
    }

    /// x_n = (1/N) Σ_k X_k e^{+2πikn/N}, in place.
    func inverse(real: inout [Double], imaginary: inout [Double]) {
        transform(real: &real, imaginary: &imaginary, sign: 1)
        let scale = 1 / Double(count)
        for i in 0..<count { real[i] *= scale; imaginary[i] *= scale }
    }

    private func transform(real: inout [Double], imaginary: inout [Double], sign: Double) {
        precondition(real.count == count && imaginary.count == count)
        let n = count
        real.withUnsafeMutableBufferPointer { re in
            imaginary.withUnsafeMutableBufferPointer { im in
                cosines.withUnsafeBufferPointer { cosTable in
                    sines.withUnsafeBufferPointer { sinTable in
                        // Bit-reversal permutation.
                        var j = 0
                        for i in 1..<n {
                            var bit = n >> 1
                            while j & bit != 0 { j ^= bit; bit >>= 1 }
                            j |= bit
                            if i < j { re.swapAt(i, j); im.swapAt(i, j) }
                        }
                        // Stages are fused in pairs (radix 4) to halve the passes over memory;
                        // with an odd number of stages, the length-2 stage (twiddle 1) runs alone.
                        var length = 1   // size of the blocks already transformed
                        if n.trailingZeroBitCount % 2 == 1 {
                            var start = 0
                            while start < n {
                                let (ar, ai, br, bi) = (re[start], im[start], re[start + 1], im[start + 1])
                                re[start] = ar + br; im[start] = ai + bi
                                re[start + 1] = ar - br; im[start + 1] = ai - bi
                                start += 2
                            }
                            length = 2
                        }
                        // Four transformed blocks a₀…a₃ of size L → one of size 4L:
                        //   x± = a₀ ± w₂ₗᵏ a₁,  y± = a₂ ± w₂ₗᵏ a₃           (the stage of length 2L)
                        //   out[k], out[k+2L] = x₊ ± w₄ₗᵏ y₊
                        //   out[k+L], out[k+3L] = x₋ ± w₄ₗᵏ⁺ᴸ y₋,  w₄ₗᴸ = sign·i  (the stage of length 4L)
                        while length < n {
                            let quarter = length, stride2 = n / (2 * quarter), stride4 = n / (4 * quarter)
                            var blockStart = 0
                            while blockStart < n {
                                for k in 0..<quarter {
                                    let w2r = cosTable[k * stride2], w2i = sign * sinTable[k * stride2]
                                    let w4r = cosTable[k * stride4], w4i = sign * sinTable[k * stride4]
                                    let i0 = blockStart + k, i1 = i0 + quarter, i2 = i1 + quarter, i3 = i2 + quarter
                                    // a₁·w₂, a₃·w₂
                                    let t1r = re[i1] * w2r - im[i1] * w2i, t1i = re[i1] * w2i + im[i1] * w2r
                                    let t3r = re[i3] * w2r - im[i3] * w2i, t3i = re[i3] * w2i + im[i3] * w2r
                                    let xpr = re[i0] + t1r, xpi = im[i0] + t1i
                                    let xmr = re[i0] - t1r, xmi = im[i0] - t1i
                                    let ypr = re[i2] + t3r, ypi = im[i2] + t3i
                                    let ymr = re[i2] - t3r, ymi = im[i2] - t3i
                                    // w₄·y₊ and (w₄·sign·i)·y₋
                                    let u0r = ypr * w4r - ypi * w4i, u0i = ypr * w4i + ypi * w4r
                                    let vr = ymr * w4r - ymi * w4i, vi = ymr * w4i + ymi * w4r
                                    let u1r = -sign * vi, u1i = sign * vr
                                    re[i0] = xpr + u0r; im[i0] = xpi + u0i
                                    re[i2] = xpr - u0r; im[i2] = xpi - u0i
                                    re[i1] = xmr + u1r; im[i1] = xmi + u1i
                                    re[i3] = xmr - u1r; im[i3] = xmi - u1i
                                }
                                blockStart += 4 * quarter
                            }
                            length *= 4
                        }
                    }
                }
            }
        }
    }
}

/// The discrete Fourier transform by its definition, O(N²): the test oracle for `FFT`.
func discreteFourierTransformNaive(real: [Double], imaginary: [Double], sign: Double = -1)
    -> (real: [Double], imaginary: [Double]) {
    let n = real.count
    var outReal = [Double](repeating: 0, count: n), outImaginary = [Double](repeating: 0, count: n)
    for k in 0..<n {
        var sumReal = 0.0, sumImaginary = 0.0
        for t in 0..<n {
            let angle = sign * 2 * Double.pi * Double((k * t) % n) / Double(n)
            sumReal += real[t] * cos(angle) - imaginary[t] * sin(angle)
            sumImaginary += real[t] * sin(angle) + imaginary[t] * cos(angle)
        }
        outReal[k] = sumReal; outImaginary[k] = sumImaginary
    }
    return (outReal, outImaginary)
}
