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
/// The model's backward hands every trainable tensor's contribution to `BookKeeper` instead of
/// forming the weight gradient. The keeper adds that contribution's per-example squared norms
/// to its group's accumulator at once, and keeps the contribution's "books" — the layer's
/// output gradient `e` (copied when it lives in reused scratch) and a pointer to its input
/// activation `a` — only until every member of the group has contributed. Then it computes
/// the group's clip factors, adds `(diag(C) e)ᵀ a` (one GEMM) into the gradient buffer and
/// frees the books. Groups that close early (layer-wise, per-block) hold few books; all-layer
/// holds them all until the end of the backward pass.
final class BookKeeper {
    /// The rows of one example inside a compact gathered buffer (an MoE expert's tokens):
    /// `count` rows from row `start`. An example with no rows there has count 0.
    struct Segment: Equatable, Sendable {
        var start: Int
        var count: Int
    }

    /// One deferred clipped-sum job.
    private enum Book {
        /// target += scale · Σ_i C_i e_iᵀ a_i (a linear weight, LoRA A or B, a head).
        case outerProduct(e: UnsafePointer<Float>, eStride: Int, a: UnsafePointer<Float>, aStride: Int,
                          inFeatures: Int, outFeatures: Int, scale: Float)
        /// The same over `rows` gathered rows whose example i owns `segments[i]` (MoE experts).
        case segmentedOuterProduct(e: UnsafePointer<Float>, eStride: Int, a: UnsafePointer<Float>, aStride: Int,
                                   inFeatures: Int, outFeatures: Int, scale: Float, segments: [Segment], rows: Int)
        /// target += Σ_i C_i Σ_t e_it (a bias, a LayerNorm bias).
        case rowSum(e: UnsafePointer<Float>, eStride: Int, width: Int)
        /// target += Σ_i C_i g_i with per-example gradients g [B, width] (norm weights).
        case perExample(gradients: UnsafePointer<Float>, width: Int)
        /// target[ids[n]] += C_i e_n (token embedding) or target[t] += C_i e_n (positions).
        case scatter(e: UnsafePointer<Float>, width: Int, positional: Bool)
    }

    private struct PendingBook {
        var tensor: Int
        var book: Book
        var owned: TensorStorage?  // a copy of e when the source was scratch
        /// Source to copy at the next `secure()` (rows, width, source, stride) when the book
        /// still points into scratch that later backward steps will overwrite.
        var unsecured: (rows: Int, width: Int, source: UnsafePointer<Float>, stride: Int)?
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
    private(set) var batchSize = 0
    private(set) var sequenceLength = 0
    private var lengths: [Int] = []
    private var ids: UnsafePointer<Int32>?
    private var remaining: [Int]
    private var pending: [[PendingBook]]
    /// Per-example squared norm per group, [B, K].
    private(set) var normSquared: [Double] = []
    /// Clip factors, [B, K], filled as groups close.
    private(set) var clipFactors: [Double] = []
    /// The tied head's books, kept for the embedding's cross term.
    private var headBooks: [Int: (e: UnsafePointer<Float>, eStride: Int, a: UnsafePointer<Float>, aStride: Int)] = [:]

    /// Bytes of book copies currently held, and the largest value seen since `resetPeak()`.
    private(set) var bytesHeld = 0
    private(set) var peakBytesHeld = 0

    private var scratch = TensorStorage(count: 0)
    /// Per-example Gram matrices a_i a_iᵀ of the last input seen: q/k/v (and gate/up) share
    /// their input, so their ghost norms share these.
    private var grams = TensorStorage(count: 0)
    private var gramsSource: (pointer: UnsafePointer<Float>, stride: Int, width: Int)?
    /// The same for gathered rows (an expert's w1 and w3 share their input): per-example Gram
    /// matrices of the segments, made on first use (`segmentGramOffsets[i]` < 0 = not yet).
    private var segmentGrams = TensorStorage(count: 0)
    private var segmentGramsSource: (pointer: UnsafePointer<Float>, stride: Int, width: Int, segments: [Segment])?
    private var segmentGramOffsets: [Int] = []

    var groupCount: Int { thresholds.count }

    init(clipping: ClippingFunction, thresholds: [Double], groupOfTensor: [Int],
         targets: [UnsafeMutablePointer<Float>], tiedTensor: Int?) {
        self.clipping = clipping
        self.thresholds = thresholds
        self.groupOfTensor = groupOfTensor
        self.targets = targets
        var expected = [Int](repeating: 0, count: thresholds.count)
        for (tensor, group) in groupOfTensor.enumerated() { expected[group] += tensor == tiedTensor ? 2 : 1 }
        expectedContributions = expected
        remaining = expected
        pending = Array(repeating: [], count: thresholds.count)
    }

