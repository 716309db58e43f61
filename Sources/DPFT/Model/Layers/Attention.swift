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

/// Per-worker room for one (example, head)'s T × S scores and their gradient: attention keeps
/// no [B, H, T, T] probabilities between its forward and backward passes but recomputes each
/// head's from q and k (one more T × S × D product per head, 1 of 7). On TinyLlama-1.1B's shape at
/// B = 4, T = 256 the kept probabilities were 738 MB of 3.4 GB of activations, and they grow
/// with T². Workers take whole (example, head) tasks, each with single-threaded BLAS: a task's
/// arithmetic, and so the result, does not depend on how many workers there are.
struct AttentionScratch {
    let workers: Int
    /// Floats per worker: two matrices of `maxSequence` × `maxSequence`.
    let perWorker: Int
    let base: UnsafeMutablePointer<Float>

    /// Room for `workers` workers and sequences (queries and keys) of up to `maxSequence`
    /// positions, in `buffer`'s storage.
    init(workers: Int, maxSequence: Int, buffer: (Int) -> UnsafeMutablePointer<Float>) {
        self.workers = max(1, workers)
        perWorker = 2 * maxSequence * maxSequence
        base = buffer(self.workers * perWorker)
    }

    /// Runs `body(task, scores, gradient)` for every task in 0..<tasks on `Parallel`'s chunks,
    /// BLAS on one thread; `scores` and `gradient` are the chunk's two matrices. Chunks hold at
    /// least ⌈tasks / workers⌉ tasks, so there are never more chunks than workers' scratch.
    func forEachTask(_ tasks: Int, _ body: (Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        let perWorker = self.perWorker
        // Each chunk writes only its own scratch and its tasks' disjoint output columns.
        let base = UncheckedSendable(self.base)
        BLAS.withOneThread {
            Parallel.forEachChunk(tasks, minimumPerChunk: (tasks + workers - 1) / workers) { chunk, range in
                let scores = base.value + chunk * perWorker
                for task in range { body(task, scores, scores + perWorker / 2) }
            }
        }
    }
}

/// Causal softmax attention; out is [B, T, H·D]. Nothing is saved for backward beyond qkv.
func attentionForward(out: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>, shape s: AttentionShape,
                      scratch: AttentionScratch) {
    attentionForward(out: out, queries: qkv, keyValues: ownKeyValues(qkv, shape: s), first: 0, shape: s,
                     scratch: scratch)
}

/// The keys and values of qkv's own T rows.
private func ownKeyValues(_ qkv: UnsafePointer<Float>, shape s: AttentionShape) -> KeyValueRows {
    KeyValueRows(keys: qkv + s.keyOffset, values: qkv + s.valueOffset, stride: s.qkvWidth,
                 exampleStride: s.sequence * s.qkvWidth, count: s.sequence)
}

/// Causal softmax attention of T query rows at positions first ..< first + T (the query
/// columns of `queries`, laid out like qkv [B, T, W]) over the S = keyValues.count positions of
/// `keyValues`: query t sees positions 0 ... first + t. out is [B, T, H·D]. One task per
/// (example, head): P = softmax(q kᵀ/√D + mask), out_h = P v.
func attentionForward(out: UnsafeMutablePointer<Float>, queries: UnsafePointer<Float>, keyValues kv: KeyValueRows,
                      first: Int, shape s: AttentionShape, scratch: AttentionScratch) {
    let T = s.sequence, S = kv.count, D = s.headDimension
    precondition(T * S <= scratch.perWorker / 2, "attention scratch is smaller than T × S")
    scratch.forEachTask(s.batch * s.heads) { task, p, _ in
        let b = task / s.heads, h = task % s.heads
        attentionProbabilities(p, queries: queries, keyValues: kv, first: first, example: b, head: h, shape: s)
        let v = kv.values + b * kv.exampleStride + s.keyValueHead(of: h) * D
        sgemm(transposeA: false, transposeB: false, m: T, n: D, k: S, a: p, lda: S, b: v, ldb: kv.stride,
              c: out + b * T * s.outWidth + h * D, ldc: s.outWidth)
    }
}

/// P = softmax(q_h k_gᵀ/√D + causal mask) [T, S] of example `b`, head `h` into `p` (entries past
/// a query's position 0): the forward's probabilities and, bit for bit, the backward's
/// recomputation of them.
private func attentionProbabilities(_ p: UnsafeMutablePointer<Float>, queries: UnsafePointer<Float>,
                                    keyValues kv: KeyValueRows, first: Int, example b: Int, head h: Int,
                                    shape s: AttentionShape) {
    let T = s.sequence, S = kv.count, D = s.headDimension
    let q = queries + b * T * s.qkvWidth + h * D
    let k = kv.keys + b * kv.exampleStride + s.keyValueHead(of: h) * D
    sgemm(transposeA: false, transposeB: true, m: T, n: S, k: D, alpha: 1 / Float(D).squareRoot(),
          a: q, lda: s.qkvWidth, b: k, ldb: kv.stride, c: p, ldc: S)
    for t in 0..<T {
        let last = first + t, row = p + t * S
        let maximum = VectorMath.maximum(row, count: last + 1)
        for j in 0...last { row[j] -= maximum }
        VectorMath.exp(row, into: row, count: last + 1)
        let inverse = 1 / VectorMath.sum(row, count: last + 1)
        for j in 0...last { row[j] *= inverse }
        for j in (last + 1)..<S { row[j] = 0 }
    }
}

/// forward was: P = softmax(q kᵀ/√D + mask); out = P v, so per (b, h), with P recomputed:
///   dv += Pᵀ dout;  dP = dout vᵀ;  dS = P ⊙ (dP − rowsum(P ⊙ dP)) / √D;
///   dq += dS k;  dk += dSᵀ q.
/// dqkv must be zeroed by the caller (it accumulates over heads sharing a key/value head). One
/// task per (example, key/value head), its query heads in order, so that tasks write disjoint
/// columns of dqkv. With `remaking`, each head's output P v is written there too, by the
/// forward's own product on the recomputed P: the forward's output, bit for bit, for a model
/// that does not keep it (`RemadeActivations`).
func attentionBackward(dqkv: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, qkv: UnsafePointer<Float>,
                       shape s: AttentionShape, scratch: AttentionScratch, remaking out: UnsafeMutablePointer<Float>? = nil) {
    let T = s.sequence, D = s.headDimension, W = s.qkvWidth
    precondition(T * T <= scratch.perWorker / 2, "attention scratch is smaller than T × T")
    let scale = 1 / Float(D).squareRoot(), kv = ownKeyValues(qkv, shape: s)
    let headsPerGroup = s.heads / s.keyValueHeads
    scratch.forEachTask(s.batch * s.keyValueHeads) { task, p, dp in
        let b = task / s.keyValueHeads, g = task % s.keyValueHeads
        let row = b * T * W, k = qkv + row + s.keyOffset + g * D, v = qkv + row + s.valueOffset + g * D
        for h in (g * headsPerGroup)..<((g + 1) * headsPerGroup) {
            attentionProbabilities(p, queries: qkv, keyValues: kv, first: 0, example: b, head: h, shape: s)
            if let out {  // as attentionForward: its keys and values are these rows, S = T
                sgemm(transposeA: false, transposeB: false, m: T, n: D, k: T, a: p, lda: T, b: v, ldb: W,
                      c: out + b * T * s.outWidth + h * D, ldc: s.outWidth)
            }
            let doutHead = dout + b * T * s.outWidth + h * D
            sgemm(transposeA: false, transposeB: true, m: T, n: T, k: D,
                  a: doutHead, lda: s.outWidth, b: v, ldb: W, c: dp, ldc: T)
            sgemm(transposeA: true, transposeB: false, m: T, n: D, k: T, a: p, lda: T, b: doutHead, ldb: s.outWidth,
                  beta: 1, c: dqkv + row + s.valueOffset + g * D, ldc: W)
            for t in 0..<T {
                let pt = p + t * T, dpt = dp + t * T
                var dot: Float = 0
                for j in 0...t { dot += pt[j] * dpt[j] }
                for j in 0...t { dpt[j] = pt[j] * (dpt[j] - dot) * scale }
                for j in (t + 1)..<T { dpt[j] = 0 }
            }
            sgemm(transposeA: false, transposeB: false, m: T, n: D, k: T, a: dp, lda: T, b: k, ldb: W,
                  beta: 1, c: dqkv + row + h * D, ldc: W)
            sgemm(transposeA: true, transposeB: false, m: T, n: D, k: T, a: dp, lda: T, b: qkv + row + h * D, ldb: W,
                  beta: 1, c: dqkv + row + s.keyOffset + g * D, ldc: W)
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
