// N = rows (batch · sequence), IN = input features, OUT = output features.
// Weights are [OUT, IN] (PyTorch's nn.Linear layout). Row strides let a layer write into, or
// read from, a column slice of a wider buffer (e.g. q, k, v sharing one [N, Q+2K] buffer).

/// out[N, OUT] = inp[N, IN] · weightᵀ + bias   (out rows are `outStride` apart)
func linearForward(out: UnsafeMutablePointer<Float>, outStride: Int,
                   inp: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                   rows: Int, inFeatures: Int, outFeatures: Int) {
    if let bias {
        for n in 0..<rows { (out + n * outStride).update(from: bias, count: outFeatures) }
    }
    sgemm(transposeA: false, transposeB: true, m: rows, n: outFeatures, k: inFeatures,
          a: inp, lda: inFeatures, b: weight, ldb: inFeatures,
          beta: bias == nil ? 0 : 1, c: out, ldc: outStride)
}

/// forward was: out = inp · weightᵀ + bias, so:
///   dinp += dout · weight;  dweight += doutᵀ · inp;  dbias += Σ_rows dout.
/// Pass nil for a gradient that is not needed (frozen weight, no bias, first layer).
func linearBackward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                    dbias: UnsafeMutablePointer<Float>?,
                    dout: UnsafePointer<Float>, doutStride: Int,
                    inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                    rows: Int, inFeatures: Int, outFeatures: Int) {
    if let dinp {
        sgemm(transposeA: false, transposeB: false, m: rows, n: inFeatures, k: outFeatures,
              a: dout, lda: doutStride, b: weight, ldb: inFeatures, beta: 1, c: dinp, ldc: inFeatures)
    }
    if let dweight {
        sgemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: rows,
              a: dout, lda: doutStride, b: inp, ldb: inFeatures, beta: 1, c: dweight, ldc: inFeatures)
    }
    if let dbias {
        for n in 0..<rows {
            let row = dout + n * doutStride
            for o in 0..<outFeatures { dbias[o] += row[o] }
        }
    }
}

// LoRA: out += scale · (inp · Aᵀ) · Bᵀ with A [R, IN], B [OUT, R], scale = alpha / R.

/// hidden[N, R] = inp · Aᵀ (saved for backward); out[N, OUT] += scale · hidden · Bᵀ
func loraForward(out: UnsafeMutablePointer<Float>, outStride: Int, hidden: UnsafeMutablePointer<Float>,
                 inp: UnsafePointer<Float>, loraA: UnsafePointer<Float>, loraB: UnsafePointer<Float>,
                 scale: Float, rows: Int, inFeatures: Int, outFeatures: Int, rank: Int) {
    sgemm(transposeA: false, transposeB: true, m: rows, n: rank, k: inFeatures,
          a: inp, lda: inFeatures, b: loraA, ldb: inFeatures, c: hidden, ldc: rank)
    sgemm(transposeA: false, transposeB: true, m: rows, n: outFeatures, k: rank, alpha: scale,
          a: hidden, lda: rank, b: loraB, ldb: rank, beta: 1, c: out, ldc: outStride)
}

/// forward was: hidden = inp · Aᵀ; out += scale · hidden · Bᵀ, so:
///   dB += scale · doutᵀ · hidden;  dhidden = scale · dout · B;
///   dA += dhiddenᵀ · inp;  dinp += dhidden · A.
/// `dhidden` is scratch of N·R floats.
func loraBackward(dinp: UnsafeMutablePointer<Float>?, dloraA: UnsafeMutablePointer<Float>?,
                  dloraB: UnsafeMutablePointer<Float>?, dhidden: UnsafeMutablePointer<Float>,
                  dout: UnsafePointer<Float>, doutStride: Int, hidden: UnsafePointer<Float>,
                  inp: UnsafePointer<Float>, loraA: UnsafePointer<Float>, loraB: UnsafePointer<Float>,
                  scale: Float, rows: Int, inFeatures: Int, outFeatures: Int, rank: Int) {
    if let dloraB {
        sgemm(transposeA: true, transposeB: false, m: outFeatures, n: rank, k: rows, alpha: scale,
              a: dout, lda: doutStride, b: hidden, ldb: rank, beta: 1, c: dloraB, ldc: rank)
    }
    sgemm(transposeA: false, transposeB: false, m: rows, n: rank, k: outFeatures, alpha: scale,
          a: dout, lda: doutStride, b: loraB, ldb: rank, c: dhidden, ldc: rank)
    if let dloraA {
        sgemm(transposeA: true, transposeB: false, m: rank, n: inFeatures, k: rows,
              a: dhidden, lda: rank, b: inp, ldb: inFeatures, beta: 1, c: dloraA, ldc: inFeatures)
    }
    if let dinp {
        sgemm(transposeA: false, transposeB: false, m: rows, n: inFeatures, k: rank,
              a: dhidden, lda: rank, b: loraA, ldb: inFeatures, beta: 1, c: dinp, ldc: inFeatures)
    }
}
