import Foundation
import Testing
@testable import DPFT

// Finite-difference checks of every hand-written layer backward in Sources/DPFT/Model/Layers.
//
// N = rows, IN = input features, OUT = output features, R = LoRA rank, C = channels,
// B = batch, T = sequence, H = query heads, KV = key/value heads, D = head dimension,
// W = qkv width (H + 2·KV)·D, V = vocabulary.
//
// Method: each layer gets a scalar objective f = Σ r ⊙ forward(inputs) with a fixed random r
// (cross-entropy: f = Σ_n w_n · loss_n), so its backward with dout = r gives ∂f/∂input. That is
// compared with the central difference (f(x + h) − f(x − h)) / ((x + h) − (x − h)) for EVERY
// coordinate of every input: the forward runs in float32, f is summed in double, and the
// divisor is the step float32 actually took. A gradient passes when
//     max |analytic − numeric| ≤ tolerance · max |numeric|,
// each tensor on its own scale (no floor: a small tensor is held to the same relative bound as
// a large one). Inputs are O(1) and h = 1e-2. Tolerances, each about ten times the largest
// relative error observed with these seeds (observed in brackets):
//   1e-4 for outputs linear in the perturbed input (linear, LoRA, norm weight/bias, SwiGLU up,
//        rotary, embedding): no truncation error, only float32 rounding of f over 2h [≤ 1.8e-5];
//   3e-4 for smooth nonlinear layers (norm inputs, GELU, SwiGLU gate, attention): rounding plus
//        h²·f‴/6 truncation [≤ 3.1e-5];
//   1e-3 for cross-entropy, whose +40-shifted row loses ulp(40) ≈ 4e-6 per loss evaluation,
//        times weight 2, over 2h [1.3e-4];
//   1e-6 for rotary forward-then-inverse, two float32 rotations [7.7e-8].
//
// Gradient buffers a backward adds into are pre-filled with random "earlier" values that are
// subtracted afterwards, so the add-into contract is checked too. Buffers documented as
// overwritten (SwiGLU) or as scratch (LoRA's dhidden, attention's dprobs) are pre-filled with
// garbage the backward must not read.

@Suite struct LayerGradientTests {

    /// Central-difference step for inputs of order 1.
    static let step: Float = 1e-2
    /// Tolerance for layers linear in the perturbed input (only float32 rounding remains).
    static let linearTolerance = 1e-4
    /// Tolerance for smooth nonlinear layers (rounding plus O(h²) truncation).
    static let smoothTolerance = 3e-4
    /// Tolerance for cross-entropy, whose shifted row rounds at ulp(40).
    static let crossEntropyTolerance = 1e-3

    // MARK: - Linear and LoRA

    /// out is a column slice of a wider buffer (like k inside a shared q|k|v buffer) and dout is a
    /// slice of another one with a different stride, so both row strides are exercised.
    @Test(arguments: [true, false])
    func linearGradients(withBias: Bool) throws {
        try BLAS.load()
        var generator = SeededGenerator(seed: 11)
        let N = 4, IN = 5, OUT = 3
        let outStride = 11, outColumn = 4, doutStride = 9, doutColumn = 2
        let inp = randomTensor([N, IN], &generator)                    // (N, IN)
        let weight = randomTensor([OUT, IN], &generator)               // (OUT, IN)
        let bias = randomTensor([OUT], &generator)                     // (OUT)
        let r = randomTensor([N, OUT], &generator)                     // (N, OUT) = ∂f/∂out
        let sentinel: Float = 7
        let out = Tensor(zeros: [N, outStride])                        // (N, outStride)
        out.fill(sentinel)

        func objective() -> Double {
            linearForward(out: out.pointer + outColumn, outStride: outStride, inp: inp.pointer,
                          weight: weight.pointer, bias: withBias ? UnsafePointer(bias.pointer) : nil,
                          rows: N, inFeatures: IN, outFeatures: OUT)
            return weightedSum(out.pointer + outColumn, stride: outStride, r.pointer, stride: OUT,
                               rows: N, columns: OUT)
        }

        _ = objective()
        var outsideSlice = true
        for n in 0..<N {
            for column in 0..<outStride where !(outColumn..<outColumn + OUT).contains(column) {
                outsideSlice = outsideSlice && out.pointer[n * outStride + column] == sentinel
            }
        }
        #expect(outsideSlice, "linearForward wrote outside its column slice of out")

        let dout = stridedCopy(r, stride: doutStride, column: doutColumn)  // (N, doutStride)
        let dinp = Accumulator([N, IN], &generator)
        let dweight = Accumulator([OUT, IN], &generator)
        let dbias = Accumulator([OUT], &generator)
        linearBackward(dinp: dinp.buffer.pointer, dweight: dweight.buffer.pointer,
                       dbias: withBias ? dbias.buffer.pointer : nil,
                       dout: dout.pointer + doutColumn, doutStride: doutStride,
                       inp: inp.pointer, weight: weight.pointer,
                       rows: N, inFeatures: IN, outFeatures: OUT)

        let label = withBias ? "linear" : "linear (no bias)"
        expectGradient("\(label) dinp", dinp.added,
                       centralDifferences(inp, objective), tolerance: Self.linearTolerance)
        expectGradient("\(label) dweight", dweight.added,
                       centralDifferences(weight, objective), tolerance: Self.linearTolerance)
        if withBias {
            expectGradient("\(label) dbias", dbias.added,
                           centralDifferences(bias, objective), tolerance: Self.linearTolerance)
        } else {
            #expect(dbias.added.allSatisfy { $0 == 0 }, "linear (no bias): dbias was written to")
        }
    }

