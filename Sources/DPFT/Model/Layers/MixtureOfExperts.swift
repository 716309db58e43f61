import Foundation

// N = rows (B·T), B = batch, T = sequence, C = channels, I = expert inner width, E = experts,
// K = experts per token (top-k), M = routed rows (one per real token and selected expert,
// at most N·K), R = LoRA rank.

/// A Mixtral sparse mixture-of-experts feed-forward layer (DESIGN.md §2), as HF's
/// `MixtralSparseMoeBlock`:
///
///     logits = x · Gᵀ                       router, G [E, C]
///     p      = softmax(logits)              over the E experts, per token
///     top    = the K largest p (descending; ties to the lower index)
///     w_j    = p[top_j] / Σ_j' p[top_j']    renormalised gate weights
///     out    = Σ_j w_j · w2(silu(w1 x) ⊙ w3 x) with expert top_j's w1, w2, w3
///
/// Experts run on gathered rows: the tokens routed to expert e are copied, in token order, into
/// its slice `offsets[e] ..< offsets[e+1]` of one compact [M, ·] buffer, so every expert is one
/// dense GEMM over just its tokens and each example's tokens form one contiguous segment of the
/// slice (a `RowSegment`: what book-keeping needs for per-example norms). Padding rows are not routed: their
/// output is zero (they are never scored, and causal attention keeps them out of real rows).
///
/// Activations are allocated once for `maxRows` rows (every token routed to K experts: M ≤ N·K)
/// and reused; a forward writes them, the following backward reads them.
final class MixtureOfExperts {
    /// One expert's SwiGLU MLP: out = w2(silu(w1 x) ⊙ w3 x).
    struct Expert {
        var gate: LinearModule   // w1 [I, C]
        var down: LinearModule   // w2 [C, I]
        var up: LinearModule     // w3 [I, C]
    }

    /// Backward scratch shared by every MoE layer of a model (sized for the largest batch).
    final class Scratch {
        let routedOutputGradient: UnsafeMutablePointer<Float>  // [M, C] d(expert output)
        let activationGradient: UnsafeMutablePointer<Float>    // [M, I]
        let gateGradient: UnsafeMutablePointer<Float>          // [M, I] d(w1 x)
        let upGradient: UnsafeMutablePointer<Float>            // [M, I] d(w3 x)
        let routedInputGradient: UnsafeMutablePointer<Float>   // [M, C] d(gathered x)
        let weightGradient: UnsafeMutablePointer<Float>        // [N, K] d(renormalised gate weights)
        let logitsGradient: UnsafeMutablePointer<Float>        // [N, E] d(router logits)
        let loraGradient: UnsafeMutablePointer<Float>          // [3, M, R] LoRA dhidden of w2, w1, w3
        let maxRouted: Int
        private let storages: [TensorStorage]

        init(maxRows N: Int, channels C: Int, inner I: Int, experts E: Int, perToken K: Int, loraRank R: Int) {
            let M = N * K
            var storages: [TensorStorage] = []
            func buffer(_ count: Int) -> UnsafeMutablePointer<Float> {
                let storage = TensorStorage(count: count)
                storages.append(storage)
                return storage.base
            }
            routedOutputGradient = buffer(M * C)
            activationGradient = buffer(M * I)
            gateGradient = buffer(M * I)
            upGradient = buffer(M * I)
            routedInputGradient = buffer(M * C)
            weightGradient = buffer(N * K)
            logitsGradient = buffer(N * E)
            loraGradient = buffer(max(3 * M * R, 1))
            maxRouted = M
            self.storages = storages
        }
    }

    let router: LinearModule     // gate [E, C], output [N, E]
    let experts: [Expert]
    let expertsPerToken: Int     // K
    let channels: Int            // C
    let inner: Int               // I
    var expertCount: Int { experts.count }

