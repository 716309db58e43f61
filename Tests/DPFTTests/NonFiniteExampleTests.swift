import Foundation
import Testing
@testable import DPFT

// B = 3 examples, T = 4 padded positions (lengths 4, 3, 2), N = B·T rows, IN/OUT = a linear's
// input/output features, R = LoRA rank, C = channels, V = vocabulary.

/// An example whose gradient is non-finite has clip factor 0 and must contribute exactly
/// nothing to its group's clipped sum (0 · NaN = NaN would poison the sum and then the model).
///
/// One test per book kind the backward hands to book-keeping: a linear weight with the
/// scaled-`e` branch (OUT ≤ IN) and the scaled-`a` branch (OUT > IN), each with the ghost norm
/// and with instantiation; a linear with bias (row sums); LoRA A and B; an MoE expert (gathered
/// rows, one example without tokens); LayerNorm and RMSNorm weights (per-example gradients);
/// token embedding, tied embedding (head + embedding + cross term) and learned positions
/// (scatters). Example 1 gets a NaN in one output-gradient entry, or +Inf in one input entry.
///
/// Reference: the same books with example 1's rows set to zero in every operand, so example 1
/// contributes exact zeros in the same places. The summation order is then the same, so the
/// clipped sums must be equal exactly (Float `==`, no tolerance), and so must the other
/// examples' clip factors.
@Suite struct NonFiniteExampleTests {
    static let lengths = [4, 3, 2], T = 4, bad = 1

    /// The contribution forms of `GradientSink`, as the layers use them.
    enum BookKind: String, CaseIterable, CustomTestStringConvertible {
        case linearScaledOutputGhost, linearScaledOutputInstantiated
        case linearScaledInputGhost, linearScaledInputInstantiated
        case linearWithBias, lora, moeExpert, layerNormWeight, rmsNormWeight
        case tokenEmbedding, tiedEmbedding, positionEmbedding

        var testDescription: String { rawValue }
    }

    /// Where example 1's non-finite value sits.
    enum Poison: String, CaseIterable, CustomTestStringConvertible {
        /// NaN in an output gradient `e` (or a norm's `dout`).
        case outputGradient
        /// +Inf in an input `a` (or a norm's input).
        case input

        var testDescription: String { rawValue }
    }

    enum Role { case outputGradient, input, fixed }

    /// One operand buffer [rows, width] of the scenario's books.
    struct Operand {
        var role: Role
        var tensor: Tensor
        var width: Int
    }

    /// The books of one kind: operands, the tensors they feed and how they are handed over.
    struct Scenario {
        var operands: [Operand]
        var targetShapes: [[Int]]
        var groupOfTensor: [Int]
        var tiedTensor: Int?
        var ids: [Int32]
        /// Example 1's rows in every operand.
        var badRows: Range<Int>
        var contribute: (BookKeeper, [Tensor]) -> Void
    }

    static var padded: RowLayout { RowLayout(paddedLengths: lengths, sequenceLength: T) }

    /// Values in [-1, 1); rows of `e` outside every example zero, as a backward leaves them.
    static func operand(_ role: Role, rows: Int, width: Int, layout: RowLayout, seed: UInt64) -> Operand {
        var generator = SeededGenerator(seed: seed)
        let tensor = Tensor(shape: [rows, width], values: (0..<rows * width).map { _ in Float(generator.nextOpenUnit() * 2 - 1) })
        if role == .outputGradient {
            let real = Set(layout.segments.flatMap { Array($0.rows) })
            for n in 0..<rows where !real.contains(n) { (tensor.pointer + n * width).update(repeating: 0, count: width) }
        }
        return Operand(role: role, tensor: tensor, width: width)
    }

    /// One linear weight `scale · Σ e_nᵀ a_n` over `rows` (operands 0 = e, 1 = a).
    static func linear(inFeatures: Int, outFeatures: Int, rows: RowLayout, badRows: Range<Int>) -> Scenario {
        let operands = [operand(.outputGradient, rows: rows.rows, width: outFeatures, layout: rows, seed: 1),
                        operand(.input, rows: rows.rows, width: inFeatures, layout: rows, seed: 2)]
        return Scenario(operands: operands, targetShapes: [[outFeatures, inFeatures]], groupOfTensor: [0], tiedTensor: nil,
                        ids: [], badRows: badRows) { keeper, o in
            keeper.module {
                keeper.outerProduct(tensor: 0, e: o[0].pointer, eStride: outFeatures, a: o[1].pointer, aStride: inFeatures,
                                    inFeatures: inFeatures, outFeatures: outFeatures, scale: 0.5, rows: rows,
                                    eIsStable: false, isTiedHead: false)
            }
        }
    }

