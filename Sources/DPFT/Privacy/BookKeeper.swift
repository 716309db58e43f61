import CVectorMath
import Foundation

// B = examples in the micro-batch, T = padded sequence length, N = B·T rows, K = groups,
// L_i = real length of example i, IN/OUT = a linear layer's input/output features.

/// How a group's per-example norm becomes a clip factor (DESIGN.md §3).
public enum ClippingFunction: Sendable, Equatable, Codable {
    /// `C = min(1, R / (n + 1e-6))`.
    case abadi
    /// AUTO-S: `C = R / (n + γ)`.
    case automatic(gamma: Double)

    /// The clip factor for per-example group norm `norm` and threshold `threshold`;
    /// a non-finite norm gives 0 (the example contributes nothing to that group).
    @inline(__always)
    public func factor(norm: Double, threshold: Double) -> Double {
        guard norm.isFinite else { return 0 }
        switch self {
        case .abadi: return min(1, threshold / (norm + 1e-6))
        case .automatic(let gamma): return threshold / (norm + gamma)
        }
    }

    /// "abadi" or "automatic".
    public var name: String {
        switch self {
        case .abadi: return "abadi"
        case .automatic: return "automatic"
        }
    }
}

/// Book-keeping (BK) clipping: per-example gradient norms without per-example gradients, and
/// the clipped sum `Σ_i C_ik g_i|k` formed in the same backward pass (DESIGN.md §3).
///
/// The model's backward hands every trainable tensor's contribution to the keeper (its
/// `GradientSink`) instead of forming the weight gradient. The keeper adds that contribution's
/// per-example squared norms to its group's accumulator at once, and keeps the contribution's
/// "books" — the layer's output gradient `e` (copied when the module scope that made it closes
/// while it lives in reused scratch) and a pointer to its input activation `a` — only until
/// every member of the group has contributed. Then it computes the group's clip factors, adds
/// `(diag(C) e)ᵀ a` (one GEMM) into the gradient buffer and frees the books. Groups that close
/// early (layer-wise, per-block) hold few books; all-layer holds them all until the end of the
/// backward pass. A linear contribution of a small group may keep its per-example gradients
/// instead (`keepsExampleGradients`): one product per example serves both the norm and the
/// clipped sum.
///
/// Rows reach the keeper with their `RowLayout`: the model's padded [B, T] rows and an MoE
/// expert's gathered rows are both one segment per example, so each contribution kind has one
/// norm and one clipped-sum path.
final class BookKeeper: GradientSink {
    /// One deferred clipped-sum job.
    private enum Book {
        /// target += scale · Σ_i C_i e_iᵀ a_i over the segments of `rows` (a linear weight, LoRA
        /// A or B, a head, an MoE expert's tensors).
        case outerProduct(e: UnsafePointer<Float>, eStride: Int, a: UnsafePointer<Float>, aStride: Int,
                          inFeatures: Int, outFeatures: Int, scale: Float, rows: RowLayout)
        /// target += scale · Σ_i C_i g_i with per-example gradients g [B, width] (biases, norm
        /// weights, and linear layers whose instantiated gradients are kept).
        case perExample(gradients: UnsafePointer<Float>, width: Int, scale: Float)
        /// target[ids[n]] += C_i e_n (token embedding) or target[t] += C_i e_n (positions).
        case scatter(e: UnsafePointer<Float>, width: Int, positional: Bool)
    }

    private struct PendingBook {
        var tensor: Int
        var book: Book
        /// Per-example gradients or sums, or a copy of e when the source was scratch.
        var owned: TensorStorage?
        /// Source to copy when the module scope closes (rows, width, source, stride) while the
        /// book still points into scratch that later backward steps will overwrite.
        var unsecured: (rows: Int, width: Int, source: UnsafePointer<Float>, stride: Int)?
        /// A copy of a linear book's input `a`, made when the model recomputes its activations
        /// (`sharedActivationsWillChange`); books with the same input share it.
        var input: TensorStorage?
    }

    let clipping: ClippingFunction
    /// Group thresholds R_k.
    let thresholds: [Double]
    /// Group of each trainable tensor (by index into the model's gradient store).
    let groupOfTensor: [Int]
    /// Gradient buffer of each trainable tensor.
    private let targets: [UnsafeMutablePointer<Float>]
    /// Contributions expected per backward pass from each group's members (a tied
    /// embedding contributes twice: as head and as embedding).
    private let expectedContributions: [Int]

    // per micro-batch state
    /// The backward's padded [B, T] rows (the embeddings' rows).
    private var rows = RowLayout(paddedLengths: [], sequenceLength: 0)
    private var ids: UnsafePointer<Int32>?
    private var remaining: [Int]
    private var pending: [[PendingBook]]
    private var scopes = ModuleScopes()
    /// Per-example squared norm per group, [B, K].
    private(set) var normSquared: [Double] = []
    /// Clip factors, [B, K], filled as groups close.
    private(set) var clipFactors: [Double] = []
    /// The tied head's books, kept for the embedding's cross term.
    private var headBooks: [Int: (e: UnsafePointer<Float>, eStride: Int, a: UnsafePointer<Float>, aStride: Int,
                                  rows: RowLayout)] = [:]