    func resetPeak() { peakBytesHeld = bytesHeld }

    /// Starts a backward pass over a micro-batch.
    func begin(batchSize: Int, sequenceLength: Int, lengths: [Int], ids: UnsafePointer<Int32>) {
        precondition(pending.allSatisfy(\.isEmpty), "a previous backward pass left books open")
        self.batchSize = batchSize
        self.sequenceLength = sequenceLength
        self.lengths = lengths
        self.ids = ids
        remaining = expectedContributions
        normSquared = [Double](repeating: 0, count: batchSize * groupCount)
        clipFactors = [Double](repeating: 0, count: batchSize * groupCount)
        headBooks = [:]
        gramsSource = nil
        segmentGramsSource = nil
    }

    /// Fills `grams` with a_i a_iᵀ (L_i × L_i, packed one after another) unless cached.
    private func inputGrams(_ a: UnsafePointer<Float>, stride: Int, width: Int) -> UnsafeMutablePointer<Float> {
        if let source = gramsSource, source.pointer == a, source.stride == stride, source.width == width {
            return grams.base
        }
        let total = lengths.reduce(0) { $0 + $1 * $1 }
        if grams.count < total { grams = TensorStorage(count: total) }
        var offset = 0
        for i in 0..<batchSize {
            let L = lengths[i]
            let ai = a + i * sequenceLength * stride
            sgemm(transposeA: false, transposeB: true, m: L, n: L, k: width,
                  a: ai, lda: stride, b: ai, ldb: stride, c: grams.base + offset, ldc: L)
            offset += L * L
        }
        gramsSource = (a, stride, width)
        return grams.base
    }

    /// True when every group has closed (all clipped sums formed).
    var isComplete: Bool { remaining.allSatisfy { $0 == 0 } }

    private func scratchBuffer(_ count: Int) -> UnsafeMutablePointer<Float> {
        if scratch.count < count { scratch = TensorStorage(count: count) }
        return scratch.base
    }

    // MARK: Contributions

    /// A weight-like contribution `scale · Σ_i e_iᵀ a_i` (linear weight, LoRA A/B, head).
    /// `eIsStable` says `e` stays valid until the end of the backward pass (no copy needed).
    func outerProduct(tensor: Int, e: UnsafePointer<Float>, eStride: Int, a: UnsafePointer<Float>, aStride: Int,
                      inFeatures: Int, outFeatures: Int, scale: Float = 1, eIsStable: Bool = false,
                      isTiedHead: Bool = false) {
        let group = groupOfTensor[tensor]
        let T = sequenceLength
        // ghost norm when 2T² < p·d (fastDP's rule), else instantiate e_iᵀ a_i
        let ghost = 2 * T * T < inFeatures * outFeatures
        let squaredScale = Double(scale) * Double(scale)
        let gramsOfA = ghost ? inputGrams(a, stride: aStride, width: inFeatures) : nil
        var gramOffset = 0
        for i in 0..<batchSize {
            let L = lengths[i]
            defer { gramOffset += L * L }
            guard L > 0 else { continue }
            let sum = exampleSquaredNorm(rows: L, e: e + i * T * eStride, eStride: eStride,
                                         a: a + i * T * aStride, aStride: aStride, inFeatures: inFeatures,
                                         outFeatures: outFeatures, gramOfA: gramsOfA.map { $0 + gramOffset })
            normSquared[i * groupCount + group] += squaredScale * sum
        }
        if isTiedHead { headBooks[tensor] = (e, eStride, a, aStride) }
        record(tensor: tensor, group: group, stable: eIsStable, rows: batchSize * T, width: outFeatures,
               source: e, sourceStride: eStride) { e, stride in
            .outerProduct(e: e, eStride: stride, a: a, aStride: aStride, inFeatures: inFeatures,
                          outFeatures: outFeatures, scale: scale)
        }
    }

