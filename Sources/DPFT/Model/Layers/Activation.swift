import Foundation

// N = rows, I = MLP inner width.

private let geluScale = Float((2.0 / Double.pi).squareRoot())

/// GELU, tanh approximation (GPT-2's "gelu_new"): out = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
/// tanh runs eight lanes at a time (`VectorMath`): with glibc's scalar tanhf, GELU was about a
/// fifth of a non-private step on the reference GPT.
func geluForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    Parallel.forEachChunk(count, minimumPerChunk: 4096) { range in
        for i in range { out[i] = geluArgument(inp[i]) }
        VectorMath.tanh(out + range.lowerBound, into: out + range.lowerBound, count: range.count)
        for i in range { out[i] = 0.5 * inp[i] * (1 + out[i]) }
    }
}

/// u = √(2/π)(x + 0.044715x³).
@inline(__always)
private func geluArgument(_ x: Float) -> Float { geluScale * (x + 0.044715 * x * x * x) }

/// forward was: out = ½x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³), so:
///   dinp += dout · (½(1 + tanh u) + ½x · sech²u · √(2/π)(1 + 3·0.044715x²)).
func geluBackward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                  inp: UnsafePointer<Float>, count: Int) {
    Parallel.forEachChunk(count, minimumPerChunk: 4096) { range in
        let tile = 1024
        withUnsafeTemporaryAllocation(of: Float.self, capacity: tile) { t in
            for start in stride(from: range.lowerBound, to: range.upperBound, by: tile) {
                let n = min(tile, range.upperBound - start)
                for j in 0..<n { t[j] = geluArgument(inp[start + j]) }
                VectorMath.tanh(t.baseAddress!, into: t.baseAddress!, count: n)
                for j in 0..<n {
                    let x = inp[start + j], tanhU = t[j]
                    let local = 0.5 * (1 + tanhU) + 0.5 * x * (1 - tanhU * tanhU) * geluScale * (1 + 3 * 0.044715 * x * x)
                    dinp[start + j] += dout[start + j] * local
                }
            }
        }
    }
}

/// SwiGLU: out = silu(gate) ⊙ up, silu(g) = g · σ(g).
func swigluForward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>,
                   up: UnsafePointer<Float>, count: Int) {
    Parallel.forEachChunk(count, minimumPerChunk: 4096) { range in
        for i in range { out[i] = -gate[i] }
        VectorMath.exp(out + range.lowerBound, into: out + range.lowerBound, count: range.count)
        for i in range { out[i] = gate[i] / (1 + out[i]) * up[i] }
    }
}

/// forward was: out = g σ(g) ⊙ up, so:
///   dup = dout · g σ(g);  dgate = dout · up · σ(g)(1 + g(1 − σ(g))).
/// Overwrites (does not add to) dgate and dup: they are per-step scratch.
func swigluBackward(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>,
                    dout: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                    count: Int) {
    Parallel.forEachChunk(count, minimumPerChunk: 4096) { range in
        // dgate holds exp(−g) until it is overwritten with the gradient
        for i in range { dgate[i] = -gate[i] }
        VectorMath.exp(dgate + range.lowerBound, into: dgate + range.lowerBound, count: range.count)
        for i in range {
            let g = gate[i]
            let sigmoid = 1 / (1 + dgate[i])
            dup[i] = dout[i] * g * sigmoid
            dgate[i] = dout[i] * up[i] * sigmoid * (1 + g * (1 - sigmoid))
        }
    }
}
