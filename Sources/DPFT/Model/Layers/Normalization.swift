import Foundation

// N = rows (batch · sequence), C = channels.

/// LayerNorm: out = (inp − mean) · rstd · weight + bias, per row. Saves mean and rstd [N].
func layerNormForward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                      rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                      weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                      rows: Int, channels C: Int, epsilon: Float) {
    Parallel.forEachChunk(rows, minimumPerChunk: 64) { range in
        for n in range {
            let x = inp + n * C, y = out + n * C
            var sum: Float = 0
            for c in 0..<C { sum += x[c] }
            let m = sum / Float(C)
            var variance: Float = 0
            for c in 0..<C { let d = x[c] - m; variance += d * d }
            let s = 1 / (variance / Float(C) + epsilon).squareRoot()
            for c in 0..<C { y[c] = (x[c] - m) * s * weight[c] + bias[c] }
            mean[n] = m
            rstd[n] = s
        }
    }
}

/// forward was: out = x̂ · weight + bias with x̂ = (inp − mean) · rstd, so:
///   dweight += Σ_n dout ⊙ x̂;  dbias += Σ_n dout;
///   dinp += rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂)) with g = dout ⊙ weight.
/// dweight/dbias may be nil (frozen norm, or gradients that go to a `GradientSink`).
func layerNormBackward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>?,
                       dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                       inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                       mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows: Int, channels C: Int) {
    Parallel.forEachChunk(rows, minimumPerChunk: 64) { range in
        for n in range {
            let x = inp + n * C, g = dout + n * C, dx = dinp + n * C
            let m = mean[n], s = rstd[n]
            var meanG: Float = 0, meanGX: Float = 0
            for c in 0..<C {
                let gw = g[c] * weight[c]
                meanG += gw
                meanGX += gw * (x[c] - m) * s
            }
            meanG /= Float(C)
            meanGX /= Float(C)
            for c in 0..<C {
                let xhat = (x[c] - m) * s
                dx[c] += s * (g[c] * weight[c] - meanG - xhat * meanGX)
            }
        }
    }
    if let dweight {
        addNormWeightGradient(into: dweight, dout: dout, inp: inp, mean: mean, rstd: rstd, rows: 0..<rows, channels: C)
    }
    if let dbias { addRows(into: dbias, e: dout, eStride: C, width: C, rows: 0..<rows) }
}

/// RMSNorm: out = inp · rstd · weight with rstd = 1/√(mean(inp²) + ε). Saves rstd [N].
func rmsNormForward(out: UnsafeMutablePointer<Float>, rstd: UnsafeMutablePointer<Float>,
                    inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                    rows: Int, channels C: Int, epsilon: Float) {
    Parallel.forEachChunk(rows, minimumPerChunk: 64) { range in
        for n in range {
            let x = inp + n * C, y = out + n * C
            var squares: Float = 0
            for c in 0..<C { squares += x[c] * x[c] }
            let s = 1 / (squares / Float(C) + epsilon).squareRoot()
            for c in 0..<C { y[c] = x[c] * s * weight[c] }
            rstd[n] = s
        }
    }
}

/// forward was: out = x̂ · weight with x̂ = inp · rstd, so:
///   dweight += Σ_n dout ⊙ x̂;  dinp += rstd · (g − x̂ · mean(g ⊙ x̂)) with g = dout ⊙ weight.
func rmsNormBackward(dinp: UnsafeMutablePointer<Float>, dweight: UnsafeMutablePointer<Float>?,
                     dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                     rstd: UnsafePointer<Float>, rows: Int, channels C: Int) {
    Parallel.forEachChunk(rows, minimumPerChunk: 64) { range in
        for n in range {
            let x = inp + n * C, g = dout + n * C, dx = dinp + n * C
            let s = rstd[n]
            var meanGX: Float = 0
            for c in 0..<C { meanGX += g[c] * weight[c] * x[c] * s }
            meanGX /= Float(C)
            for c in 0..<C { dx[c] += s * (g[c] * weight[c] - x[c] * s * meanGX) }
        }
    }
    if let dweight {
        addNormWeightGradient(into: dweight, dout: dout, inp: inp, mean: nil, rstd: rstd, rows: 0..<rows, channels: C)
    }
}

/// The norm weight's gradient over `rows`: dweight += Σ_n dout_n ⊙ x̂_n with
/// x̂ = (inp − mean)·rstd (LayerNorm) or inp·rstd (RMSNorm, `mean` nil). Summed serially (tiny).
func addNormWeightGradient(into dweight: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                           inp: UnsafePointer<Float>, mean: UnsafePointer<Float>?, rstd: UnsafePointer<Float>,
                           rows: Range<Int>, channels C: Int) {
    for n in rows {
        let x = inp + n * C, g = dout + n * C
        let m = mean?[n] ?? 0, s = rstd[n]
        for c in 0..<C { dweight[c] += g[c] * (x[c] - m) * s }
    }
}