    @Test func loraGradients() throws {
        try BLAS.load()
        var generator = SeededGenerator(seed: 12)
        let N = 4, IN = 5, OUT = 6, R = 3
        let scale: Float = 1.5
        let outStride = 10, outColumn = 3, doutStride = 8, doutColumn = 1
        let inp = randomTensor([N, IN], &generator)                    // (N, IN)
        let loraA = randomTensor([R, IN], &generator)                  // (R, IN)
        let loraB = randomTensor([OUT, R], &generator)                 // (OUT, R)
        let r = randomTensor([N, OUT], &generator)                     // (N, OUT)
        let base = randomTensor([N, outStride], &generator)            // the frozen linear's output
        let out = Tensor(zeros: [N, outStride])                        // (N, outStride)
        let hidden = Tensor(zeros: [N, R])                             // (N, R) saved for backward

        func objective() -> Double {
            out.pointer.update(from: base.pointer, count: base.count)  // loraForward adds into out
            loraForward(out: out.pointer + outColumn, outStride: outStride, hidden: hidden.pointer,
                        inp: inp.pointer, loraA: loraA.pointer, loraB: loraB.pointer,
                        scale: scale, rows: N, inFeatures: IN, outFeatures: OUT, rank: R)
            return weightedSum(out.pointer + outColumn, stride: outStride, r.pointer, stride: OUT,
                               rows: N, columns: OUT)
        }

        _ = objective()
        let dout = stridedCopy(r, stride: doutStride, column: doutColumn)  // (N, doutStride)
        let dinp = Accumulator([N, IN], &generator)
        let dloraA = Accumulator([R, IN], &generator)
        let dloraB = Accumulator([OUT, R], &generator)
        let dhidden = Tensor(zeros: [N, R])                            // scratch
        dhidden.fill(1e3)
        loraBackward(dinp: dinp.buffer.pointer, dloraA: dloraA.buffer.pointer,
                     dloraB: dloraB.buffer.pointer, dhidden: dhidden.pointer,
                     dout: dout.pointer + doutColumn, doutStride: doutStride, hidden: hidden.pointer,
                     inp: inp.pointer, loraA: loraA.pointer, loraB: loraB.pointer,
                     scale: scale, rows: N, inFeatures: IN, outFeatures: OUT, rank: R)

        // f is bilinear in (A, B) but linear in each one alone, and linear in inp.
        expectGradient("lora dinp", dinp.added,
                       centralDifferences(inp, objective), tolerance: Self.linearTolerance)
        expectGradient("lora dloraA", dloraA.added,
                       centralDifferences(loraA, objective), tolerance: Self.linearTolerance)
        expectGradient("lora dloraB", dloraB.added,
                       centralDifferences(loraB, objective), tolerance: Self.linearTolerance)
    }

    // MARK: - Normalization