    /// Bytes of book copies currently held, and the largest value seen since `resetPeak()`.
    private(set) var bytesHeld = 0 {
        didSet { mostBytesHeld = max(mostBytesHeld, bytesHeld) }
    }
    private(set) var peakBytesHeld = 0
    /// The most bytes of books ever held (not reset): what the spare buffers may add up to.
    private(set) var mostBytesHeld = 0

    private var scratch = TensorStorage(count: 0)
    /// Book buffers of closed groups, for reuse (`spareStorage`).
    private var spares: [TensorStorage] = []
    /// Bytes of the spare buffers.
    var spareBytes: Int { spares.reduce(0) { $0 + $1.count } * MemoryLayout<Float>.size }
    /// A GEMM operand with its removed rows zeroed, made only when such a row is non-finite.
    private var maskedRows = TensorStorage(count: 0)
    /// Per-example Gram matrices a_i a_iᵀ (L_i × L_i, packed in example order) of the last input
    /// seen, each made on first use: q/k/v (gate/up, an expert's w1/w3) share their input, so
    /// their ghost norms share these.
    private var grams = TensorStorage(count: 0)
    private var gramsSource: (pointer: UnsafePointer<Float>, stride: Int, width: Int, segments: [RowSegment])?
    private var gramOffsets: [Int] = []
    private var gramIsMade: [Bool] = []

    var groupCount: Int { thresholds.count }
    var batchSize: Int { rows.batchSize }

    /// `targets[t]` is trainable tensor `t`'s gradient buffer; `tiedTensor` the embedding that
    /// is also the head, if any (it contributes twice).
    init(clipping: ClippingFunction, thresholds: [Double], groupOfTensor: [Int],
         targets: [UnsafeMutablePointer<Float>], tiedTensor: Int?) {
        self.clipping = clipping
        self.thresholds = thresholds
        self.groupOfTensor = groupOfTensor
        self.targets = targets
        var expected = [Int](repeating: 0, count: thresholds.count)
        for (tensor, group) in groupOfTensor.enumerated() {
            expected[group] += tensor == tiedTensor ? 2 : 1
        }
        expectedContributions = expected
        remaining = expected
        pending = Array(repeating: [], count: thresholds.count)
    }

    func resetPeak() { peakBytesHeld = bytesHeld }

    /// Starts a backward pass over a micro-batch.
    func beginBackward(rows: RowLayout, ids: UnsafePointer<Int32>) {
        precondition(pending.allSatisfy(\.isEmpty), "a previous backward pass left books open")
        precondition(scopes.depth == 0, "a previous backward pass left a module scope open")
        self.rows = rows
        self.ids = ids
        remaining = expectedContributions
        normSquared = [Double](repeating: 0, count: batchSize * groupCount)
        clipFactors = [Double](repeating: 0, count: batchSize * groupCount)
        headBooks = [:]
        gramsSource = nil
    }

    func openModule() { scopes.open() }

    /// The outermost module scope closed: its scratch is reused next, so copy what still points there.
    func closeModule() {
        if scopes.close() { secure() }
    }

    /// True when every group has closed (all clipped sums formed).
    var isComplete: Bool { remaining.allSatisfy { $0 == 0 } }

    private func scratchBuffer(_ count: Int) -> UnsafeMutablePointer<Float> {
        if scratch.count < count { scratch = TensorStorage(count: count) }
        return scratch.base
    }

    /// Makes room for the upper triangles of a_i a_iᵀ (L_i × L_i, packed in example order) of `a`
    /// and returns which examples still need theirs made; the cache stays while `a` and the
    /// segments stay, so q/k/v (gate/up, an expert's w1/w3) share their input's Grams.
    private func prepareGrams(_ a: UnsafePointer<Float>, stride: Int, width: Int, rows: RowLayout) -> [Bool] {
        let cached = gramsSource.map {
            $0.pointer == a && $0.stride == stride && $0.width == width && $0.segments == rows.segments
        } ?? false
        if !cached {
            gramOffsets.removeAll(keepingCapacity: true)
            var total = 0
            for segment in rows.segments {
                gramOffsets.append(total)
                total += segment.count * segment.count
            }
            if grams.count < total { grams = TensorStorage(count: total) }
            gramIsMade = [Bool](repeating: false, count: rows.batchSize)
            gramsSource = (a, stride, width, rows.segments)
        }
        return gramIsMade.map { !$0 }
    }

    // MARK: Contributions

