import Foundation

// B = batch, T = sequence, H = query heads, KV = key/value heads (H % KV == 0), D = head dim.
// qkv is [B, T, W] with W = (H + 2·KV)·D: queries at column 0, keys at H·D, values at
// (H + KV)·D; query head h reads key/value head h / (H / KV) (grouped-query attention).

/// Shapes of one attention call.
struct AttentionShape {
    var batch: Int, sequence: Int, heads: Int, keyValueHeads: Int, headDimension: Int
    var qkvWidth: Int { (heads + 2 * keyValueHeads) * headDimension }
    var keyOffset: Int { heads * headDimension }
    var valueOffset: Int { (heads + keyValueHeads) * headDimension }
    var outWidth: Int { heads * headDimension }
    func keyValueHead(of h: Int) -> Int { h / (heads / keyValueHeads) }
}

/// Keys and values that queries attend to: `count` positions per example, rows `stride` apart,
/// examples `exampleStride` apart; key/value head g sits at column g·D.
struct KeyValueRows {
    var keys: UnsafePointer<Float>
    var values: UnsafePointer<Float>
    var stride: Int
    var exampleStride: Int
    var count: Int
}

/// Causal softmax attention. probs [B, H, T, T] is saved for backward (upper triangle 0);
/// out is [B, T, H·D].
func attentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                      qkv: UnsafePointer<Float>, shape s: AttentionShape) {
    let T = s.sequence, W = s.qkvWidth
    let ownRows = KeyValueRows(keys: qkv + s.keyOffset, values: qkv + s.valueOffset, stride: W,
                               exampleStride: T * W, count: T)
    attentionForward(out: out, probs: probs, queries: qkv, keyValues: ownRows, first: 0, shape: s)
}

/// Causal softmax attention of T query rows at positions first ..< first + T (the query
/// columns of `queries`, laid out like qkv [B, T, W]) over the S = keyValues.count positions of
/// `keyValues`: query t sees positions 0 ... first + t. probs is [B, H, T, S] (entries past a
/// query's position 0); out is [B, T, H·D].
func attentionForward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                      queries: UnsafePointer<Float>, keyValues kv: KeyValueRows, first: Int,
                      shape s: AttentionShape) {
    let T = s.sequence, S = kv.count, D = s.headDimension, W = s.qkvWidth
    let scale = 1 / Float(D).squareRoot()
    // scores = q_h · k_gᵀ / √D, one GEMM per (b, h); BLAS threads each one.
    for b in 0..<s.batch {
        for h in 0..<s.heads {
            let q = queries + b * T * W + h * D
            let k = kv.keys + b * kv.exampleStride + s.keyValueHead(of: h) * D
            sgemm(transposeA: false, transposeB: true, m: T, n: S, k: D, alpha: scale,
                  a: q, lda: W, b: k, ldb: kv.stride, c: probs + (b * s.heads + h) * T * S, ldc: S)
        }
    }
    // causal mask + softmax over each row's first first + t + 1 entries
    Parallel.forEachChunk(s.batch * s.heads * T, minimumPerChunk: 256) { range in
        for row in range {
            let last = first + row % T
            let p = probs + row * S
            let maximum = VectorMath.maximum(p, count: last + 1)
            for j in 0...last { p[j] -= maximum }
            VectorMath.exp(p, into: p, count: last + 1)
            let sum = VectorMath.sum(p, count: last + 1)
            let inverse = 1 / sum
            for j in 0...last { p[j] *= inverse }
            for j in (last + 1)..<S { p[j] = 0 }
        }
    }
    // out_h = probs_h · v_g
    for b in 0..<s.batch {
        for h in 0..<s.heads {
            let v = kv.values + b * kv.exampleStride + s.keyValueHead(of: h) * D
            sgemm(transposeA: false, transposeB: false, m: T, n: D, k: S,
                  a: probs + (b * s.heads + h) * T * S, lda: S, b: v, ldb: kv.stride,
                  c: out + b * T * s.outWidth + h * D, ldc: s.outWidth)
        }
    }
}

