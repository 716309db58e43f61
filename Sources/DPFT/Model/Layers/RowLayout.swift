// B = examples in the micro-batch, T = padded sequence length, L_i = rows of example i.

/// The rows of one example inside a row buffer: `count` rows from row `start`. A padded
/// example is the segment (i·T, L_i, i) of the model's [B, T] rows; an MoE expert's example is
/// the run of its tokens inside the expert's gathered rows. An example with no rows there has
/// count 0.
struct RowSegment: Equatable, Sendable {
    var start: Int
    var count: Int
    var example: Int

    var rows: Range<Int> { start..<(start + count) }
}

/// How a buffer's rows belong to the examples of a micro-batch: what per-example norms and
/// clipped sums need to know about a layer's input and output gradient rows. Rows outside every
/// segment (padding) belong to no example; their output gradient is zero.
struct RowLayout: Equatable, Sendable {
    /// One segment per example, `segments[i].example == i`.
    var segments: [RowSegment]
    /// Rows in the buffer (segments and padding).
    var rows: Int
    /// The padded length T when the rows are the model's [B, T] layout; nil for gathered rows.
    /// fastDP's rule (ghost norm when 2T² < p·d) is decided on T for every example of a padded
    /// batch, and on each segment's own row count for gathered rows.
    var paddedLength: Int?

    /// The model's padded [B, T] rows: example i owns rows i·T ..< i·T + L_i.
    init(paddedLengths lengths: [Int], sequenceLength T: Int) {
        segments = lengths.enumerated().map { RowSegment(start: $0.offset * T, count: $0.element, example: $0.offset) }
        rows = lengths.count * T
        paddedLength = T
    }

    /// Gathered rows (an MoE expert's slice): `segments[i]` are example i's rows among `rows`.
    init(gathered segments: [RowSegment], rows: Int) {
        precondition(segments.enumerated().allSatisfy { $0.element.example == $0.offset }, "one segment per example, in order")
        self.segments = segments
        self.rows = rows
        paddedLength = nil
    }

    var batchSize: Int { segments.count }

    /// The row count on which fastDP's ghost-or-instantiate rule is decided for `segment`.
    func ruleLength(of segment: RowSegment) -> Int { paddedLength ?? segment.count }

    /// Each row's factor: its example's `factors[i]`, 0 for padding rows.
    func rowFactors(_ factors: [Float]) -> [Float] {
        var result = [Float](repeating: 0, count: rows)
        for segment in segments {
            for row in segment.rows { result[row] = factors[segment.example] }
        }
        return result
    }
}

/// target += factor · Σ_{n in rows} e_n   (rows of e are `eStride` apart, `width` wide)
func addRows(into target: UnsafeMutablePointer<Float>, e: UnsafePointer<Float>, eStride: Int, width: Int,
             rows: Range<Int>, factor: Float = 1) {
    for n in rows {
        let row = e + n * eStride
        for o in 0..<width { target[o] += factor * row[o] }
    }
}

/// One example's rows of `e` [rows, C] scattered into a table, scaled by `factor`: row n goes to
/// row `ids[n]` (a token embedding) or to its position n − segment.start (learned positions).
func addScatteredRows(into target: UnsafeMutablePointer<Float>, e: UnsafePointer<Float>, width C: Int,
                      segment: RowSegment, ids: UnsafePointer<Int32>, positional: Bool, factor: Float = 1) {
    for n in segment.rows {
        let row = e + n * C
        let destination = target + (positional ? n - segment.start : Int(ids[n])) * C
        for o in 0..<C { destination[o] += factor * row[o] }
    }
}
