/// Physical micro-batches of a logical batch (DESIGN.md §3): consecutive runs of at most `size`
/// examples, each padded into one `TokenBatch`. The one loop over micro-batches that training
/// (private and non-private), evaluation and `dpft norms` share.
///
/// B = examples in one micro-batch (≤ size), T = its longest example.
public struct MicroBatches: Sequence, IteratorProtocol {
    /// One micro-batch and where it sits in the logical batch.
    public struct Element {
        /// The examples padded to their longest: [B, T].
        public let batch: TokenBatch
        /// Which examples (indices into the example list), in order.
        public let indices: ArraySlice<Int>
        /// Σ of the examples' unpadded lengths (what tokens/s counts).
        public let tokens: Int
        /// Examples of the logical batch done once this micro-batch is (for progress).
        public let done: Int
    }

    private let examples: [TokenizedExample]
    private let order: [Int]
    private let size: Int
    private var start = 0

    /// The examples `order` names (default: all, in order) in runs of at most `size`.
    public init(_ examples: [TokenizedExample], order: [Int]? = nil, size: Int) {
        precondition(size > 0, "micro-batch size must be positive")
        self.examples = examples
        self.order = order ?? Array(examples.indices)
        self.size = size
    }

    public mutating func next() -> Element? {
        guard start < order.count else { return nil }
        let indices = order[start..<Swift.min(start + size, order.count)]
        start = indices.endIndex
        return Element(batch: TokenBatch(examples: indices.map { (examples[$0].ids, examples[$0].labels) }),
                       indices: indices, tokens: indices.reduce(0) { $0 + examples[$1].ids.count }, done: start)
    }
}
