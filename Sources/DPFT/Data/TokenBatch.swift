/// A right-padded batch of token sequences with their labels (DESIGN.md §7).
///
/// Labels are aligned with the ids, as in HF: the logits at position t are scored against
/// `labels[t + 1]`; −100 marks a token that is not trained on. Padding positions get id 0 and
/// label −100.
public struct TokenBatch: Sendable {
    /// Label value meaning "not trained on".
    public static let ignoredLabel: Int32 = -100

    public let batchSize: Int       // B
    public let sequenceLength: Int  // T (the longest example, or the length asked for)
    /// [B · T] token ids, row-major.
    public private(set) var ids: [Int32]
    /// [B · T] labels aligned with ids.
    public private(set) var labels: [Int32]
    /// Real (unpadded) length of each example.
    public let lengths: [Int]

    /// Builds a batch; `labels` nil means "train on every token" (labels = ids).
    /// Examples longer than `sequenceLength` are an error of the caller (truncate first).
    public init(examples: [(ids: [Int], labels: [Int]?)], sequenceLength: Int? = nil) {
        let T = sequenceLength ?? max(1, examples.map(\.ids.count).max() ?? 1)
        batchSize = examples.count
        self.sequenceLength = T
        var ids = [Int32](repeating: 0, count: examples.count * T)
        var labels = [Int32](repeating: Self.ignoredLabel, count: examples.count * T)
        for (b, example) in examples.enumerated() {
            precondition(example.ids.count <= T, "example \(b) has \(example.ids.count) tokens; T = \(T)")
            precondition(example.labels == nil || example.labels!.count == example.ids.count,
                         "example \(b): labels and input_ids differ in length")
            for (t, id) in example.ids.enumerated() {
                ids[b * T + t] = Int32(id)
                labels[b * T + t] = Int32(example.labels?[t] ?? id)
            }
        }
        self.ids = ids
        self.labels = labels
        lengths = examples.map(\.ids.count)
    }

    /// The target of each row under HF's shift: row (b, t) is scored against labels[b, t + 1]
    /// (−100 past the end). Writes B·T values.
    func shiftedTargets(into targets: UnsafeMutablePointer<Int32>) {
        let T = sequenceLength
        for b in 0..<batchSize {
            for t in 0..<T {
                targets[b * T + t] = t + 1 < lengths[b] ? labels[b * T + t + 1] : Self.ignoredLabel
            }
        }
    }
}