    /// ‖e_iᵀ a_i‖² for one example's `rows` rows of `e` [rows, OUT] and `a` [rows, IN]: the ghost
    /// norm ⟨a_i a_iᵀ, e_i e_iᵀ⟩ when the example's Gram matrix `gramOfA` is given, else by
    /// instantiating e_iᵀ a_i.
    private func exampleSquaredNorm(rows L: Int, e: UnsafePointer<Float>, eStride: Int, a: UnsafePointer<Float>,
                                    aStride: Int, inFeatures: Int, outFeatures: Int,
                                    gramOfA: UnsafePointer<Float>?) -> Double {
        if let gramOfA {
            let gramE = scratchBuffer(L * L)
            sgemm(transposeA: false, transposeB: true, m: L, n: L, k: outFeatures,
                  a: e, lda: eStride, b: e, ldb: eStride, c: gramE, ldc: L)
            var partial: Float = 0
            for j in 0..<(L * L) { partial += gramOfA[j] * gramE[j] }
            return Double(partial)
        }
        let gradient = scratchBuffer(inFeatures * outFeatures)
        sgemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: L,
              a: e, lda: eStride, b: a, ldb: aStride, c: gradient, ldc: inFeatures)
        var sum = 0.0
        for j in 0..<(inFeatures * outFeatures) { sum += Double(gradient[j] * gradient[j]) }
        return sum
    }

    /// A weight-like contribution over gathered rows (an MoE expert's weight or LoRA tensor):
    /// `scale · Σ_i e_iᵀ a_i` where example i's rows are `segments[i]` of the `rows` rows of
    /// `e` and `a`. Per example, with L_i = segments[i].count: ghost norm when 2·L_i² < p·d,
    /// else instantiation; L_i = 0 contributes 0. `e` is copied at the next `secure()` unless
    /// the group closes first.
    func outerProduct(tensor: Int, e: UnsafePointer<Float>, eStride: Int, a: UnsafePointer<Float>, aStride: Int,
                      inFeatures: Int, outFeatures: Int, scale: Float = 1, segments: [Segment], rows: Int) {
        precondition(segments.count == batchSize, "one segment per example")
        let group = groupOfTensor[tensor]
        let squaredScale = Double(scale) * Double(scale)
        for (i, segment) in segments.enumerated() where segment.count > 0 {
            let L = segment.count
            let ghost = 2 * L * L < inFeatures * outFeatures
            let sum = exampleSquaredNorm(
                rows: L, e: e + segment.start * eStride, eStride: eStride, a: a + segment.start * aStride,
                aStride: aStride, inFeatures: inFeatures, outFeatures: outFeatures,
                gramOfA: ghost ? segmentGram(a, stride: aStride, width: inFeatures, segments: segments, example: i) : nil)
            normSquared[i * groupCount + group] += squaredScale * sum
        }
        record(tensor: tensor, group: group, stable: false, rows: rows, width: outFeatures,
               source: e, sourceStride: eStride) { e, stride in
            .segmentedOuterProduct(e: e, eStride: stride, a: a, aStride: aStride, inFeatures: inFeatures,
                                   outFeatures: outFeatures, scale: scale, segments: segments, rows: rows)
        }
    }

    /// a_i a_iᵀ (L_i × L_i) of example i's segment of `a`, cached while `a` and the segments stay.
    private func segmentGram(_ a: UnsafePointer<Float>, stride: Int, width: Int, segments: [Segment],
                             example i: Int) -> UnsafePointer<Float> {
        if let source = segmentGramsSource, source.pointer == a, source.stride == stride, source.width == width,
           source.segments == segments {
            if segmentGramOffsets[i] >= 0 { return UnsafePointer(segmentGrams.base + segmentGramOffsets[i]) }
        } else {
            let total = segments.reduce(0) { $0 + $1.count * $1.count }
            if segmentGrams.count < total { segmentGrams = TensorStorage(count: total) }
            segmentGramsSource = (a, stride, width, segments)
            segmentGramOffsets = [Int](repeating: -1, count: segments.count)
        }
        // example i's place: after the Gram matrices of the examples before it
        let offset = segments[..<i].reduce(0) { $0 + $1.count * $1.count }
        let L = segments[i].count, ai = a + segments[i].start * stride
        sgemm(transposeA: false, transposeB: true, m: L, n: L, k: width,
              a: ai, lda: stride, b: ai, ldb: stride, c: segmentGrams.base + offset, ldc: L)
        segmentGramOffsets[i] = offset
        return UnsafePointer(segmentGrams.base + offset)
    }