    @Test func layerNormGradients() throws {
        var generator = SeededGenerator(seed: 21)
        let N = 3, C = 6
        let epsilon: Float = 1e-5
        let inp = randomTensor([N, C], mean: 0.5, &generator)          // (N, C)
        let weight = randomTensor([C], mean: 1, std: 0.5, &generator)  // (C)
        let bias = randomTensor([C], &generator)                       // (C)
        let r = randomTensor([N, C], &generator)                       // (N, C)
        let out = Tensor(zeros: [N, C]), mean = Tensor(zeros: [N]), rstd = Tensor(zeros: [N])

        func objective() -> Double {
            layerNormForward(out: out.pointer, mean: mean.pointer, rstd: rstd.pointer,
                             inp: inp.pointer, weight: weight.pointer, bias: bias.pointer,
                             rows: N, channels: C, epsilon: epsilon)
            return weightedSum(out.pointer, stride: C, r.pointer, stride: C, rows: N, columns: C)
        }

        _ = objective()
        let dinp = Accumulator([N, C], &generator)
        let dweight = Accumulator([C], &generator)
        let dbias = Accumulator([C], &generator)
        layerNormBackward(dinp: dinp.buffer.pointer, dweight: dweight.buffer.pointer,
                          dbias: dbias.buffer.pointer, dout: r.pointer, inp: inp.pointer,
                          weight: weight.pointer, mean: mean.pointer, rstd: rstd.pointer,
                          rows: N, channels: C)

        expectGradient("layerNorm dinp", dinp.added,
                       centralDifferences(inp, objective), tolerance: Self.smoothTolerance)
        expectGradient("layerNorm dweight", dweight.added,
                       centralDifferences(weight, objective), tolerance: Self.linearTolerance)
        expectGradient("layerNorm dbias", dbias.added,
                       centralDifferences(bias, objective), tolerance: Self.linearTolerance)
    }

    @Test func rmsNormGradients() throws {
        var generator = SeededGenerator(seed: 22)
        let N = 3, C = 6
        let epsilon: Float = 1e-6
        let inp = randomTensor([N, C], mean: 0.5, &generator)          // (N, C)
        let weight = randomTensor([C], mean: 1, std: 0.5, &generator)  // (C)
        let r = randomTensor([N, C], &generator)                       // (N, C)
        let out = Tensor(zeros: [N, C]), rstd = Tensor(zeros: [N])

        func objective() -> Double {
            rmsNormForward(out: out.pointer, rstd: rstd.pointer, inp: inp.pointer,
                           weight: weight.pointer, rows: N, channels: C, epsilon: epsilon)
            return weightedSum(out.pointer, stride: C, r.pointer, stride: C, rows: N, columns: C)
        }

        _ = objective()
        let dinp = Accumulator([N, C], &generator)
        let dweight = Accumulator([C], &generator)
        rmsNormBackward(dinp: dinp.buffer.pointer, dweight: dweight.buffer.pointer, dout: r.pointer,
                        inp: inp.pointer, weight: weight.pointer, rstd: rstd.pointer,
                        rows: N, channels: C)

        expectGradient("rmsNorm dinp", dinp.added,
                       centralDifferences(inp, objective), tolerance: Self.smoothTolerance)
        expectGradient("rmsNorm dweight", dweight.added,
                       centralDifferences(weight, objective), tolerance: Self.linearTolerance)
    }

    // MARK: - Activations

    @Test func geluGradient() throws {
        var generator = SeededGenerator(seed: 31)
        let count = 24
        let inp = randomTensor([count], std: 2, &generator)            // spans both tails
        let r = randomTensor([count], &generator)
        let out = Tensor(zeros: [count])

        func objective() -> Double {
            geluForward(out: out.pointer, inp: inp.pointer, count: count)
            return weightedSum(out.pointer, stride: count, r.pointer, stride: count, rows: 1, columns: count)
        }

        let dinp = Accumulator([count], &generator)
        geluBackward(dinp: dinp.buffer.pointer, dout: r.pointer, inp: inp.pointer, count: count)

        expectGradient("gelu dinp", dinp.added,
                       centralDifferences(inp, objective), tolerance: Self.smoothTolerance)
    }

    @Test func swigluGradients() throws {
        var generator = SeededGenerator(seed: 32)
        let count = 24
        let gate = randomTensor([count], std: 2, &generator)
        let up = randomTensor([count], &generator)
        let r = randomTensor([count], &generator)
        let out = Tensor(zeros: [count])

        func objective() -> Double {
            swigluForward(out: out.pointer, gate: gate.pointer, up: up.pointer, count: count)
            return weightedSum(out.pointer, stride: count, r.pointer, stride: count, rows: 1, columns: count)
        }

        // swigluBackward overwrites dgate and dup: garbage there must not survive.
        let dgate = Tensor(zeros: [count]), dup = Tensor(zeros: [count])
        dgate.fill(1e3)
        dup.fill(1e3)
        swigluBackward(dgate: dgate.pointer, dup: dup.pointer, dout: r.pointer,
                       gate: gate.pointer, up: up.pointer, count: count)

        expectGradient("swiglu dgate", dgate.values,
                       centralDifferences(gate, objective), tolerance: Self.smoothTolerance)
        expectGradient("swiglu dup", dup.values,
                       centralDifferences(up, objective), tolerance: Self.linearTolerance)
    }