    // activations, sized for the largest batch
    let routerLogits: UnsafeMutablePointer<Float>   // [N, E]
    let probabilities: UnsafeMutablePointer<Float>  // [N, E] softmax over experts
    let gateWeights: UnsafeMutablePointer<Float>    // [N, K] renormalised weights of the selected experts
    private(set) var selected: [Int32]              // [N, K] selected experts, descending probability
    private(set) var offsets: [Int]                 // [E + 1] each expert's slice of the routed rows
    private(set) var routedToken: [Int32]           // [M] token row of each routed row
    private(set) var routedSlot: [Int32]            // [M] which of the token's K choices it is
    let routedInput: UnsafeMutablePointer<Float>    // [M, C] gathered x
    let gateOut: UnsafeMutablePointer<Float>        // [M, I] w1 x
    let upOut: UnsafeMutablePointer<Float>          // [M, I] w3 x
    let activation: UnsafeMutablePointer<Float>     // [M, I] silu(w1 x) ⊙ w3 x
    let expertOut: UnsafeMutablePointer<Float>      // [M, C] w2 · activation
    /// Per expert, each example's segment of the expert's slice (rows relative to the slice).
    private(set) var segments: [[RowSegment]] = []
    private let loraRank: Int  // R (0 without LoRA on the experts)
    // shape of the last forward
    private var batch = 0, sequence = 0
    private var lengths: [Int]?

    /// `buffer(count)` hands out zeroed float storage that lives as long as the model.
    init(router: LinearModule, experts: [Expert], expertsPerToken: Int, loraRank: Int, maxRows N: Int,
         buffer: (Int) -> UnsafeMutablePointer<Float>) {
        precondition(router.lora == nil, "the router has no LoRA")
        self.router = router
        self.experts = experts
        self.expertsPerToken = expertsPerToken
        self.loraRank = loraRank
        channels = router.inFeatures
        inner = experts.first?.gate.outFeatures ?? 0
        let E = experts.count, K = expertsPerToken, M = N * K, C = channels, I = inner
        routerLogits = buffer(N * E)
        probabilities = buffer(N * E)
        gateWeights = buffer(N * K)
        selected = [Int32](repeating: 0, count: N * K)
        offsets = [Int](repeating: 0, count: E + 1)
        routedToken = [Int32](repeating: 0, count: M)
        routedSlot = [Int32](repeating: 0, count: M)
        routedInput = buffer(M * C)
        gateOut = buffer(M * I)
        upOut = buffer(M * I)
        activation = buffer(M * I)
        expertOut = buffer(M * C)
    }

    /// Rows routed to expert `e` in the last forward.
    func routedCount(expert e: Int) -> Int { offsets[e + 1] - offsets[e] }

    // MARK: Forward

