import Foundation
import Testing
@testable import DPFT

/// The gradient sinks behind the model's backward: one row layout (a padded example is a
/// segment like an MoE expert's), books secured when a module scope closes, and contributions
/// outside a module scope caught. Bound: relative 1e-5 (float32 sums in a different order).
@Suite struct GradientSinkTests {
    // B = 2 examples, T = 3 padded positions, IN = 4, OUT = 5; example 0 has 3 rows, example 1 has 2.
    static let lengths = [3, 2], T = 3, IN = 4, OUT = 5

    /// Deterministic values in [-1, 1); padding rows of `e` zero, as a backward leaves them.
    static func values(_ count: Int, seed: UInt64) -> Tensor {
        var generator = SeededGenerator(seed: seed)
        return Tensor(shape: [count], values: (0..<count).map { _ in Float(generator.nextOpenUnit() * 2 - 1) })
    }

    static func paddedInputs() -> (e: Tensor, a: Tensor) {
        let e = values(lengths.count * T * OUT, seed: 1), a = values(lengths.count * T * IN, seed: 2)
        for (i, length) in lengths.enumerated() {
            for t in length..<T { (e.pointer + (i * T + t) * OUT).update(repeating: 0, count: OUT) }
        }
        return (e, a)
    }

    static func sum(_ e: Tensor, _ a: Tensor, rows: Int) -> [Float] {
        let target = Tensor(zeros: [OUT, IN])
        sgemm(transposeA: true, transposeB: false, m: OUT, n: IN, k: rows, a: e.pointer, lda: OUT,
              b: a.pointer, ldb: IN, beta: 1, c: target.pointer, ldc: IN)
        return target.values
    }

    /// Token ids for `beginBackward` (only embedding contributions read them).
    nonisolated(unsafe) static let noIds: UnsafeMutablePointer<Int32> = {  // never written
        let ids = UnsafeMutablePointer<Int32>.allocate(capacity: 64)
        ids.initialize(repeating: 0, count: 64)
        return ids
    }()

    /// One linear weight's contribution `scale · Σ e_nᵀ a_n` over `rows`, in its own module scope.
    static func contribute(_ sink: GradientSink, tensor: Int, e: UnsafePointer<Float>, a: Tensor, scale: Float,
                           rows: RowLayout) {
        sink.module {
            sink.outerProduct(tensor: tensor, e: e, eStride: OUT, a: a.pointer, aStride: IN, inFeatures: IN,
                              outFeatures: OUT, scale: scale, rows: rows, eIsStable: false, isTiedHead: false)
        }
    }