    /// A bias-like contribution `Σ_i Σ_t e_it` (linear bias, LayerNorm bias).
    func rowSum(tensor: Int, e: UnsafePointer<Float>, eStride: Int, width: Int) {
        let group = groupOfTensor[tensor]
        let T = sequenceLength
        let vector = scratchBuffer(width)
        for i in 0..<batchSize where lengths[i] > 0 {
            vector.update(repeating: 0, count: width)
            for t in 0..<lengths[i] {
                let row = e + (i * T + t) * eStride
                for c in 0..<width { vector[c] += row[c] }
            }
            var sum = 0.0
            for c in 0..<width { sum += Double(vector[c] * vector[c]) }
            normSquared[i * groupCount + group] += sum
        }
        record(tensor: tensor, group: group, stable: false, rows: batchSize * T, width: width,
               source: e, sourceStride: eStride) { e, stride in .rowSum(e: e, eStride: stride, width: width) }
    }

    /// A norm weight: per-example gradient `Σ_t dout_it ⊙ x̂_it`, with x̂ = (inp − mean)·rstd
    /// (LayerNorm, `mean` given) or inp·rstd (RMSNorm). Always instantiated (width floats per example).
    func normWeight(tensor: Int, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>,
                    mean: UnsafePointer<Float>?, rstd: UnsafePointer<Float>, width C: Int) {
        let group = groupOfTensor[tensor]
        let T = sequenceLength
        let storage = TensorStorage(count: batchSize * C)
        let gradients = storage.base
        for i in 0..<batchSize {
            let g = gradients + i * C
            for t in 0..<lengths[i] {
                let n = i * T + t
                let m = mean?[n] ?? 0, s = rstd[n]
                let x = inp + n * C, d = dout + n * C
                for c in 0..<C { g[c] += d[c] * (x[c] - m) * s }
            }
            var sum = 0.0
            for c in 0..<C { sum += Double(g[c] * g[c]) }
            normSquared[i * groupCount + group] += sum
        }
        hold(PendingBook(tensor: tensor, book: .perExample(gradients: gradients, width: C), owned: storage), group: group)
    }

    /// The token embedding: per example Σ_{t,s} [id_t = id_s] e_t·e_s; for a tied embedding
    /// also the cross term 2⟨H_i, E_i⟩ with the head's contribution H_i (kept in `headBooks`).
    func tokenEmbedding(tensor: Int, e: UnsafePointer<Float>, width C: Int) {
        let group = groupOfTensor[tensor]
        let T = sequenceLength
        let ids = self.ids!
        let head = headBooks[tensor]
        for i in 0..<batchSize where lengths[i] > 0 {
            let L = lengths[i]
            var sum = 0.0
            for t in 0..<L {
                let et = e + (i * T + t) * C
                for s in t..<L where ids[i * T + s] == ids[i * T + t] {
                    let es = e + (i * T + s) * C
                    var dot: Float = 0
                    for c in 0..<C { dot += et[c] * es[c] }
                    sum += (s == t ? 1 : 2) * Double(dot)
                }
            }
            if let head {
                // ⟨H_i, E_i⟩ = Σ_t Σ_s dlogits[s, id_t] (h_s · e_t), with P = h_i e_iᵀ [L, L]
                let products = scratchBuffer(L * L)
                sgemm(transposeA: false, transposeB: true, m: L, n: L, k: C,
                      a: head.a + i * T * head.aStride, lda: head.aStride, b: e + i * T * C, ldb: C,
                      c: products, ldc: L)
                var cross = 0.0
                for s in 0..<L {
                    let dlogits = head.e + (i * T + s) * head.eStride
                    for t in 0..<L { cross += Double(dlogits[Int(ids[i * T + t])] * products[s * L + t]) }
                }
                sum += 2 * cross
            }
            normSquared[i * groupCount + group] += sum
        }
        record(tensor: tensor, group: group, stable: false, rows: batchSize * T, width: C,
               source: e, sourceStride: C) { e, _ in .scatter(e: e, width: C, positional: false) }
    }

    /// Learned positions: row t of example i's gradient is e_it, so the norm² is Σ_t ‖e_it‖².
    func positionEmbedding(tensor: Int, e: UnsafePointer<Float>, width C: Int) {
        let group = groupOfTensor[tensor]
        let T = sequenceLength
        for i in 0..<batchSize {
            var sum = 0.0
            for t in 0..<lengths[i] {
                let row = e + (i * T + t) * C
                for c in 0..<C { sum += Double(row[c] * row[c]) }
            }
            normSquared[i * groupCount + group] += sum
        }
        record(tensor: tensor, group: group, stable: false, rows: batchSize * T, width: C,
               source: e, sourceStride: C) { e, _ in .scatter(e: e, width: C, positional: true) }
    }

    // MARK: Holding and closing