    // MARK: - Attention and rotary

    /// (heads, keyValueHeads): grouped-query, multi-query and plain multi-head attention.
    @Test(arguments: [(4, 2), (2, 1), (2, 2)])
    func attentionGradients(heads: Int, keyValueHeads: Int) throws {
        try BLAS.load()
        var generator = SeededGenerator(seed: UInt64(40 + 10 * heads + keyValueHeads))
        let shape = AttentionShape(batch: 2, sequence: 4, heads: heads, keyValueHeads: keyValueHeads,
                                   headDimension: 4)
        let B = shape.batch, T = shape.sequence, W = shape.qkvWidth
        let qkv = randomTensor([B, T, W], &generator)                  // (B, T, W)
        let r = randomTensor([B, T, shape.outWidth], &generator)       // (B, T, H·D)
        let out = Tensor(zeros: [B, T, shape.outWidth])                // (B, T, H·D)
        // two workers' scratch, pre-filled with garbage: nothing may read what it did not write
        let scratchStorage = Tensor(zeros: [2, 2, T, T])
        scratchStorage.fill(1e3)
        let scratch = AttentionScratch(workers: 2, maxSequence: T) { _ in scratchStorage.pointer }

        func objective() -> Double {
            attentionForward(out: out.pointer, qkv: qkv.pointer, shape: shape, scratch: scratch)
            return weightedSum(out.pointer, stride: out.count, r.pointer, stride: r.count,
                               rows: 1, columns: out.count)
        }

        _ = objective()
        let dqkv = Tensor(zeros: [B, T, W])                            // zeroed, as documented
        // The backward remakes the forward's output (a model that does not keep it) over garbage.
        let remade = Tensor(zeros: [B, T, shape.outWidth])
        remade.fill(1e3)
        attentionBackward(dqkv: dqkv.pointer, dout: r.pointer, qkv: qkv.pointer, shape: shape, scratch: scratch,
                          remaking: remade.pointer)
        #expect(remade.values.map(\.bitPattern) == out.values.map(\.bitPattern), "the remade output is the forward's, bit for bit")
        let numeric = centralDifferences(qkv, objective)

        // Split every row of qkv into its query, key and value columns.
        let label = "attention H=\(heads) KV=\(keyValueHeads)"
        let parts = [("dq", 0..<shape.keyOffset), ("dk", shape.keyOffset..<shape.valueOffset),
                     ("dv", shape.valueOffset..<W)]
        for (name, columns) in parts {
            let indices = (0..<B * T).flatMap { row in columns.map { row * W + $0 } }
            expectGradient("\(label) \(name)", indices.map { dqkv.pointer[$0] }, indices.map { numeric[$0] },
                           tolerance: Self.smoothTolerance)
        }
    }

    static let rotaryShape = AttentionShape(batch: 2, sequence: 4, heads: 4, keyValueHeads: 2,
                                            headDimension: 4)
    /// θ = 100 so that both frequencies (1 and 0.1 rad per position) turn visibly over T = 4.
    static let rotaryTable = RotaryTable(maxPositions: 8, headDimension: 4, theta: 100)

    @Test func rotaryInverseUndoesForward() throws {
        var generator = SeededGenerator(seed: 51)
        let shape = Self.rotaryShape, W = shape.qkvWidth
        let original = randomTensor([shape.batch, shape.sequence, W], &generator)
        let qkv = original.copy()

        Self.rotaryTable.apply(qkv.pointer, shape: shape, inverse: false)
        var largestChange: Float = 0, valuesUnchanged = true
        for row in 0..<shape.batch * shape.sequence {
            for column in 0..<W {
                let i = row * W + column
                if column < shape.valueOffset {
                    largestChange = max(largestChange, abs(qkv.pointer[i] - original.pointer[i]))
                } else {
                    valuesUnchanged = valuesUnchanged && qkv.pointer[i] == original.pointer[i]
                }
            }
        }
        #expect(largestChange > 0.1, "rotary forward barely moved q/k (largest change \(largestChange))")
        #expect(valuesUnchanged, "rotary forward changed value columns")

        Self.rotaryTable.apply(qkv.pointer, shape: shape, inverse: true)
        // Two float32 rotations of O(1) values: a few ulps.
        expectGradient("rotary inverse(forward(x)) vs x", qkv.values, original.values.map(Double.init),
                       tolerance: 1e-6)
    }