/// forward was: P = softmax(q kᵀ/√D + mask); out = P v, so per (b, h):
///   dv += Pᵀ dout;  dP = dout vᵀ;  dS = P ⊙ (dP − rowsum(P ⊙ dP)) / √D;
///   dq += dS k;  dk += dSᵀ q.
/// dqkv must be zeroed by the caller (it accumulates over heads sharing a key/value head);
/// dprobs is scratch of B·H·T·T floats.
func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dprobs: UnsafeMutablePointer<Float>,
                       dout: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                       qkv: UnsafePointer<Float>, shape s: AttentionShape) {
    let T = s.sequence, D = s.headDimension, W = s.qkvWidth
    let scale = 1 / Float(D).squareRoot()
    for b in 0..<s.batch {
        for h in 0..<s.heads {
            let g = s.keyValueHead(of: h)
            let p = probs + (b * s.heads + h) * T * T
            let dp = dprobs + (b * s.heads + h) * T * T
            let doutHead = dout + b * T * s.outWidth + h * D
            let v = qkv + b * T * W + s.valueOffset + g * D
            sgemm(transposeA: false, transposeB: true, m: T, n: T, k: D,
                  a: doutHead, lda: s.outWidth, b: v, ldb: W, c: dp, ldc: T)
            sgemm(transposeA: true, transposeB: false, m: T, n: D, k: T,
                  a: p, lda: T, b: doutHead, ldb: s.outWidth,
                  beta: 1, c: dqkv + b * T * W + s.valueOffset + g * D, ldc: W)
        }
    }
    Parallel.forEachChunk(s.batch * s.heads * T, minimumPerChunk: 256) { range in
        for row in range {
            let t = row % T
            let p = probs + row * T, dp = dprobs + row * T
            var dot: Float = 0
            for j in 0...t { dot += p[j] * dp[j] }
            for j in 0...t { dp[j] = p[j] * (dp[j] - dot) * scale }
            for j in (t + 1)..<T { dp[j] = 0 }
        }
    }
    for b in 0..<s.batch {
        for h in 0..<s.heads {
            let g = s.keyValueHead(of: h)
            let dS = dprobs + (b * s.heads + h) * T * T
            let q = qkv + b * T * W + h * D
            let k = qkv + b * T * W + s.keyOffset + g * D
            sgemm(transposeA: false, transposeB: false, m: T, n: D, k: T,
                  a: dS, lda: T, b: k, ldb: W, beta: 1, c: dqkv + b * T * W + h * D, ldc: W)
            sgemm(transposeA: true, transposeB: false, m: T, n: D, k: T,
                  a: dS, lda: T, b: q, ldb: W, beta: 1, c: dqkv + b * T * W + s.keyOffset + g * D, ldc: W)
        }
    }
}

/// Rotary position tables in HF's `rotate_half` convention: for pair i < D/2 at position t,
/// angle = t · θ^(−2i/D); x'_i = x_i cos − x_{i+D/2} sin, x'_{i+D/2} = x_{i+D/2} cos + x_i sin.
struct RotaryTable {
    let cos: [Float]  // [P, D/2]
    let sin: [Float]  // [P, D/2]
    let half: Int

    init(maxPositions: Int, headDimension D: Int, theta: Double) {
        half = D / 2
        var cosines = [Float](repeating: 0, count: maxPositions * half)
        var sines = [Float](repeating: 0, count: maxPositions * half)
        for i in 0..<half {
            // float32 inverse frequencies, as transformers computes them
            let inverseFrequency = Float(1.0 / pow(theta, Double(2 * i) / Double(D)))
            for t in 0..<maxPositions {
                let angle = Float(t) * inverseFrequency
                cosines[t * half + i] = Foundation.cos(angle)
                sines[t * half + i] = Foundation.sin(angle)
            }
        }
        cos = cosines
        sin = sines
    }

    /// Rotates the query and key heads of qkv in place (inverse = true undoes it, which is
    /// also the backward of the rotation since it is orthogonal). Row t of each example sits at
    /// position firstPosition + t (decoding after cached positions).
    func apply(_ qkv: UnsafeMutablePointer<Float>, shape s: AttentionShape, inverse: Bool, firstPosition: Int = 0) {
        let T = s.sequence, W = s.qkvWidth
        Parallel.forEachChunk(s.batch * T, minimumPerChunk: 64) { range in
            for row in range {
                rotate(qkv + row * W, position: firstPosition + row % T, heads: s.heads + s.keyValueHeads,
                       inverse: inverse)
            }
        }
    }

    /// Rotates `heads` consecutive heads of one row (queries then keys are adjacent in qkv).
    func rotate(_ row: UnsafeMutablePointer<Float>, position t: Int, heads: Int, inverse: Bool) {
        let sign: Float = inverse ? -1 : 1
        cos.withUnsafeBufferPointer { cosines in
            sin.withUnsafeBufferPointer { sines in
                let c = cosines.baseAddress! + t * half, sn = sines.baseAddress! + t * half
                for head in 0..<heads {
                    let x = row + head * 2 * half
                    for i in 0..<half {
                        let a = x[i], b = x[i + half], si = sign * sn[i]
                        x[i] = a * c[i] - b * si
                        x[i + half] = b * c[i] + a * si
                    }
                }
            }
        }
    }
}
