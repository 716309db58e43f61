import Foundation

// N = rows, I = MLP inner width.

private let geluScale = Float((2.0 / Double.pi).squareRoot())

/// GELU, tanh approximation (GPT-2's "gelu_new"): out = ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
func geluForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
    Parallel.forEachChunk(count, minimumPerChunk: 4096) { range in
        for i in range {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + tanhf(geluScale * (x + 0.044715 * x * x * x)))
        }
    }
}

/// forward was: out = ½x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³), so:
///   dinp += dout · (½(1 + tanh u) + ½x · sech²u · √(2/π)(1 + 3·0.044715x²)).
func geluBackward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>,
                  inp: UnsafePointer<Float>, count: Int) {
    Parallel.forEachChunk(count, minimumPerChunk: 4096) { range in
        for i in range {
            let x = inp[i]
            let u = geluScale * (x + 0.044715 * x * x * x)
            let t = tanhf(u)
            let local = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * geluScale * (1 + 3 * 0.044715 * x * x)
            dinp[i] += dout[i] * local
        }
    }
}

/// SwiGLU: out = silu(gate) ⊙ up, silu(g) = g · σ(g).
func swigluForward(out: UnsafeMutablePointer<Float>, gate: UnsafePointer<Float>,
                   up: UnsafePointer<Float>, count: Int) {
    Parallel.forEachChunk(count, minimumPerChunk: 4096) { range in
        for i in range {
            let g = gate[i]
            out[i] = g / (1 + expf(-g)) * up[i]
        }
    }
}

/// forward was: out = g σ(g) ⊙ up, so:
///   dup = dout · g σ(g);  dgate = dout · up · σ(g)(1 + g(1 − σ(g))).
/// Overwrites (does not add to) dgate and dup: they are per-step scratch.
func swigluBackward(dgate: UnsafeMutablePointer<Float>, dup: UnsafeMutablePointer<Float>,
                    dout: UnsafePointer<Float>, gate: UnsafePointer<Float>, up: UnsafePointer<Float>,
                    count: Int) {
    Parallel.forEachChunk(count, minimumPerChunk: 4096) { range in
        for i in range {
            let g = gate[i]
            let sigmoid = 1 / (1 + expf(-g))
            dup[i] = dout[i] * g * sigmoid
            dgate[i] = dout[i] * up[i] * sigmoid * (1 + g * (1 - sigmoid))
        }
    }
}
