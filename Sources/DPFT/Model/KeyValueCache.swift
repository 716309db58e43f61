// S = capacity (positions), L = layers, KV = key/value heads, D = head dim,
// W = (H + 2·KV)·D (a qkv row), T = new rows of one decode step.

/// The keys and values of the positions a model has decoded so far, per layer (keys with
/// their rotary rotation applied), so that `Transformer.decode` runs only the new positions
/// through the blocks.
public final class KeyValueCache {
    /// Positions it holds at most.
    public let capacity: Int
    /// Positions decoded so far; the next decode starts at this position.
    public internal(set) var count = 0
    let layerCount: Int
    private let width: Int                   // KV·D
    private let keys: [TensorStorage]        // per layer [S, KV·D]
    private let values: [TensorStorage]      // per layer [S, KV·D]

    /// A cache for up to `capacity` positions of `model` (at most its buffers' sequence length
    /// and its position table).
    public init(model: Transformer, capacity: Int) throws {
        let config = model.config
        guard capacity <= model.maxSequenceLength, capacity <= config.maxPositions else {
            throw ModelError.sequenceTooLong(length: capacity,
                                             maxPositions: min(model.maxSequenceLength, config.maxPositions))
        }
        self.capacity = capacity
        layerCount = config.layerCount
        width = config.keyValueHeadCount * config.headDimension
        keys = (0..<layerCount).map { _ in TensorStorage(count: capacity * config.keyValueHeadCount * config.headDimension) }
        values = (0..<layerCount).map { _ in TensorStorage(count: capacity * config.keyValueHeadCount * config.headDimension) }
    }

    /// Forgets every position: the next decode starts a new sequence at position 0.
    public func reset() { count = 0 }

    /// Copies the keys and values of the T rows of `qkv` [T, W] to positions
    /// first ..< first + T of `layer`.
    func append(layer l: Int, qkv: UnsafePointer<Float>, shape s: AttentionShape, at first: Int) {
        precondition(s.batch == 1 && s.keyValueHeads * s.headDimension == width, "one sequence of this model")
        for t in 0..<s.sequence {
            let row = qkv + t * s.qkvWidth, position = first + t
            (keys[l].base + position * width).update(from: row + s.keyOffset, count: width)
            (values[l].base + position * width).update(from: row + s.valueOffset, count: width)
        }
    }

    /// Positions 0 ..< count of `layer`, as attention reads them.
    func rows(layer l: Int, count: Int) -> KeyValueRows {
        KeyValueRows(keys: keys[l].base, values: values[l].base, stride: width, exampleStride: capacity * width,
                     count: count)
    }
}
