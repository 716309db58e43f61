import Foundation

// B = batch, T = sequence, N = B·T rows, C = channels, V = vocabulary.

/// out[n] = tokenEmbedding[ids[n]] (+ positionEmbedding[n mod T] when given).
func embeddingForward(out: UnsafeMutablePointer<Float>, ids: UnsafePointer<Int32>,
                      tokenEmbedding: UnsafePointer<Float>, positionEmbedding: UnsafePointer<Float>?,
                      rows: Int, sequence T: Int, channels C: Int) {
    for n in 0..<rows {
        let y = out + n * C
        y.update(from: tokenEmbedding + Int(ids[n]) * C, count: C)
        if let positionEmbedding {
            let p = positionEmbedding + (n % T) * C
            for c in 0..<C { y[c] += p[c] }
        }
    }
}

/// forward was: out[n] = wte[ids[n]] + wpe[t], so: dwte[ids[n]] += dout[n]; dwpe[t] += dout[n].
func embeddingBackward(dtokenEmbedding: UnsafeMutablePointer<Float>?,
                       dpositionEmbedding: UnsafeMutablePointer<Float>?,
                       dout: UnsafePointer<Float>, ids: UnsafePointer<Int32>,
                       rows: Int, sequence T: Int, channels C: Int) {
    for n in 0..<rows {
        let g = dout + n * C
        if let dtokenEmbedding {
            let row = dtokenEmbedding + Int(ids[n]) * C
            for c in 0..<C { row[c] += g[c] }
        }
        if let dpositionEmbedding {
            let row = dpositionEmbedding + (n % T) * C
            for c in 0..<C { row[c] += g[c] }
        }
    }
}

/// Cross-entropy of each row's logits against `targets` (−100 = not scored).
/// Writes each scored row's loss to rowLosses (0 for unscored rows).
func crossEntropyForward(rowLosses: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>,
                         targets: UnsafePointer<Int32>, rows: Int, vocabulary V: Int) {
    Parallel.forEachChunk(rows, minimumPerChunk: 16) { range in
        for n in range {
            let target = Int(targets[n])
            guard target >= 0 else { rowLosses[n] = 0; continue }
            let z = logits + n * V
            let maximum = VectorMath.maximum(z, count: V)
            let sum = shiftedExponentialSum(z, count: V, shift: maximum)
            rowLosses[n] = logf(sum) + maximum - z[target]
        }
    }
}

/// Σ_v exp(z[v] − shift), the exponentials formed and summed in tiles (`VectorMath`).
private func shiftedExponentialSum(_ z: UnsafePointer<Float>, count: Int, shift: Float) -> Float {
    let tile = 1024
    return withUnsafeTemporaryAllocation(of: Float.self, capacity: tile) { t in
        var sum: Float = 0
        for start in stride(from: 0, to: count, by: tile) {
            let n = min(tile, count - start)
            for j in 0..<n { t[j] = z[start + j] - shift }
            VectorMath.exp(t.baseAddress!, into: t.baseAddress!, count: n)
            sum += VectorMath.sum(t.baseAddress!, count: n)
        }
        return sum
    }
}

/// forward was: loss_n = logsumexp(z_n) − z_n[target], scaled by rowWeights[n], so:
///   dz_n = rowWeights[n] · (softmax(z_n) − onehot(target)).
/// Overwrites logits with their gradient in place (unscored rows become 0).
func crossEntropyBackward(logitsToGradient z: UnsafeMutablePointer<Float>,
                          targets: UnsafePointer<Int32>, rowWeights: UnsafePointer<Float>,
                          rows: Int, vocabulary V: Int) {
    Parallel.forEachChunk(rows, minimumPerChunk: 16) { range in
        for n in range {
            let target = Int(targets[n])
            let row = z + n * V
            guard target >= 0, rowWeights[n] != 0 else {
                row.update(repeating: 0, count: V)
                continue
            }
            let maximum = VectorMath.maximum(row, count: V)
            for v in 0..<V { row[v] -= maximum }
            VectorMath.exp(row, into: row, count: V)
            let sum = VectorMath.sum(row, count: V)
            let weight = rowWeights[n], scale = weight / sum
            for v in 0..<V { row[v] *= scale }
            row[target] -= weight
        }
    }
}