    /// Keeps a book for `group`, pointing at its source. A source in reused scratch is copied
    /// at the next `secure()` unless the group closes first — so a linear's weight and bias
    /// (or LoRA A and B) in one group never copy anything.
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

    /// Copies the sources of books still pointing into scratch. The model calls this after
    /// each module's contributions, before its scratch buffers are reused.
    func secure() {
        for (key, make) in remake {
            var book = pending[key.group][key.index]
            guard let source = book.unsecured else { continue }
            let storage = TensorStorage(count: source.rows * source.width)
            for n in 0..<source.rows {
                (storage.base + n * source.width).update(from: source.source + n * source.stride, count: source.width)
            }
            book.book = make(storage.base, source.width)
            book.owned = storage
            book.unsecured = nil
            pending[key.group][key.index] = book
            bytesHeld += storage.count * MemoryLayout<Float>.size
        }
        peakBytesHeld = max(peakBytesHeld, bytesHeld)
        remake.removeAll(keepingCapacity: true)
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
            if let owned = pendingBook.owned { bytesHeld -= owned.count * MemoryLayout<Float>.size }
        }
        for index in pending[group].indices { remake[PendingKey(group: group, index: index)] = nil }
        pending[group].removeAll()
    }

    /// Adds the clipped sum of one book into `target`.
    private func apply(_ book: Book, factors: [Float], target: UnsafeMutablePointer<Float>) {
        let T = sequenceLength, N = batchSize * T
        switch book {
        case .outerProduct(let e, let eStride, let a, let aStride, let inFeatures, let outFeatures, let scale):
            clippedOuterProduct(target: target, e: e, eStride: eStride, a: a, aStride: aStride, inFeatures: inFeatures,
                                outFeatures: outFeatures, scale: scale, rows: N) { factors[$0 / T] }
        case .segmentedOuterProduct(let e, let eStride, let a, let aStride, let inFeatures, let outFeatures, let scale,
                                    let segments, let rows):
            var rowFactors = [Float](repeating: 0, count: rows)
            for (i, segment) in segments.enumerated() {
                for row in segment.start..<(segment.start + segment.count) { rowFactors[row] = factors[i] }
            }
            clippedOuterProduct(target: target, e: e, eStride: eStride, a: a, aStride: aStride, inFeatures: inFeatures,
                                outFeatures: outFeatures, scale: scale, rows: rows) { rowFactors[$0] }
        case .rowSum(let e, let eStride, let width):
            for n in 0..<N {
                let c = factors[n / T], row = e + n * eStride
                for o in 0..<width { target[o] += c * row[o] }
            }
        case .perExample(let gradients, let width):
            for i in 0..<batchSize {
                let c = factors[i], row = gradients + i * width
                for o in 0..<width { target[o] += c * row[o] }
            }
        case .scatter(let e, let width, let positional):
            let ids = self.ids!
            for n in 0..<N {
                let c = factors[n / T], row = e + n * width
                let destination = target + (positional ? n % T : Int(ids[n])) * width
                for o in 0..<width { destination[o] += c * row[o] }
            }
        }
    }

    /// target += scale · (diag(c) e)ᵀ a over `rows` rows, c = `factor(row)`:
    /// (diag(c) e)ᵀ a = eᵀ (diag(c) a), so scale the narrower of e and a, then one GEMM.
    private func clippedOuterProduct(target: UnsafeMutablePointer<Float>, e: UnsafePointer<Float>, eStride: Int,
                                     a: UnsafePointer<Float>, aStride: Int, inFeatures: Int, outFeatures: Int,
                                     scale: Float, rows N: Int, factor: (Int) -> Float) {
        if outFeatures <= inFeatures {
            let scaled = scratchBuffer(N * outFeatures)
            for n in 0..<N {
                let c = factor(n), source = e + n * eStride, row = scaled + n * outFeatures
                for o in 0..<outFeatures { row[o] = c * source[o] }
            }
            sgemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: N, alpha: scale,
                  a: scaled, lda: outFeatures, b: a, ldb: aStride, beta: 1, c: target, ldc: inFeatures)
        } else {
            let scaled = scratchBuffer(N * inFeatures)
            for n in 0..<N {
                let c = factor(n), source = a + n * aStride, row = scaled + n * inFeatures
                for d in 0..<inFeatures { row[d] = c * source[d] }
            }
            sgemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: N, alpha: scale,
                  a: e, lda: eStride, b: scaled, ldb: inFeatures, beta: 1, c: target, ldc: inFeatures)
        }
    }
}