    /// Per example, with L = the padded length T (padded rows) or the segment's own rows
    /// (gathered rows): the ghost norm when 2L² < p·d (fastDP's rule), else instantiation;
    /// an example without rows contributes 0.
    func outerProduct(tensor: Int, e: UnsafePointer<Float>, eStride: Int, a: UnsafePointer<Float>, aStride: Int,
                      inFeatures: Int, outFeatures: Int, scale: Float, rows: RowLayout,
                      eIsStable: Bool, isTiedHead: Bool) {
        scopes.checkOpen(tensor)
        precondition(rows.batchSize == batchSize, "one segment per example")
        let group = groupOfTensor[tensor]
        let squaredScale = Double(scale) * Double(scale)
        if !isTiedHead && keepsExampleGradients(inFeatures: inFeatures, outFeatures: outFeatures, rows: rows) {
            keepExampleGradients(tensor: tensor, group: group, e: e, eStride: eStride, a: a, aStride: aStride,
                                 inFeatures: inFeatures, outFeatures: outFeatures, scale: scale, rows: rows)
            return
        }
        let sums = exampleSquaredNorms(e: e, eStride: eStride, a: a, aStride: aStride, inFeatures: inFeatures,
                                       outFeatures: outFeatures, rows: rows)
        for (segment, sum) in zip(rows.segments, sums) where segment.count > 0 {
            normSquared[segment.example * groupCount + group] += squaredScale * sum
        }
        if isTiedHead { headBooks[tensor] = (e, eStride, a, aStride, rows) }
        record(tensor: tensor, group: group, stable: eIsStable, rows: rows.rows, width: outFeatures,
               source: e, sourceStride: eStride) { e, stride in
            .outerProduct(e: e, eStride: stride, a: a, aStride: aStride, inFeatures: inFeatures,
                          outFeatures: outFeatures, scale: scale, rows: rows)
        }
    }

    // MARK: Kept per-example gradients

    /// When a linear contribution keeps its per-example gradients instead of taking fastDP's
    /// norm and a clipped-sum GEMM (tests force each path; the tied head never keeps them, its
    /// books serve the embedding's cross term). `always` and `byCost` keep only within
    /// `keptGradientBudget`.
    enum ExampleGradientPolicy: Sendable {
        case byCost, always, never
    }

    var exampleGradientPolicy = ExampleGradientPolicy.byCost

    /// Bytes of books (kept gradients included) that keeping a linear layer's per-example
    /// gradients may bring the held total to; beyond it the layer takes a ghost norm and a book.
    /// Groups that close within a module free theirs at once; all-layer clipping holds them to
    /// the end, so it keeps the first layers of the backward pass until the budget is spent.
    /// 64 MiB per group, the rule before, never let all-layer keep anything: on the reference
    /// GPT (2-core AMD EPYC, release, steps taken in turns with the non-private step) 256 MiB
    /// took its private step from 1.18–1.20 × to 1.12–1.13 × the non-private one, for
    /// 120 MiB more books (73 → 193 MiB at the peak).
    static let defaultKeptGradientBudget = 256 << 20

    var keptGradientBudget = BookKeeper.defaultKeptGradientBudget

    /// Multiply-adds of norm work that keeping must save per gradient element, which is written,
    /// read for the norm and read for the sum: cheap while one example's gradient fits a core's
    /// cache (1 MiB), dear beyond. Measured on the reference GPT (2-core AMD EPYC, release): kept
    /// 256×256 … 1024×256 layers took 15–25 % less time in norms and clipped sums than ghost norms
    /// and a GEMM; GPT-2 small's 768×768 and 768×2304 took longer kept, so a 9 MB gradient needs 64.
    private static func keepingCost(width: Int) -> Int { width * MemoryLayout<Float>.size <= 1 << 20 ? 8 : 64 }

    /// True when the linear contribution's per-example gradients e_iᵀ a_i, made once for both the
    /// norm and the clipped sum, cost less than its norm alone by fastDP's rule (ghost norm or
    /// instantiation) followed by the clipped-sum GEMM: the GEMM costs what the B products do,
    /// so the norm's work is what keeping saves, at `keepingCost` per element, while the books
    /// held, these gradients included, fit `keptGradientBudget`.
    private func keepsExampleGradients(inFeatures: Int, outFeatures: Int, rows: RowLayout) -> Bool {
        let width = inFeatures * outFeatures
        switch exampleGradientPolicy {
        case .never: return false
        case .always, .byCost:
            guard bytesHeld + batchSize * width * MemoryLayout<Float>.size <= keptGradientBudget else { return false }
            if exampleGradientPolicy == .always { return true }
        }
        var normWork = 0
        for segment in rows.segments {
            let L = rows.ruleLength(of: segment)
            normWork += 2 * L * L < width ? L * L * (inFeatures + outFeatures) / 2 : segment.count * width
        }
        return normWork >= Self.keepingCost(width: width) * batchSize * width
    }

    /// `body(i)` for every example i in 0..<count, the examples spread over the cores, each on one
    /// BLAS thread (one small product per core ran 1.8× faster than BLAS threading each, 128 × 768
    /// on a 2-core AMD EPYC). Each example's value comes from one thread in a fixed order, so it
    /// does not depend on the thread count; `body` may write only example i's own buffers.
    private static func onEachExample(_ count: Int, _ body: (Int) -> Double) -> [Double] {
        var results = [Double](repeating: 0, count: count)
        results.withUnsafeMutableBufferPointer { results in
            let shared = UncheckedSendable(results)  // each example writes only its own slot
            BLAS.withOneThread {
                Parallel.forEachChunk(count) { range in
                    for i in range { shared.value[i] = body(i) }
                }
            }
        }
        return results
    }