    @Test func rotaryBackwardIsJacobianTranspose() throws {
        var generator = SeededGenerator(seed: 52)
        let shape = Self.rotaryShape
        let input = randomTensor([shape.batch, shape.sequence, shape.qkvWidth], &generator)
        let r = randomTensor(input.shape, &generator)
        let rotated = Tensor(zeros: input.shape)

        func objective() -> Double {
            rotated.pointer.update(from: input.pointer, count: input.count)
            Self.rotaryTable.apply(rotated.pointer, shape: shape, inverse: false)
            return weightedSum(rotated.pointer, stride: r.count, r.pointer, stride: r.count,
                               rows: 1, columns: r.count)
        }

        // Transformer's backward: rotate the gradient with inverse: true.
        let gradient = r.copy()
        Self.rotaryTable.apply(gradient.pointer, shape: shape, inverse: true)

        expectGradient("rotary dqkv", gradient.values,
                       centralDifferences(input, objective), tolerance: Self.linearTolerance)
    }

    // MARK: - Embedding and loss

    @Test func embeddingGradients() throws {
        var generator = SeededGenerator(seed: 61)
        let B = 2, T = 3, N = B * T, C = 4, V = 7
        let ids: [Int32] = [2, 5, 2, 0, 2, 5]                          // (N), repeats on purpose
        let tokenEmbedding = randomTensor([V, C], &generator)          // (V, C)
        let positionEmbedding = randomTensor([T, C], &generator)       // (T, C)
        let r = randomTensor([N, C], &generator)                       // (N, C)
        let out = Tensor(zeros: [N, C])

        func objective() -> Double {
            ids.withUnsafeBufferPointer { ids in
                embeddingForward(out: out.pointer, ids: ids.baseAddress!,
                                 tokenEmbedding: tokenEmbedding.pointer,
                                 positionEmbedding: positionEmbedding.pointer,
                                 rows: N, sequence: T, channels: C)
            }
            return weightedSum(out.pointer, stride: C, r.pointer, stride: C, rows: N, columns: C)
        }

        let dtokenEmbedding = Accumulator([V, C], &generator)
        let dpositionEmbedding = Accumulator([T, C], &generator)
        ids.withUnsafeBufferPointer { ids in
            embeddingBackward(dtokenEmbedding: dtokenEmbedding.buffer.pointer,
                              dpositionEmbedding: dpositionEmbedding.buffer.pointer,
                              dout: r.pointer, ids: ids.baseAddress!, rows: N, sequence: T, channels: C)
        }

        expectGradient("embedding dtokenEmbedding", dtokenEmbedding.added,
                       centralDifferences(tokenEmbedding, objective), tolerance: Self.linearTolerance)
        expectGradient("embedding dpositionEmbedding", dpositionEmbedding.added,
                       centralDifferences(positionEmbedding, objective), tolerance: Self.linearTolerance)
    }

    /// Row 2 is ignored (−100), row 3 has weight 0, row 4 is shifted by +40 (the max-subtraction
    /// path); f = Σ_n w_n · loss_n.
    @Test func crossEntropyGradient() throws {
        var generator = SeededGenerator(seed: 71)
        let N = 5, V = 6
        let targets: [Int32] = [1, 4, -100, 0, 3]                      // (N)
        let rowWeights: [Float] = [0.5, 1.25, 0.8, 0, 2]               // (N)
        let logits = randomTensor([N, V], &generator)                  // (N, V)
        for v in 0..<V { logits.pointer[4 * V + v] += 40 }
        let rowLosses = Tensor(zeros: [N])

        func objective() -> Double {
            targets.withUnsafeBufferPointer { targets in
                crossEntropyForward(rowLosses: rowLosses.pointer, logits: logits.pointer,
                                    targets: targets.baseAddress!, rows: N, vocabulary: V)
            }
            return (0..<N).reduce(0.0) { $0 + Double(rowWeights[$1]) * Double(rowLosses.pointer[$1]) }
        }

        _ = objective()
        #expect(rowLosses.pointer[2] == 0, "ignored row has loss \(rowLosses.pointer[2])")
        // crossEntropyBackward overwrites its logits argument with the gradient.
        let gradient = logits.copy()
        targets.withUnsafeBufferPointer { targets in
            rowWeights.withUnsafeBufferPointer { rowWeights in
                crossEntropyBackward(logitsToGradient: gradient.pointer, targets: targets.baseAddress!,
                                     rowWeights: rowWeights.baseAddress!, rows: N, vocabulary: V)
            }
        }

        expectGradient("crossEntropy dlogits", gradient.values,
                       centralDifferences(logits, objective), tolerance: Self.crossEntropyTolerance)
    }
}

