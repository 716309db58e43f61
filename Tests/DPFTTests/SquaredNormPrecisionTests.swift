import Foundation
import Testing
@testable import DPFT

// T = padded length, IN/OUT = a linear's input/output features, C = channels, V = vocabulary.

/// Per-example squared norms are accumulated in Double, not Float. Each case builds one
/// example whose exact squared norm is an integer below 2⁵³ (so Double represents it and every
/// partial sum exactly) but not a Float:
/// - 4097² = 2²⁴ + 2¹³ + 1 needs 25 bits; a Float square rounds it to 16785408;
/// - a ghost norm 2⁴⁸ + 9 (one large term, nine small ones); a Float sum keeps 2⁴⁸.
/// Gram matrices and per-example gradients of these inputs are exact in Float, so the
/// engine's result must equal the exact value bitwise; Float accumulation misses it.
@Suite struct SquaredNormPrecisionTests {
    static let big: Float = 4097  // 4097² is not a Float

    /// Token ids for `beginBackward`.
    nonisolated(unsafe) static let ids: UnsafeMutablePointer<Int32> = {  // never written
        let ids = UnsafeMutablePointer<Int32>.allocate(capacity: 16)
        ids.initialize(repeating: 0, count: 16)
        return ids
    }()

    /// Example 0's squared norm after `contribute` (one group, one example of `length` rows).
    static func squaredNorm(tensors: Int, length: Int, tiedTensor: Int? = nil, targetCount: Int = 64,
                            policy: BookKeeper.ExampleGradientPolicy = .byCost,
                            _ contribute: (BookKeeper, RowLayout) -> Void) -> Double {
        let targets = (0..<tensors).map { _ in Tensor(zeros: [targetCount]) }
        let keeper = BookKeeper(clipping: .abadi, thresholds: [1], groupOfTensor: Array(repeating: 0, count: tensors),
                                targets: targets.map(\.pointer), tiedTensor: tiedTensor)
        keeper.exampleGradientPolicy = policy
        let rows = RowLayout(paddedLengths: [length], sequenceLength: length)
        keeper.beginBackward(rows: rows, ids: ids)
        keeper.module { contribute(keeper, rows) }
        #expect(keeper.isComplete)
        return keeper.normSquared[0]
    }

    /// Ghost norm (T = 4, IN = OUT = 8: 2T² < IN·OUT): row 0 has e = a = 2¹²·u₀, rows 1–3 have
    /// e = a = u₁, so the gradient is diag(2²⁴, 3, 0, …) and ⟨a aᵀ, e eᵀ⟩ = 2⁴⁸ + 9.
    @Test func ghostNormSumsLargeAndSmallTermsExactly() {
        let T = 4, width = 8
        let x = Tensor(zeros: [T, width])
        x.pointer[0] = 4096
        for n in 1..<T { x.pointer[n * width + 1] = 1 }
        let norm = Self.squaredNorm(tensors: 1, length: T) { keeper, rows in
            keeper.outerProduct(tensor: 0, e: x.pointer, eStride: width, a: x.pointer, aStride: width, inFeatures: width,
                                outFeatures: width, scale: 1, rows: rows, eIsStable: true, isTiedHead: false)
        }
        #expect(norm == 0x1p48 + 9, "ghost norm² \(norm), exact 2⁴⁸ + 9")
    }

    /// Instantiation (T = 1, IN = OUT = 1): the per-example gradient is 4097·1, made for the norm
    /// alone (by cost) or kept for the clipped sum too.
    @Test(arguments: [BookKeeper.ExampleGradientPolicy.byCost, .always])
    func instantiatedNormSquaresInDouble(policy: BookKeeper.ExampleGradientPolicy) {
        let e = Tensor(shape: [1], values: [Self.big]), a = Tensor(shape: [1], values: [1])
        let norm = Self.squaredNorm(tensors: 1, length: 1, policy: policy) { keeper, rows in
            keeper.outerProduct(tensor: 0, e: e.pointer, eStride: 1, a: a.pointer, aStride: 1, inFeatures: 1,
                                outFeatures: 1, scale: 1, rows: rows, eIsStable: true, isTiedHead: false)
        }
        #expect(norm == 4097.0 * 4097.0, "instantiated norm² \(norm), exact 16785409")
    }

    /// A bias: rows 2048 and 2049 sum to 4097.
    @Test func rowSumNormSquaresInDouble() {
        let e = Tensor(shape: [2], values: [2048, 2049])
        let norm = Self.squaredNorm(tensors: 1, length: 2) { keeper, rows in
            keeper.rowSum(tensor: 0, e: e.pointer, eStride: 1, width: 1, rows: rows)
        }
        #expect(norm == 4097.0 * 4097.0, "bias norm² \(norm), exact 16785409")
    }

    /// RMSNorm weight: dout = 4097, x̂ = inp · rstd = 1.
    @Test func normWeightNormSquaresInDouble() {
        let dout = Tensor(shape: [1], values: [Self.big]), inp = Tensor(shape: [1], values: [1])
        let rstd = Tensor(shape: [1], values: [1])
        let norm = Self.squaredNorm(tensors: 1, length: 1) { keeper, rows in
            keeper.normWeight(tensor: 0, dout: dout.pointer, inp: inp.pointer, mean: nil, rstd: rstd.pointer,
                              width: 1, rows: rows)
        }
        #expect(norm == 4097.0 * 4097.0, "norm weight norm² \(norm), exact 16785409")
    }

    /// Token embedding and learned positions: one row e = 4097.
    @Test(arguments: [false, true])
    func embeddingNormSquaresInDouble(positional: Bool) {
        let e = Tensor(shape: [1], values: [Self.big])
        let norm = Self.squaredNorm(tensors: 1, length: 1) { keeper, _ in
            if positional { keeper.positionEmbedding(tensor: 0, e: e.pointer, width: 1) }
            else { keeper.tokenEmbedding(tensor: 0, e: e.pointer, width: 1) }
        }
        #expect(norm == 4097.0 * 4097.0, "embedding norm² \(norm), exact 16785409")
    }

    /// Tied embedding (V = 2, C = 1, id 0): head gradient H = dlogitsᵀ h with dlogits = (4097, 0),
    /// h = 1, embedding gradient E[0] = 4097; ‖H + E‖² = 8194² = ‖H‖² + ‖E‖² + 2⟨H, E⟩, each
    /// term a multiple of 4097².
    @Test func tiedEmbeddingCrossTermInDouble() {
        let dlogits = Tensor(shape: [2], values: [Self.big, 0]), h = Tensor(shape: [1], values: [1])
        let e = Tensor(shape: [1], values: [Self.big])
        let norm = Self.squaredNorm(tensors: 1, length: 1, tiedTensor: 0) { keeper, rows in
            keeper.outerProduct(tensor: 0, e: dlogits.pointer, eStride: 2, a: h.pointer, aStride: 1, inFeatures: 1,
                                outFeatures: 2, scale: 1, rows: rows, eIsStable: true, isTiedHead: true)
            keeper.tokenEmbedding(tensor: 0, e: e.pointer, width: 1)
        }
        #expect(norm == 8194.0 * 8194.0, "tied embedding norm² \(norm), exact 67141636")
    }
}