    /// Makes g_i = scale · e_iᵀ a_i's norms from g_i' = e_iᵀ a_i [OUT, IN] per example (one
    /// single-threaded product per example, examples spread over the cores) and holds the
    /// g_i' as the book: the clipped sum is then Σ_i C_i · scale · g_i', with no second product.
    private func keepExampleGradients(tensor: Int, group: Int, e: UnsafePointer<Float>, eStride: Int,
                                      a: UnsafePointer<Float>, aStride: Int, inFeatures: Int, outFeatures: Int,
                                      scale: Float, rows: RowLayout) {
        let width = inFeatures * outFeatures
        let storage = spareStorage(count: batchSize * width)
        let segments = rows.segments
        // Each example writes only its own gradient: disjoint, hence shareable.
        let gradients = UncheckedSendable(storage.base)
        let sums = Self.onEachExample(segments.count) { i in
            let segment = segments[i], gradient = gradients.value + i * width
            guard segment.count > 0 else {
                gradient.update(repeating: 0, count: width)
                return 0
            }
            sgemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: segment.count,
                  a: e + segment.start * eStride, lda: eStride, b: a + segment.start * aStride, ldb: aStride,
                  c: gradient, ldc: inFeatures)
            return dpft_sum_squares(gradient, width)
        }
        let squaredScale = Double(scale) * Double(scale)
        for (i, sum) in sums.enumerated() { normSquared[i * groupCount + group] += squaredScale * sum }
        hold(PendingBook(tensor: tensor, book: .perExample(gradients: storage.base, width: width, scale: scale),
                         owned: storage), group: group)
    }

    /// target += Σ_i factors[i] · g_i over the rows of `gradients` [B, width], skipping examples
    /// with factor 0 (their gradient may be non-finite). The columns are spread over the cores and
    /// every column adds its examples in order, so the result does not depend on the thread count.
    private func addExampleGradients(into target: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                                     width: Int, factors: [Float]) {
        let shared = UncheckedSendable((target: target, gradients: gradients))
        Parallel.forEachChunk(width, minimumPerChunk: 1 << 14) { columns in
            let (target, gradients) = shared.value
            for (i, factor) in factors.enumerated() where factor != 0 {
                addRows(into: target + columns.lowerBound, e: gradients + columns.lowerBound, eStride: width,
                        width: columns.count, rows: i..<(i + 1), factor: factor)
            }
        }
    }

    /// A buffer of at least `count` floats for a book: the smallest spare one that is large
    /// enough, else a new one. Buffers freed and reallocated every step cost page faults and were
    /// left resident by malloc (GPT-2 small, all-layer: 123 MB of peak RSS). Spares and books
    /// together stay within the most bytes of books ever held: on a miss the largest spares go
    /// first. The caller overwrites the contents it uses.
    private func spareStorage(count: Int) -> TensorStorage {
        let fitting = spares.indices.filter { spares[$0].count >= count }
        if let index = fitting.min(by: { spares[$0].count < spares[$1].count }) {
            return spares.remove(at: index)
        }
        let bytes = count * MemoryLayout<Float>.size
        spares.sort { $0.count < $1.count }
        while !spares.isEmpty, bytesHeld + bytes + spareBytes > max(mostBytesHeld, bytesHeld + bytes) {
            spares.removeLast()
        }
        return TensorStorage(count: count)
    }

    /// ‖e_iᵀ a_i‖² for every segment of `rows` (0 for one without rows). The examples are spread
    /// over `Parallel.threadCount` threads, each running its examples' products on one BLAS
    /// thread: OpenBLAS gains little from threading one 128 × 128 Gram, while one per core ran
    /// 1.8× faster (128 × 768, 2-core AMD EPYC). Each example's value comes from one thread in a
    /// fixed order, so it does not depend on the thread count.
    private func exampleSquaredNorms(e: UnsafePointer<Float>, eStride: Int, a: UnsafePointer<Float>, aStride: Int,
                                     inFeatures: Int, outFeatures: Int, rows: RowLayout) -> [Double] {
        let segments = rows.segments
        let ghost = segments.map { 2 * rows.ruleLength(of: $0) * rows.ruleLength(of: $0) < inFeatures * outFeatures }
        let makeGram = ghost.contains(true)
            ? zip(ghost, prepareGrams(a, stride: aStride, width: inFeatures, rows: rows)).map { $0 && $1 }
            : ghost
        var offsets: [Int] = [], total = 0  // each example's own scratch
        for (segment, isGhost) in zip(segments, ghost) {
            offsets.append(total)
            total += isGhost ? segment.count * segment.count : inFeatures * outFeatures
        }
        // Each example writes only its own Gram and scratch: disjoint, hence shareable.
        let shared = UncheckedSendable((work: scratchBuffer(total), grams: grams.base))
        let sums = Self.onEachExample(segments.count) { i in
            let segment = segments[i], L = segment.count
            guard L > 0 else { return 0 }
            let ei = e + segment.start * eStride, ai = a + segment.start * aStride
            let gramOfA = ghost[i] ? shared.value.grams + gramOffsets[i] : nil
            if makeGram[i], let gramOfA { gramUpper(n: L, k: inFeatures, a: ai, lda: aStride, c: gramOfA, ldc: L) }
            return exampleSquaredNorm(
                rows: L, e: ei, eStride: eStride, a: ai, aStride: aStride, inFeatures: inFeatures,
                outFeatures: outFeatures, gramOfA: gramOfA.map { UnsafePointer($0) }, scratch: shared.value.work + offsets[i])
        }
        for (i, made) in makeGram.enumerated() where made { gramIsMade[i] = true }
        return sums
    }

    /// ‖e_iᵀ a_i‖² for one example's `rows` rows of `e` [rows, OUT] and `a` [rows, IN]: the ghost
    /// norm ⟨a_i a_iᵀ, e_i e_iᵀ⟩ when the upper triangle `gramOfA` of a_i a_iᵀ is given (e_i e_iᵀ
    /// formed in `scratch`, L² floats), else by instantiating e_iᵀ a_i in `scratch` (IN·OUT floats).
    private func exampleSquaredNorm(rows L: Int, e: UnsafePointer<Float>, eStride: Int, a: UnsafePointer<Float>,
                                    aStride: Int, inFeatures: Int, outFeatures: Int,
                                    gramOfA: UnsafePointer<Float>?, scratch: UnsafeMutablePointer<Float>) -> Double {
        if let gramOfA {
            gramUpper(n: L, k: outFeatures, a: e, lda: eStride, c: scratch, ldc: L)
            return symmetricInnerProduct(upperOf: gramOfA, upperOf: UnsafePointer(scratch), size: L)
        }
        sgemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: L,
              a: e, lda: eStride, b: a, ldb: aStride, c: scratch, ldc: inFeatures)
        return dpft_sum_squares(scratch, inFeatures * outFeatures)
    }

    /// ⟨X, Y⟩ = Σ_jl X_jl Y_jl of two symmetric L×L matrices from their upper triangles (the
    /// Gram matrices come from `gramUpper`): the diagonal once, every entry above it twice.
    private func symmetricInnerProduct(upperOf x: UnsafePointer<Float>, upperOf y: UnsafePointer<Float>,
                                       size L: Int) -> Double {
        var diagonal = 0.0, above = 0.0
        for j in 0..<L {
            let row = j * L
            diagonal += Double(x[row + j]) * Double(y[row + j])
            for l in (j + 1)..<L { above += Double(x[row + l]) * Double(y[row + l]) }
        }
        return diagonal + 2 * above
    }

    /// Per example the sum v_i = Σ_{n in segment} e_n, its norm, and v_i [B, width] held as the
    /// book: B rows instead of a copy of e's N. The examples are spread over the cores
    /// (`onEachExample`).
    func rowSum(tensor: Int, e: UnsafePointer<Float>, eStride: Int, width: Int, rows: RowLayout) {
        scopes.checkOpen(tensor)
        perExampleBook(tensor: tensor, width: width, rows: rows) { vector, segment in
            addRows(into: vector, e: e, eStride: eStride, width: width, rows: segment.rows)
        }
    }

    /// Always instantiated: width floats per example, held as the book.
    func normWeight(tensor: Int, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, mean: UnsafePointer<Float>?,
                    rstd: UnsafePointer<Float>, width C: Int, rows: RowLayout) {
        scopes.checkOpen(tensor)
        perExampleBook(tensor: tensor, width: C, rows: rows) { g, segment in
            addNormWeightGradient(into: g, dout: dout, inp: inp, mean: mean, rstd: rstd, rows: segment.rows, channels: C)
        }
    }

    /// Per example g_i [width], zeroed, then `add(g_i, segment)`, its squared norm into the
    /// group's accumulator, and g [B, width] held as the book. The examples are spread over the
    /// cores (`onEachExample`): on the reference GPT's private step the biases' and norm
    /// weights' books were ≈ 1 % of the step on one core while the other idled.
    private func perExampleBook(tensor: Int, width: Int, rows: RowLayout,
                                add: (UnsafeMutablePointer<Float>, RowSegment) -> Void) {
        precondition(rows.batchSize == batchSize, "one segment per example")
        let group = groupOfTensor[tensor]
        let storage = spareStorage(count: batchSize * width)
        let segments = rows.segments
        let sums = withoutActuallyEscaping(add) { add in
            // Example i writes only row i of the book: disjoint, hence shareable.
            let shared = UncheckedSendable((base: storage.base, add: add))
            return Self.onEachExample(segments.count) { i in
                let segment = segments[i], vector = shared.value.base + segment.example * width
                vector.update(repeating: 0, count: width)
                guard segment.count > 0 else { return 0 }
                shared.value.add(vector, segment)
                return dpft_sum_squares(vector, width)
            }
        }
        for (segment, sum) in zip(segments, sums) { normSquared[segment.example * groupCount + group] += sum }
        hold(PendingBook(tensor: tensor, book: .perExample(gradients: storage.base, width: width, scale: 1), owned: storage),
             group: group)
    }

    /// Per example Σ_{t,s} [id_t = id_s] e_t·e_s; for a tied embedding also the cross term
    /// 2⟨H_i, E_i⟩ with the head's contribution H_i (kept in `headBooks`). The examples are
    /// spread over the cores, each on one BLAS thread with its own L × L scratch; each
    /// example's value comes from one thread in a fixed order, so it does not depend on the
    /// thread count. On GPT-2 small (B = 8, 2-core AMD EPYC) this took 24 ms a step one example
    /// at a time with BLAS threading each small product, 4 ms spread so.
    func tokenEmbedding(tensor: Int, e: UnsafePointer<Float>, width C: Int) {
        scopes.checkOpen(tensor)
        let group = groupOfTensor[tensor]
        let head = headBooks[tensor]
        precondition(head.map { $0.rows == rows } ?? true, "the tied head's rows are the embedding's rows")
        let segments = rows.segments
        var offsets: [Int] = [], total = 0  // each example's own L × L products
        for segment in segments {
            offsets.append(total)
            if head != nil { total += segment.count * segment.count }
        }
        // Each example writes only its own products: disjoint, hence shareable.
        let shared = UncheckedSendable((products: scratchBuffer(max(total, 1)), ids: UnsafePointer(ids!), head: head))
        let sums = Self.onEachExample(segments.count) { i in
            let (products, ids, head) = shared.value
            guard segments[i].count > 0 else { return 0 }
            var sum = Self.sameTokenProducts(e: e, width: C, segment: segments[i], ids: ids)
            if let head {
                sum += 2 * Self.tiedCrossTerm(head: (head.e, head.eStride, head.a, head.aStride), e: e, width: C,
                                              segment: segments[i], ids: ids, products: products + offsets[i])
            }
            return sum
        }
        for (segment, sum) in zip(segments, sums) where segment.count > 0 {
            normSquared[segment.example * groupCount + group] += sum
        }
        record(tensor: tensor, group: group, stable: false, rows: rows.rows, width: C,
               source: e, sourceStride: C) { e, _ in .scatter(e: e, width: C, positional: false) }
    }

    /// Σ_{t,s} [id_t = id_s] e_t·e_s over one example's rows: the squared norm of its scattered
    /// embedding gradient.
    private static func sameTokenProducts(e: UnsafePointer<Float>, width C: Int, segment: RowSegment,
                                          ids: UnsafePointer<Int32>) -> Double {
        let L = segment.count, first = segment.start
        var sum = 0.0
        for t in 0..<L {
            let et = e + (first + t) * C
            for s in t..<L where ids[first + s] == ids[first + t] {
                let es = e + (first + s) * C
                var dot = 0.0
                for c in 0..<C { dot += Double(et[c]) * Double(es[c]) }
                sum += (s == t ? 1 : 2) * dot
            }
        }
        return sum
    }

    /// ⟨H_i, E_i⟩ = Σ_t Σ_s dlogits[s, id_t] (h_s · e_t) over example i's rows, with
    /// P = h_i e_iᵀ [L, L] in `products` (h = the head's input, dlogits = its output gradient).
    private static func tiedCrossTerm(head: (e: UnsafePointer<Float>, eStride: Int, a: UnsafePointer<Float>, aStride: Int),
                                      e: UnsafePointer<Float>, width C: Int, segment: RowSegment,
                                      ids: UnsafePointer<Int32>, products: UnsafeMutablePointer<Float>) -> Double {
        let L = segment.count, first = segment.start
        sgemm(transposeA: false, transposeB: true, m: L, n: L, k: C,
              a: head.a + first * head.aStride, lda: head.aStride, b: e + first * C, ldb: C,
              c: products, ldc: L)
        var cross = 0.0
        for s in 0..<L {
            let dlogits = head.e + (first + s) * head.eStride
            for t in 0..<L { cross += Double(dlogits[Int(ids[first + t])]) * Double(products[s * L + t]) }
        }
        return cross
    }

    /// Row t of example i's gradient is e_it, so the norm² is Σ_t ‖e_it‖².
    func positionEmbedding(tensor: Int, e: UnsafePointer<Float>, width C: Int) {
        scopes.checkOpen(tensor)
        let group = groupOfTensor[tensor]
        for segment in rows.segments {  // an example's rows are contiguous, C apart
            normSquared[segment.example * groupCount + group] += dpft_sum_squares(e + segment.start * C, segment.count * C)
        }
        record(tensor: tensor, group: group, stable: false, rows: rows.rows, width: C,
               source: e, sourceStride: C) { e, _ in .scatter(e: e, width: C, positional: true) }
    }

    // MARK: Holding and closing

    /// Keeps a book for `group`, pointing at its source. A source in reused scratch is copied
    /// when the module scope closes unless the group closes first — so a linear's weight and
    /// bias (or LoRA A and B) in one group never copy anything.
    private func record(tensor: Int, group: Int, stable: Bool, rows: Int, width: Int,
                        source: UnsafePointer<Float>, sourceStride: Int,
                        make: @escaping (UnsafePointer<Float>, Int) -> Book) {
        var book = PendingBook(tensor: tensor, book: make(source, sourceStride), owned: nil)
        if !stable {
            book.unsecured = (rows, width, source, sourceStride)
            remake[PendingKey(group: group, index: pending[group].count)] = make
        }
        hold(book, group: group)
    }

    private struct PendingKey: Hashable { var group: Int, index: Int }
    private var remake: [PendingKey: (UnsafePointer<Float>, Int) -> Book] = [:]

    /// Copies the sources of books still pointing into scratch (at the end of the outermost
    /// module scope, before its scratch buffers are reused).
    private func secure() {
        for (key, make) in remake {
            var book = pending[key.group][key.index]
            guard let source = book.unsecured else { continue }
            let storage = copy(rows: source.rows, width: source.width, of: source.source, stride: source.stride)
            book.book = make(storage.base, source.width)
            book.owned = storage
            book.unsecured = nil
            pending[key.group][key.index] = book
        }
        remake.removeAll(keepingCapacity: true)
    }

    /// `rows` rows of `width` floats of `source` into a counted book buffer, packed.
    private func copy(rows: Int, width: Int, of source: UnsafePointer<Float>, stride: Int) -> TensorStorage {
        let storage = spareStorage(count: rows * width)
        for n in 0..<rows {
            (storage.base + n * width).update(from: source + n * stride, count: width)
        }
        bytesHeld += storage.count * MemoryLayout<Float>.size
        peakBytesHeld = max(peakBytesHeld, bytesHeld)
        return storage
    }

    /// The model recomputes its activations and is about to overwrite the buffers that pending
    /// linear books' inputs `a` point into (between two blocks' backward passes): copies each
    /// such input once, points its books at the copy, and forgets the Grams made from it.
    /// Groups that close within a block (layer-wise, per-block) have nothing pending here;
    /// all-layer pays one copy per distinct input.
    func sharedActivationsWillChange() { secureInputs { _ in true } }

    /// As `sharedActivationsWillChange`, for the books whose input lies in `buffer`; the Gram
    /// cache is forgotten whatever its source (a pointer into `buffer` will hold new rows).
    func sharedBufferWillChange(_ buffer: UnsafeBufferPointer<Float>) {
        guard let base = buffer.baseAddress else { return }
        let range = UnsafePointer(base)..<UnsafePointer(base + buffer.count)
        secureInputs { range.contains($0) }
    }

    private func secureInputs(where changes: (UnsafePointer<Float>) -> Bool) {
        precondition(scopes.depth == 0 && remake.isEmpty, "shared activations changed inside a module scope")
        gramsSource = nil
        struct Source: Hashable { var a: UnsafePointer<Float>, stride: Int, rows: Int, width: Int }
        var copies: [Source: TensorStorage] = [:]
        for group in pending.indices {
            for index in pending[group].indices where pending[group][index].input == nil {
                guard case .outerProduct(let e, let eStride, let a, let aStride, let inFeatures, let outFeatures,
                                         let scale, let rows) = pending[group][index].book, changes(a) else { continue }
                let source = Source(a: a, stride: aStride, rows: rows.rows, width: inFeatures)
                let storage = copies[source] ?? copy(rows: rows.rows, width: inFeatures, of: a, stride: aStride)
                copies[source] = storage
                pending[group][index].input = storage
                pending[group][index].book = .outerProduct(e: e, eStride: eStride, a: storage.base, aStride: inFeatures,
                                                           inFeatures: inFeatures, outFeatures: outFeatures,
                                                           scale: scale, rows: rows)
            }
        }
    }

    /// Uncounts a closed book's buffer and keeps it for reuse (`spareStorage`).
    private func release(_ owned: TensorStorage) {
        bytesHeld -= owned.count * MemoryLayout<Float>.size
        spares.append(owned)
    }

    private func hold(_ book: PendingBook, group: Int) {
        if let owned = book.owned {
            bytesHeld += owned.count * MemoryLayout<Float>.size
            peakBytesHeld = max(peakBytesHeld, bytesHeld)
        }
        pending[group].append(book)
        remaining[group] -= 1
        precondition(remaining[group] >= 0, "group \(group) received more contributions than its members")
        if remaining[group] == 0 { close(group) }
    }

    /// All contributions of `group` are in: clip factors, clipped sums, free the books.
    private func close(_ group: Int) {
        let K = groupCount
        for i in 0..<batchSize {
            clipFactors[i * K + group] = clipping.factor(norm: normSquared[i * K + group].squareRoot(),
                                                         threshold: thresholds[group])
        }
        let factors = (0..<batchSize).map { Float(clipFactors[$0 * K + group]) }
        for pendingBook in pending[group] {
            apply(pendingBook.book, factors: factors, target: targets[pendingBook.tensor])
            if let owned = pendingBook.owned { release(owned) }
        }
        for index in pending[group].indices { remake[PendingKey(group: group, index: index)] = nil }
        let inputs = pending[group].compactMap(\.input)
        pending[group].removeAll()
        // An input copy is shared by books of one input, possibly in other groups: it goes
        // with the last book that reads it.
        for (index, input) in inputs.enumerated() where !inputs[..<index].contains(where: { $0 === input })
            && !pending.joined().contains(where: { $0.input === input }) {
            release(input)
        }
    }

    /// Adds the clipped sum of one book into `target`. An example with clip factor 0 (a
    /// non-finite norm) contributes exactly nothing: its rows are skipped, or zeroed in both GEMM
    /// operands, never multiplied by 0 (0 · NaN = NaN would poison the whole group's sum).
    private func apply(_ book: Book, factors: [Float], target: UnsafeMutablePointer<Float>) {
        switch book {
        case .outerProduct(let e, let eStride, let a, let aStride, let inFeatures, let outFeatures, let scale, let rows):
            let rowFactors = rows.rowFactors(factors)
            clippedOuterProduct(target: target, e: e, eStride: eStride, a: a, aStride: aStride, inFeatures: inFeatures,
                                outFeatures: outFeatures, scale: scale, rowFactors: rowFactors)
        case .perExample(let gradients, let width, let scale):
            addExampleGradients(into: target, gradients: gradients, width: width, factors: factors.map { $0 * scale })
        case .scatter(let e, let width, let positional):
            for segment in rows.segments where factors[segment.example] != 0 {
                addScatteredRows(into: target, e: e, width: width, segment: segment, ids: ids!, positional: positional,
                                 factor: factors[segment.example])
            }
        }
    }

    /// target += scale · (diag(c) e)ᵀ a over the rows of `rowFactors` (c), one GEMM:
    /// (diag(c) e)ᵀ a = eᵀ (diag(c) a), so scale the narrower of e and a. Rows with c = 0
    /// (padding, removed examples) are zero in the scaled operand and, where they hold a
    /// non-finite value, in a copy of the other operand too, so that they add exact zeros.
    private func clippedOuterProduct(target: UnsafeMutablePointer<Float>, e: UnsafePointer<Float>, eStride: Int,
                                     a: UnsafePointer<Float>, aStride: Int, inFeatures: Int, outFeatures: Int,
                                     scale: Float, rowFactors: [Float]) {
        let N = rowFactors.count
        guard N > 0 else { return }
        if outFeatures <= inFeatures {
            let scaled = scaledRows(e, stride: eStride, width: outFeatures, rowFactors: rowFactors)
            let (other, otherStride) = finiteRows(a, stride: aStride, width: inFeatures, rowFactors: rowFactors)
            sgemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: N, alpha: scale,
                  a: scaled, lda: outFeatures, b: other, ldb: otherStride, beta: 1, c: target, ldc: inFeatures)
        } else {
            let scaled = scaledRows(a, stride: aStride, width: inFeatures, rowFactors: rowFactors)
            let (other, otherStride) = finiteRows(e, stride: eStride, width: outFeatures, rowFactors: rowFactors)
            sgemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: N, alpha: scale,
                  a: other, lda: otherStride, b: scaled, ldb: inFeatures, beta: 1, c: target, ldc: inFeatures)
        }
    }

    /// diag(c) x into `scratch` ([N, width], packed); a row with c = 0 is written as zeros.
    private func scaledRows(_ x: UnsafePointer<Float>, stride: Int, width: Int,
                            rowFactors: [Float]) -> UnsafePointer<Float> {
        let scaled = scratchBuffer(rowFactors.count * width)
        for (n, c) in rowFactors.enumerated() {
            let source = x + n * stride, row = scaled + n * width
            if c == 0 {
                row.update(repeating: 0, count: width)
            } else {
                for j in 0..<width { row[j] = c * source[j] }
            }
        }
        return UnsafePointer(scaled)
    }

    /// `x` itself when every row with c = 0 is finite (the common case: padding rows hold finite
    /// activations and zero gradients); otherwise a copy with those rows zeroed.
    private func finiteRows(_ x: UnsafePointer<Float>, stride: Int, width: Int,
                            rowFactors: [Float]) -> (UnsafePointer<Float>, Int) {
        var poisoned = false
        for (n, c) in rowFactors.enumerated() where c == 0 && !poisoned {
            let row = x + n * stride
            for j in 0..<width where !row[j].isFinite { poisoned = true }
        }
        guard poisoned else { return (x, stride) }
        if maskedRows.count < rowFactors.count * width { maskedRows = TensorStorage(count: rowFactors.count * width) }
        let copy = maskedRows.base
        for (n, c) in rowFactors.enumerated() {
            if c == 0 {
                (copy + n * width).update(repeating: 0, count: width)
            } else {
                (copy + n * width).update(from: x + n * stride, count: width)
            }
        }
        return (UnsafePointer(copy), width)
    }
}