    /// out[N, C] = the layer applied to inp[N, C] (overwrites `out`). Rows b·T + t with
    /// t ≥ lengths[b] are padding: not routed, output 0. `lengths` nil = every row is real.
    func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, batch B: Int, sequence T: Int,
                 lengths: [Int]?) {
        let N = B * T, E = expertCount, K = expertsPerToken, C = channels, I = inner
        (batch, sequence, self.lengths) = (B, T, lengths)
        router.forward(out: routerLogits, outStride: E, inp: inp, rows: N)

        // softmax over experts, top-K, renormalise
        var counts = [Int](repeating: 0, count: E)
        for n in 0..<N where isReal(n) {
            let logits = routerLogits + n * E, p = probabilities + n * E
            var maximum = -Float.infinity
            for e in 0..<E { maximum = max(maximum, logits[e]) }
            var sum: Float = 0
            for e in 0..<E { p[e] = expf(logits[e] - maximum); sum += p[e] }
            for e in 0..<E { p[e] /= sum }
            var total: Float = 0
            for j in 0..<K {
                // the largest probability not yet taken; on a tie the lower index (torch.topk
                // on distinct values picks the same experts in the same order)
                var best = -1
                for e in 0..<E where !isSelected(e, row: n, before: j) && (best < 0 || p[e] > p[best]) { best = e }
                selected[n * K + j] = Int32(best)
                gateWeights[n * K + j] = p[best]
                total += p[best]
                counts[best] += 1
            }
            for j in 0..<K { gateWeights[n * K + j] /= total }
        }

        // each expert's slice of the routed rows; rows in token order inside a slice
        offsets[0] = 0
        for e in 0..<E { offsets[e + 1] = offsets[e] + counts[e] }
        var cursor = Array(offsets.dropLast())
        if segments.count != E || segments.first?.count != B {
            segments = Array(repeating: Array(repeating: RowSegment(start: 0, count: 0, example: 0), count: B), count: E)
        }
        for e in 0..<E {
            for b in 0..<B { segments[e][b] = RowSegment(start: 0, count: 0, example: b) }
        }
        for n in 0..<N where isReal(n) {
            for j in 0..<K {
                let e = Int(selected[n * K + j]), row = cursor[e]
                cursor[e] += 1
                routedToken[row] = Int32(n)
                routedSlot[row] = Int32(j)
                (routedInput + row * C).update(from: inp + n * C, count: C)
                let b = n / T
                if segments[e][b].count == 0 { segments[e][b].start = row - offsets[e] }
                segments[e][b].count += 1
            }
        }

        // experts on their slices
        for (e, expert) in experts.enumerated() {
            let start = offsets[e], count = offsets[e + 1] - start
            guard count > 0 else { continue }
            expert.gate.forward(out: gateOut + start * I, outStride: I, inp: routedInput + start * C, rows: count)
            expert.up.forward(out: upOut + start * I, outStride: I, inp: routedInput + start * C, rows: count)
            swigluForward(out: activation + start * I, gate: gateOut + start * I, up: upOut + start * I, count: count * I)
            expert.down.forward(out: expertOut + start * C, outStride: C, inp: activation + start * I, rows: count)
        }

        // combine: out_n = Σ_j w_nj · expertOut[row(n, j)]
        out.update(repeating: 0, count: N * C)
        for row in 0..<offsets[E] {
            let n = Int(routedToken[row]), weight = gateWeights[n * K + Int(routedSlot[row])]
            let target = out + n * C, source = expertOut + row * C
            for c in 0..<C { target[c] += weight * source[c] }
        }
    }

    /// Whether row n of the last forward is a real token (not padding).
    @inline(__always)
    private func isReal(_ n: Int) -> Bool { lengths.map { n % sequence < $0[n / sequence] } ?? true }

    @inline(__always)
    private func isSelected(_ e: Int, row n: Int, before j: Int) -> Bool {
        for i in 0..<j where selected[n * expertsPerToken + i] == Int32(e) { return true }
        return false
    }

    // MARK: Backward

    /// Back-propagates d(out) = dout [N, C] of the last forward, adding d(inp) into dinp [N, C].
    /// Gradients go to `sink`: each expert's tensors over its gathered rows (one segment per
    /// example), the router as an ordinary linear over the model's padded `rows`. The whole
    /// layer is one module scope: the experts' output gradients live in `scratch` slices that
    /// no other expert overwrites, so their books are secured once, after the router.
    func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                  rows: RowLayout, scratch: Scratch, sink: GradientSink) {
        let E = expertCount, C = channels
        precondition(offsets[E] <= scratch.maxRouted, "MoE scratch too small")
        sink.module {
            combineBackward(dout: dout, scratch: scratch)
            expertsBackward(scratch: scratch, sink: sink)
            // forward was: routedInput[row] = inp[token(row)], so: dinp[token(row)] += dx[row]
            let dx = scratch.routedInputGradient
            for row in 0..<offsets[E] {
                let target = dinp + Int(routedToken[row]) * C, source = dx + row * C
                for c in 0..<C { target[c] += source[c] }
            }
            gateBackward(scratch: scratch)
            // forward was: logits = inp · Gᵀ (every row; padding rows have dlogits 0)
            router.backward(dinp: dinp, dout: scratch.logitsGradient, doutStride: E, inp: inp, rows: rows,
                            scratch: scratch.loraGradient, sink: sink)
        }
    }

    /// forward was: out_n = Σ_j w_nj y_row(n,j), so: dw_nj = dout_n · y_row; dy_row = w_nj dout_n.
    private func combineBackward(dout: UnsafePointer<Float>, scratch: Scratch) {
        let N = batch * sequence, K = expertsPerToken, C = channels
        let dweights = scratch.weightGradient, dy = scratch.routedOutputGradient
        dweights.update(repeating: 0, count: N * K)
        for row in 0..<offsets[expertCount] {
            let n = Int(routedToken[row]), slot = n * K + Int(routedSlot[row])
            let source = dout + n * C, y = expertOut + row * C, target = dy + row * C
            var dot: Float = 0
            for c in 0..<C { dot += source[c] * y[c] }
            dweights[slot] = dot
            let weight = gateWeights[slot]
            for c in 0..<C { target[c] = weight * source[c] }
        }
    }

    /// Each expert on its slice: d(gathered x) into scratch.routedInputGradient. An expert
    /// without tokens still reports (zero rows, norm 0), so that its book-keeping group closes.
    private func expertsBackward(scratch: Scratch, sink: GradientSink) {
        let E = expertCount, C = channels, I = inner, R = loraRank, M = offsets[E]
        let dy = scratch.routedOutputGradient, dactivation = scratch.activationGradient
        let dx = scratch.routedInputGradient
        dactivation.update(repeating: 0, count: M * I)
        dx.update(repeating: 0, count: M * C)
        for (e, expert) in experts.enumerated() {
            let start = offsets[e], count = offsets[e + 1] - start
            let rows = RowLayout(gathered: segments[e], rows: count)
            // forward was: y = activation · w2ᵀ
            expert.down.backward(dinp: dactivation + start * I, dout: dy + start * C, doutStride: C,
                                 inp: activation + start * I, rows: rows,
                                 scratch: scratch.loraGradient + start * R, sink: sink)
            // forward was: activation = silu(w1 x) ⊙ w3 x
            swigluBackward(dgate: scratch.gateGradient + start * I, dup: scratch.upGradient + start * I,
                           dout: dactivation + start * I, gate: gateOut + start * I, up: upOut + start * I,
                           count: count * I)
            // forward was: gateOut = x · w1ᵀ; upOut = x · w3ᵀ
            expert.gate.backward(dinp: dx + start * C, dout: scratch.gateGradient + start * I, doutStride: I,
                                 inp: routedInput + start * C, rows: rows,
                                 scratch: scratch.loraGradient + (M + start) * R, sink: sink)
            expert.up.backward(dinp: dx + start * C, dout: scratch.upGradient + start * I, doutStride: I,
                               inp: routedInput + start * C, rows: rows,
                               scratch: scratch.loraGradient + (2 * M + start) * R, sink: sink)
        }
    }

    /// forward was: w_j = p[top_j] / S, S = Σ_j p[top_j], so: dp[top_j] = (dw_j − Σ_j' dw_j' w_j') / S;
    /// then p = softmax(logits), so: dlogits_e = p_e (dp_e − Σ_e' p_e' dp_e').
    /// (The top-K choice is piecewise constant: no gradient through it.) Into scratch.logitsGradient.
    private func gateBackward(scratch: Scratch) {
        let N = batch * sequence, E = expertCount, K = expertsPerToken
        let dweights = scratch.weightGradient, dlogits = scratch.logitsGradient
        dlogits.update(repeating: 0, count: N * E)
        for n in 0..<N where isReal(n) {
            let p = probabilities + n * E, d = dlogits + n * E
            var total: Float = 0, weighted: Float = 0
            for j in 0..<K {
                total += p[Int(selected[n * K + j])]
                weighted += dweights[n * K + j] * gateWeights[n * K + j]
            }
            var dot: Float = 0
            for j in 0..<K {
                let e = Int(selected[n * K + j])
                let dp = (dweights[n * K + j] - weighted) / total
                d[e] = dp  // dp of the selected experts (0 elsewhere), turned into dlogits below
                dot += p[e] * dp
            }
            for e in 0..<E { d[e] = p[e] * (d[e] - dot) }
        }
    }
}