// MARK: - Helpers

/// A tensor of normal(mean, std) samples.
private func randomTensor(_ shape: [Int], mean: Float = 0, std: Float = 1,
                          _ generator: inout SeededGenerator) -> Tensor {
    let tensor = Tensor(zeros: shape)
    tensor.fillNormal(mean: mean, std: std, using: &generator)
    return tensor
}

/// `source` (N, K) copied into columns [column, column + K) of a new (N, stride) buffer whose
/// other columns hold garbage a strided reader must skip.
private func stridedCopy(_ source: Tensor, stride: Int, column: Int) -> Tensor {
    let rows = source.shape[0], columns = source.shape[1]
    let wide = Tensor(zeros: [rows, stride])
    wide.fill(1e3)
    for n in 0..<rows {
        (wide.pointer + n * stride + column).update(from: source.pointer + n * columns, count: columns)
    }
    return wide
}

/// Σ x ⊙ r over `rows` × `columns` values, each operand with its own row stride, in double.
private func weightedSum(_ x: UnsafePointer<Float>, stride xStride: Int,
                         _ r: UnsafePointer<Float>, stride rStride: Int,
                         rows: Int, columns: Int) -> Double {
    var sum = 0.0
    for n in 0..<rows {
        for c in 0..<columns { sum += Double(x[n * xStride + c]) * Double(r[n * rStride + c]) }
    }
    return sum
}

/// A gradient buffer for a backward that adds into it: pre-filled with random earlier values,
/// `added` is what the backward contributed.
private struct Accumulator {
    let buffer: Tensor
    let before: [Float]

    init(_ shape: [Int], _ generator: inout SeededGenerator) {
        buffer = randomTensor(shape, &generator)
        before = buffer.values
    }

    var added: [Float] { zip(buffer.values, before).map { $0 - $1 } }
}

/// ∂f/∂x for every element of `x` by central differences; `x` is restored afterwards.
/// The divisor is the step float32 actually took, not 2h.
private func centralDifferences(_ x: Tensor, _ objective: () -> Double) -> [Double] {
    let p = x.pointer
    return (0..<x.count).map { i in
        let original = p[i]
        let plus = original + LayerGradientTests.step, minus = original - LayerGradientTests.step
        p[i] = plus
        let fPlus = objective()
        p[i] = minus
        let fMinus = objective()
        p[i] = original
        return (fPlus - fMinus) / (Double(plus) - Double(minus))
    }
}

/// Expects max |analytic − numeric| ≤ tolerance · max |numeric| (the tensor's own scale) and all
/// analytic values finite; the failure message names the tensor and gives the largest difference.
private func expectGradient(_ name: String, _ analytic: [Float], _ numeric: [Double], tolerance: Double,
                            sourceLocation: SourceLocation = #_sourceLocation) {
    precondition(analytic.count == numeric.count, "\(name): \(analytic.count) vs \(numeric.count) values")
    var largest = 0.0, scale = 0.0, worstIndex = 0
    for (i, (a, n)) in zip(analytic, numeric).enumerated() {
        let difference = abs(Double(a) - n)
        if difference > largest { largest = difference; worstIndex = i }
        scale = max(scale, abs(n))
    }
    let finite = analytic.allSatisfy { $0.isFinite }
    #expect(finite && scale > 0 && largest <= tolerance * scale,
            """
            \(name): largest |analytic − numeric| = \(largest) at element \(worstIndex) \
            (analytic \(analytic[worstIndex]), numeric \(numeric[worstIndex])), \
            allowed \(tolerance) · \(scale)\(finite ? "" : "; analytic has non-finite values")
            """,
            sourceLocation: sourceLocation)
}