    static func scenario(_ kind: BookKind) -> Scenario {
        let rows = padded, N = rows.rows, badRows = (bad * T)..<((bad + 1) * T)
        switch kind {
        // fastDP's rule on T = 4: ghost norm when 2T² = 32 < IN·OUT
        case .linearScaledOutputGhost: return linear(inFeatures: 8, outFeatures: 6, rows: rows, badRows: badRows)
        case .linearScaledOutputInstantiated: return linear(inFeatures: 4, outFeatures: 3, rows: rows, badRows: badRows)
        case .linearScaledInputGhost: return linear(inFeatures: 6, outFeatures: 8, rows: rows, badRows: badRows)
        case .linearScaledInputInstantiated: return linear(inFeatures: 3, outFeatures: 4, rows: rows, badRows: badRows)
        case .moeExpert:
            // gathered rows: example 1's two tokens first, then example 0's three; example 2 routed none
            let gathered = RowLayout(gathered: [RowSegment(start: 2, count: 3, example: 0),
                                                RowSegment(start: 0, count: 2, example: 1),
                                                RowSegment(start: 5, count: 0, example: 2)], rows: 5)
            return linear(inFeatures: 6, outFeatures: 5, rows: gathered, badRows: 0..<2)
        case .linearWithBias:
            var scenario = linear(inFeatures: 5, outFeatures: 3, rows: rows, badRows: badRows)
            let contributeWeight = scenario.contribute
            scenario.targetShapes.append([3])
            scenario.groupOfTensor = [0, 0]
            scenario.contribute = { keeper, o in
                contributeWeight(keeper, o)
                keeper.module { keeper.rowSum(tensor: 1, e: o[0].pointer, eStride: 3, width: 3, rows: rows) }
            }
            return scenario
        case .lora: return lora(rows: rows, badRows: badRows)
        case .layerNormWeight, .rmsNormWeight: return normWeight(withMean: kind == .layerNormWeight, rows: rows, badRows: badRows)
        case .tokenEmbedding, .positionEmbedding:
            let C = 4, V = 5, positional = kind == .positionEmbedding
            return Scenario(operands: [operand(.outputGradient, rows: N, width: C, layout: rows, seed: 5)],
                            targetShapes: [[positional ? T : V, C]], groupOfTensor: [0], tiedTensor: nil,
                            ids: repeatingIds(N, V), badRows: badRows) { keeper, o in
                keeper.module {
                    if positional { keeper.positionEmbedding(tensor: 0, e: o[0].pointer, width: C) }
                    else { keeper.tokenEmbedding(tensor: 0, e: o[0].pointer, width: C) }
                }
            }
        case .tiedEmbedding: return tiedEmbedding(rows: rows, badRows: badRows)
        }
    }

    /// Ids in [0, V) with repeats inside every example (the embedding's same-id terms).
    static func repeatingIds(_ count: Int, _ V: Int) -> [Int32] { (0..<count).map { Int32(($0 * 3) % V) } }

    /// LoRA B (e = dout [N, OUT], a = hidden [N, R], scale 2) and A (e = dhidden [N, R],
    /// a = inp [N, IN]) in one group, as `LinearModule.backward` hands them over.
    static func lora(rows: RowLayout, badRows: Range<Int>) -> Scenario {
        let N = rows.rows, IN = 6, OUT = 5, R = 2
        let operands = [operand(.outputGradient, rows: N, width: OUT, layout: rows, seed: 11),
                        operand(.input, rows: N, width: IN, layout: rows, seed: 12),
                        operand(.fixed, rows: N, width: R, layout: rows, seed: 13),
                        operand(.outputGradient, rows: N, width: R, layout: rows, seed: 14)]
        return Scenario(operands: operands, targetShapes: [[OUT, R], [R, IN]], groupOfTensor: [0, 0], tiedTensor: nil,
                        ids: [], badRows: badRows) { keeper, o in
            keeper.module {
                keeper.outerProduct(tensor: 0, e: o[0].pointer, eStride: OUT, a: o[2].pointer, aStride: R,
                                    inFeatures: R, outFeatures: OUT, scale: 2, rows: rows, eIsStable: false, isTiedHead: false)
                keeper.outerProduct(tensor: 1, e: o[3].pointer, eStride: R, a: o[1].pointer, aStride: IN,
                                    inFeatures: IN, outFeatures: R, scale: 1, rows: rows, eIsStable: false, isTiedHead: false)
            }
        }
    }