    static func expectClose(_ x: [Float], _ y: [Float], _ label: String) {
        let scale = max(y.map(abs).max() ?? 0, 1e-30)
        let worst = zip(x, y).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1e-5 * scale, "\(label): largest difference \(worst) (scale \(scale))")
    }

    /// A module's books point into its scratch; the scratch is overwritten right after the
    /// module's scope closes, before the group's other member arrives. The clipped sum (clip
    /// factor 1: threshold far above the norms) must still equal the direct gradient.
    @Test func booksOutliveTheirModulesScratch() throws {
        let (e, a) = Self.paddedInputs()
        let rows = RowLayout(paddedLengths: Self.lengths, sequenceLength: Self.T)
        let targets = [Tensor(zeros: [Self.OUT, Self.IN]), Tensor(zeros: [Self.OUT, Self.IN])]
        let keeper = BookKeeper(clipping: .abadi, thresholds: [1e9], groupOfTensor: [0, 0],
                                targets: targets.map(\.pointer), tiedTensor: nil)
        let scratch = Tensor(zeros: [e.count])
        keeper.beginBackward(rows: rows, ids: Self.noIds)
        for tensor in 0..<2 {
            // the module writes its output gradient into scratch; the next module reuses it
            scratch.pointer.update(from: e.pointer, count: e.count)
            Self.contribute(keeper, tensor: tensor, e: scratch.pointer, a: a, scale: 1, rows: rows)
            scratch.pointer.update(repeating: .nan, count: scratch.count)
        }
        #expect(keeper.isComplete)
        #expect(keeper.bytesHeld == 0, "books are freed when their group closes")
        #expect(keeper.peakBytesHeld == rows.rows * Self.OUT * 4, "tensor 0's books were copied once, at its scope's end")
        let direct = Self.sum(e, a, rows: rows.rows)
        for tensor in 0..<2 { Self.expectClose(targets[tensor].values, direct, "tensor \(tensor)") }
    }

    /// A linear's weight and bias whose group stays open past their module: the weight's book
    /// copies e (N rows), the bias holds its B per-example sums only; both are freed when the group
    /// closes, and the clipped sums (clip factor 1) equal the direct gradients although the
    /// scratch was overwritten.
    @Test func aBiasHoldsItsPerExampleSumsNotACopy() throws {
        let (e, a) = Self.paddedInputs()
        let rows = RowLayout(paddedLengths: Self.lengths, sequenceLength: Self.T)
        let shapes = [[Self.OUT, Self.IN], [Self.OUT], [Self.OUT, Self.IN]]
        let targets = shapes.map { Tensor(zeros: $0) }
        let keeper = BookKeeper(clipping: .abadi, thresholds: [1e9], groupOfTensor: [0, 0, 0],
                                targets: targets.map(\.pointer), tiedTensor: nil)
        keeper.exampleGradientPolicy = .never
        let scratch = Tensor(zeros: [e.count])
        keeper.beginBackward(rows: rows, ids: Self.noIds)
        scratch.pointer.update(from: e.pointer, count: e.count)
        keeper.module {
            keeper.outerProduct(tensor: 0, e: scratch.pointer, eStride: Self.OUT, a: a.pointer, aStride: Self.IN,
                                inFeatures: Self.IN, outFeatures: Self.OUT, scale: 1, rows: rows, eIsStable: false,
                                isTiedHead: false)
            keeper.rowSum(tensor: 1, e: scratch.pointer, eStride: Self.OUT, width: Self.OUT, rows: rows)
        }
        #expect(keeper.bytesHeld == (rows.rows + rows.batchSize) * Self.OUT * 4, "a copy of e and B bias sums")
        scratch.pointer.update(repeating: .nan, count: scratch.count)
        Self.contribute(keeper, tensor: 2, e: e.pointer, a: a, scale: 1, rows: rows)
        #expect(keeper.isComplete)
        #expect(keeper.bytesHeld == 0, "the books are freed when the group closes")
        let direct = shapes.map { Tensor(zeros: $0) }
        let sink = DirectGradients(targets: direct.map(\.pointer))
        sink.beginBackward(rows: rows, ids: Self.noIds)
        Self.contribute(sink, tensor: 0, e: e.pointer, a: a, scale: 1, rows: rows)
        sink.module { sink.rowSum(tensor: 1, e: e.pointer, eStride: Self.OUT, width: Self.OUT, rows: rows) }
        Self.contribute(sink, tensor: 2, e: e.pointer, a: a, scale: 1, rows: rows)
        for tensor in 0..<3 { Self.expectClose(targets[tensor].values, direct[tensor].values, "tensor \(tensor)") }
    }

    /// Book buffers are reused across backward passes, and the spare ones never make books and
    /// spares together exceed the most bytes of books ever held, also when the row counts change
    /// from pass to pass (an MoE expert's gathered rows); the clipped sums stay right.
    @Test func spareBookBuffersStayWithinTheMostHeld() throws {
        let (e, a) = Self.paddedInputs()
        let target = Tensor(zeros: [Self.OUT, Self.IN]), other = Tensor(zeros: [Self.OUT, Self.IN])
        let keeper = BookKeeper(clipping: .abadi, thresholds: [1e9], groupOfTensor: [0, 0],
                                targets: [target.pointer, other.pointer], tiedTensor: nil)
        for rowCounts in [[3, 2], [1, 2], [3, 2], [2, 0], [3, 1]] {
            let rows = RowLayout(gathered: [RowSegment(start: 0, count: rowCounts[0], example: 0),
                                            RowSegment(start: rowCounts[0], count: rowCounts[1], example: 1)],
                                 rows: rowCounts.reduce(0, +))
            target.pointer.update(repeating: 0, count: target.count)
            keeper.beginBackward(rows: RowLayout(paddedLengths: Self.lengths, sequenceLength: Self.T), ids: Self.noIds)
            Self.contribute(keeper, tensor: 0, e: e.pointer, a: a, scale: 1, rows: rows)  // copied at scope end
            #expect(keeper.bytesHeld + keeper.spareBytes <= keeper.mostBytesHeld, "rows \(rowCounts)")
            Self.contribute(keeper, tensor: 1, e: e.pointer, a: a, scale: 1, rows: rows)
            #expect(keeper.bytesHeld == 0 && keeper.spareBytes <= keeper.mostBytesHeld, "rows \(rowCounts)")
            Self.expectClose(target.values, Self.sum(e, a, rows: rows.rows), "rows \(rowCounts)")
        }
        #expect(keeper.spareBytes > 0, "closed books' buffers are kept for reuse")
    }

    /// The same examples as padded [B, T] rows and as gathered rows (an MoE expert's layout, in
    /// another order, with no padding) give the same per-example norms and clipped sums, for the
    /// ghost norm and for instantiation alike, with the per-example gradients kept or not.
    @Test(arguments: [1e-3, 1e9], [BookKeeper.ExampleGradientPolicy.never, .always])
    func paddedAndGatheredRowsAgree(threshold: Double, policy: BookKeeper.ExampleGradientPolicy) throws {
        let (e, a) = Self.paddedInputs()
        let padded = RowLayout(paddedLengths: Self.lengths, sequenceLength: Self.T)
        // gathered: example 1's rows first, then example 0's
        let order = [3, 4, 0, 1, 2]
        let gatheredE = Tensor(zeros: [order.count, Self.OUT]), gatheredA = Tensor(zeros: [order.count, Self.IN])
        for (row, source) in order.enumerated() {
            (gatheredE.pointer + row * Self.OUT).update(from: e.pointer + source * Self.OUT, count: Self.OUT)
            (gatheredA.pointer + row * Self.IN).update(from: a.pointer + source * Self.IN, count: Self.IN)
        }
        let gathered = RowLayout(gathered: [RowSegment(start: 2, count: 3, example: 0),
                                            RowSegment(start: 0, count: 2, example: 1)], rows: order.count)
        var results: [(norms: [Double], sum: [Float])] = []
        for (rows, e, a) in [(padded, e, a), (gathered, gatheredE, gatheredA)] {
            let target = Tensor(zeros: [Self.OUT, Self.IN])
            let keeper = BookKeeper(clipping: .abadi, thresholds: [threshold], groupOfTensor: [0],
                                    targets: [target.pointer], tiedTensor: nil)
            keeper.exampleGradientPolicy = policy
            keeper.beginBackward(rows: padded, ids: Self.noIds)
            Self.contribute(keeper, tensor: 0, e: e.pointer, a: a, scale: 0.5, rows: rows)
            results.append((keeper.normSquared, target.values))
        }
        for i in 0..<2 {
            let (x, y) = (results[0].norms[i], results[1].norms[i])
            #expect(abs(x - y) <= 1e-5 * y, "example \(i): \(x) vs \(y)")
        }
        Self.expectClose(results[0].sum, results[1].sum, "clipped sum")
    }

    /// Non-private backward goes through the same interface: the direct sink adds the sum.
    @Test func directGradientsAddTheSum() throws {
        let (e, a) = Self.paddedInputs()
        let rows = RowLayout(paddedLengths: Self.lengths, sequenceLength: Self.T)
        let target = Tensor(zeros: [Self.OUT, Self.IN])
        let sink = DirectGradients(targets: [target.pointer])
        sink.beginBackward(rows: rows, ids: Self.noIds)
        Self.contribute(sink, tensor: 0, e: e.pointer, a: a, scale: 1, rows: rows)
        Self.expectClose(target.values, Self.sum(e, a, rows: rows.rows), "direct")
    }

    /// Forgetting the module scope is caught: a contribution outside one stops the process
    /// instead of leaving books that point into scratch the next module overwrites.
    @Test func aContributionOutsideAModuleScopeIsCaught() async {
        await #expect(processExitsWith: .failure) {
            let target = TensorStorage(count: 1), e = TensorStorage(count: 1), a = TensorStorage(count: 1)
            let keeper = BookKeeper(clipping: .abadi, thresholds: [1], groupOfTensor: [0, 0],
                                    targets: [target.base, target.base], tiedTensor: nil)
            let rows = RowLayout(paddedLengths: [1], sequenceLength: 1)
            var id: Int32 = 0
            keeper.beginBackward(rows: rows, ids: &id)
            keeper.outerProduct(tensor: 0, e: e.base, eStride: 1, a: a.base, aStride: 1, inFeatures: 1, outFeatures: 1,
                                scale: 1, rows: rows, eIsStable: false, isTiedHead: false)
        }
    }
}
