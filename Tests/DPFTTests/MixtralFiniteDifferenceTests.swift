import Foundation
import Testing
@testable import DPFT

/// The whole Mixtral backward (attention, experts, the renormalised top-k router) against
/// central differences of the loss, on the tiny `mixtral-full` fixture model and batch.
///
/// f = the batch loss (mean of the per-example losses, float32), read as a Double. For a few
/// coordinates θ_j of router, expert and attention tensors of both layers,
///     numeric_j = (f(θ + h e_j) − f(θ − h e_j)) / ((θ_j + h) − (θ_j − h)),
/// the divisor being the step float32 actually took.
///
/// Step and bound. Each float32 evaluation of f ≈ 4.3 carries rounding that does not cancel
/// between f(θ ± h); measured, it is 1–2 ulp(f) (ulp(4.3) = 4.8e-7), so the quotient is off by
/// up to ~2 ulp(f)/h. Truncation, h²·f‴/6, is negligible at h = 1e-2: the error kept falling as
/// h grew to 3e-2 (rounding-dominated; worst error over the tensors' own scales 7.7e-2, 1.3e-2,
/// 6.6e-3, 2.1e-3, 8.2e-4 at h = 3e-4, 1e-3, 3e-3, 1e-2, 3e-2), but at 3e-2 perturbed router
/// weights already change some tokens' experts. So h = 1e-2 and a coordinate passes when
///     |analytic − numeric| ≤ 8·ulp(f)/(2h) + 1e-3·|numeric|
/// (rounding with a 4× margin over the measured worst, plus the analytic gradient's own
/// float32 rounding). A wrong router or combine backward is off by O(|gradient|), ≥ 1e-2 here.
///
/// The top-k choice is piecewise constant: a coordinate whose ± h perturbation changes any
/// token's selected experts has no derivative there and is replaced by the next one (the test
/// checks that enough coordinates remain in every tensor).
@Suite struct MixtralFiniteDifferenceTests {
    static let step: Float = 1e-2
    static let coordinatesPerTensor = 4

    /// Router, experts (w1, w2, w3) and attention projections of both layers.
    static let tensors = [
        "model.layers.0.block_sparse_moe.gate.weight", "model.layers.1.block_sparse_moe.gate.weight",
        "model.layers.0.block_sparse_moe.experts.1.w1.weight", "model.layers.0.block_sparse_moe.experts.3.w2.weight",
        "model.layers.1.block_sparse_moe.experts.0.w3.weight", "model.layers.1.block_sparse_moe.experts.2.w2.weight",
        "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
        "model.layers.1.self_attn.v_proj.weight", "model.layers.1.self_attn.o_proj.weight",
    ]

    /// Every block's selected experts [N, K] after the last forward.
    static func routing(_ model: Transformer) -> [[Int32]] {
        model.blocks.compactMap { block in
            if case .experts(let moe) = block.feedForward { return moe.selected }
            return nil
        }
    }

    @Test func backwardMatchesCentralDifferences() throws {
        let reference = try ReferenceModelTests.Reference("mixtral-full")
        let batch = reference.batch
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: batch.batchSize,
                                    maxSequenceLength: batch.sequenceLength)
        model.zeroGradients()
        let f = try model.forward(batch)
        let routing = Self.routing(model)
        model.backward()
        let roundingBound = 8 * Double(f.ulp) / (2 * Double(Self.step))
        var generator = SeededGenerator(seed: 7)
        var worst = 0.0
        for name in Self.tensors {
            let parameter = try #require(model.parameters[name]), analytic = try #require(model.gradients[name]).values
            var checked = 0, attempts = 0
            while checked < Self.coordinatesPerTensor && attempts < 4 * Self.coordinatesPerTensor {
                attempts += 1
                let j = Int(generator.next() % UInt64(parameter.count))
                let original = parameter.pointer[j]
                let plus = original + Self.step, minus = original - Self.step
                parameter.pointer[j] = plus
                let fPlus = Double(try model.forward(batch)), routingPlus = Self.routing(model)
                parameter.pointer[j] = minus
                let fMinus = Double(try model.forward(batch)), routingMinus = Self.routing(model)
                parameter.pointer[j] = original
                guard routingPlus == routing && routingMinus == routing else { continue }
                let numeric = (fPlus - fMinus) / (Double(plus) - Double(minus))
                let error = abs(Double(analytic[j]) - numeric), allowed = roundingBound + 1e-3 * abs(numeric)
                worst = max(worst, error / allowed)
                #expect(error <= allowed, "\(name)[\(j)]: analytic \(analytic[j]), numeric \(numeric), allowed \(allowed)")
                checked += 1
            }
            #expect(checked == Self.coordinatesPerTensor, "\(name): only \(checked) coordinates keep the routing")
        }
        print("[mixtral finite differences] largest error / allowed: \(worst)")
    }
}