    /// A norm weight: dout [N, C], inp [N, C], mean and rstd [N] (mean only for LayerNorm).
    static func normWeight(withMean: Bool, rows: RowLayout, badRows: Range<Int>) -> Scenario {
        let N = rows.rows, C = 6
        let rstd = operand(.fixed, rows: N, width: 1, layout: rows, seed: 24)
        for n in 0..<N { rstd.tensor.pointer[n] += 1.5 }  // in [0.5, 2.5)
        let operands = [operand(.outputGradient, rows: N, width: C, layout: rows, seed: 21),
                        operand(.input, rows: N, width: C, layout: rows, seed: 22),
                        operand(.fixed, rows: N, width: 1, layout: rows, seed: 23), rstd]
        return Scenario(operands: operands, targetShapes: [[C]], groupOfTensor: [0], tiedTensor: nil,
                        ids: [], badRows: badRows) { keeper, o in
            keeper.module {
                keeper.normWeight(tensor: 0, dout: o[0].pointer, inp: o[1].pointer, mean: withMean ? o[2].pointer : nil,
                                  rstd: o[3].pointer, width: C, rows: rows)
            }
        }
    }

    /// The head (e = dlogits [N, V], a = h [N, C]) whose weight is the token embedding, then
    /// the embedding (e = residual gradient [N, C]): one tensor, two contributions.
    static func tiedEmbedding(rows: RowLayout, badRows: Range<Int>) -> Scenario {
        let N = rows.rows, C = 4, V = 5
        let operands = [operand(.outputGradient, rows: N, width: V, layout: rows, seed: 31),
                        operand(.input, rows: N, width: C, layout: rows, seed: 32),
                        operand(.outputGradient, rows: N, width: C, layout: rows, seed: 33)]
        return Scenario(operands: operands, targetShapes: [[V, C]], groupOfTensor: [0], tiedTensor: 0,
                        ids: repeatingIds(N, V), badRows: badRows) { keeper, o in
            keeper.module {
                keeper.outerProduct(tensor: 0, e: o[0].pointer, eStride: V, a: o[1].pointer, aStride: C,
                                    inFeatures: C, outFeatures: V, scale: 1, rows: rows, eIsStable: true, isTiedHead: true)
            }
            keeper.module { keeper.tokenEmbedding(tensor: 0, e: o[2].pointer, width: C) }
        }
    }

    struct Outcome {
        var sums: [[Float]]
        var clipFactors: [Double]
        var normSquared: [Double]
    }

    static func run(_ scenario: Scenario, operands: [Tensor], clipping: ClippingFunction,
                    policy: BookKeeper.ExampleGradientPolicy) -> Outcome {
        let targets = scenario.targetShapes.map { Tensor(zeros: $0) }
        let keeper = BookKeeper(clipping: clipping, thresholds: [1], groupOfTensor: scenario.groupOfTensor,
                                targets: targets.map(\.pointer), tiedTensor: scenario.tiedTensor)
        keeper.exampleGradientPolicy = policy
        var ids = scenario.ids.isEmpty ? [Int32](repeating: 0, count: padded.rows) : scenario.ids
        ids.withUnsafeMutableBufferPointer { ids in
            keeper.beginBackward(rows: padded, ids: UnsafePointer(ids.baseAddress!))
            scenario.contribute(keeper, operands)
        }
        #expect(keeper.isComplete)
        return Outcome(sums: targets.map(\.values), clipFactors: keeper.clipFactors, normSquared: keeper.normSquared)
    }

    static let cases: [(BookKind, Poison)] = BookKind.allCases.flatMap { kind in
        Poison.allCases.filter { poison in
            poison == .outputGradient || scenario(kind).operands.contains { $0.role == .input }
        }.map { (kind, $0) }
    }

    @Test(arguments: cases)
    func aNonFiniteExampleContributesNothing(kind: BookKind, poison: Poison) throws {
        let scenario = Self.scenario(kind)
        let role: Role = poison == .outputGradient ? .outputGradient : .input
        let target = try #require(scenario.operands.firstIndex { $0.role == role })
        // poisoned: one entry in example 1's second row
        let poisoned = scenario.operands.map { $0.tensor.copy() }
        let width = scenario.operands[target].width
        poisoned[target].pointer[(scenario.badRows.lowerBound + 1) * width + 1] = poison == .outputGradient ? .nan : .infinity
        // reference: example 1's rows zero everywhere (its contribution is exactly zero)
        let reference = scenario.operands.map { operand in
            let copy = operand.tensor.copy()
            if operand.role != .fixed {
                (copy.pointer + scenario.badRows.lowerBound * operand.width)
                    .update(repeating: 0, count: scenario.badRows.count * operand.width)
            }
            return copy
        }
        // each clipping function, with linear layers' per-example gradients kept by cost or always
        let settings = [ClippingFunction.abadi, .automatic(gamma: 0.01)].flatMap { clipping in
            [BookKeeper.ExampleGradientPolicy.byCost, .always].map { (clipping, $0) }
        }
        for (clipping, policy) in settings {
            let actual = Self.run(scenario, operands: poisoned, clipping: clipping, policy: policy)
            let expected = Self.run(scenario, operands: reference, clipping: clipping, policy: policy)
            let label = "\(kind.rawValue), \(poison.rawValue), \(clipping.name), \(policy)"
            #expect(!actual.normSquared[Self.bad].isFinite, "\(label): example 1's norm² \(actual.normSquared[Self.bad])")
            #expect(actual.clipFactors[Self.bad] == 0, "\(label): example 1's clip factor")
            for i in 0..<Self.lengths.count where i != Self.bad {
                #expect(actual.clipFactors[i] == expected.clipFactors[i], "\(label): clip factor of example \(i)")
            }
            for (tensor, (x, y)) in zip(actual.sums, expected.sums).enumerated() {
                let differing = zip(x, y).filter { $0 != $1 }.count
                #expect(differing == 0, "\(label): tensor \(tensor) differs in \(differing) of \(x.count) entries: \(x) vs \(y)")
            }
        }
    }

    // MARK: - End to end

    /// The batch with example `bad`'s labels all ignored: that example has loss 0 and exactly
    /// zero output gradients, so it contributes exact zeros wherever the poisoned one is removed.
    static func withoutLabels(_ batch: TokenBatch, example bad: Int) -> TokenBatch {
        let T = batch.sequenceLength
        return TokenBatch(examples: (0..<batch.batchSize).map { b in
            (ids: (0..<batch.lengths[b]).map { Int(batch.ids[b * T + $0]) },
             labels: (0..<batch.lengths[b]).map { b == bad ? Int(TokenBatch.ignoredLabel) : Int(batch.labels[b * T + $0]) })
        }, sequenceLength: T)
    }

    /// The last example with labels that has a token no other row of the batch uses (padding
    /// included). The last, so that in an MoE layer every other token keeps its row in each
    /// expert's gathered slice (rows are in token order) whichever experts the removed tokens
    /// reach: the same rows in the same order, hence the same rounding.
    static func exampleWithOwnToken(_ batch: TokenBatch) -> (example: Int, token: Int32)? {
        let T = batch.sequenceLength
        for b in (0..<batch.batchSize).reversed() where (1..<batch.lengths[b]).contains(where: { batch.labels[b * T + $0] >= 0 }) {
            let others = Set((0..<batch.batchSize * T).filter { $0 / T != b }.map { batch.ids[$0] })
            if let token = (0..<batch.lengths[b]).map({ batch.ids[b * T + $0] }).first(where: { !others.contains($0) }) {
                return (b, token)
            }
        }
        return nil
    }

    /// Untied fixtures (a NaN row of a tied embedding is also the head, which every example
    /// reads): the token embedding row of a token only example `bad` uses is NaN, so that
    /// example's loss and every group norm are NaN. The other examples' clip factors and every
    /// clipped sum equal, bitwise, those of the clean model on the batch in which example
    /// `bad` has no labels (the same rows, in the same order, with exact zeros in its place).
    @Test(arguments: ["llama-gqa-full", "llama-gqa-lora", "mixtral-full", "mixtral-lora"])
    func aNaNEmbeddingRowRemovesOnlyItsExample(name: String) throws {
        let reference = try ReferenceModelTests.Reference(name)
        let batch = reference.batch
        let (bad, token) = try #require(Self.exampleWithOwnToken(batch), "\(name): no token used by one example only")
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: batch.batchSize,
                                    maxSequenceLength: batch.sequenceLength)
        let grouping = try GroupingRegistry.builtIn.resolve(strategy: "per-block", options: [:],
                                                            parameters: model.trainableParameterInfos, threshold: 0.1)
        let engine = try PrivateGradient(model: model, grouping: grouping, clipping: .abadi)
        model.zeroGradients()
        try engine.accumulate(Self.withoutLabels(batch, example: bad))
        let expected = Array(UnsafeBufferPointer(start: model.gradients.storage.base, count: model.gradients.count))
        let expectedFactors = engine.clipFactors

        let embedding = try #require(model.parameters[model.config.embeddingName])
        let C = embedding.shape[1]
        (embedding.pointer + Int(token) * C).update(repeating: .nan, count: C)
        model.zeroGradients()
        try engine.accumulate(batch)
        let actual = Array(UnsafeBufferPointer(start: model.gradients.storage.base, count: model.gradients.count))
        #expect(engine.perSampleNorms[bad].allSatisfy { !$0.isFinite }, "\(name): example \(bad)'s norms")
        #expect(engine.clipFactors[bad].allSatisfy { $0 == 0 })
        for i in 0..<batch.batchSize where i != bad {
            #expect(engine.clipFactors[i] == expectedFactors[i], "\(name): clip factors of example \(i)")
        }
        #expect(expectedFactors.joined().contains { $0 < 1 }, "the threshold clips some example")
        let differing = zip(actual, expected).filter { $0 != $1 }.count
        #expect(differing == 0, "\(name): \(differing) of \(actual.count) gradient entries differ")
    }
}
