import Foundation

/// A model's working buffers too large for the machine, refused before they are allocated.
public struct ActivationMemoryError: Error, CustomStringConvertible, Equatable {
    public var batchSize: Int
    public var sequenceLength: Int
    /// A lower bound on the buffers' size, and the machine's memory, both formatted.
    public var bytes: String
    public var available: String
    /// Whether the bound already assumed recomputed activations.
    public var recomputes = false

    public var description: String {
        "a model of this size needs at least \(bytes) of activations for micro-batches of \(batchSize) × \(sequenceLength) "
            + "tokens (logits and layer outputs), but this machine has \(available) of memory. "
            + "Lower training.physical_batch_size (or --batch-size) or data.max_length"
            + (recomputes ? "." : ", or set training.recompute_activations (--recompute-activations) to true.")
    }
}

extension ModelConfig {
    /// A lower bound on the float32 activation buffers the transformer allocates for
    /// micro-batches of `batchSize` × `sequenceLength` tokens (N = their product): the logits
    /// N·V, and per layer three hidden-size rows (input, q|k|v, middle) and two MLP-size rows
    /// per token — or, when the model recomputes its activations, one layer's worth plus each
    /// layer's input (N·C) (a Double: no overflow). Attention's probabilities are recomputed
    /// per head, and the norms' outputs, attention's output and a gated MLP's product are
    /// remade per block (`RemadeActivations`), not kept.
    func activationBytesLowerBound(batchSize: Int, sequenceLength: Int, recomputesActivations: Bool = false) -> Double {
        let N = Double(batchSize) * Double(sequenceLength)
        let perLayer = N * (3 * Double(hiddenSize) + 2 * Double(intermediateSize))
        let layers = recomputesActivations ? perLayer + Double(layerCount) * N * Double(hiddenSize)
                                           : Double(layerCount) * perLayer
        return 4 * (N * Double(vocabularySize) + layers)
    }

    /// Refuses micro-batches whose activations alone exceed the machine's memory: allocating
    /// them would abort the process (or swap it to a standstill) instead of failing cleanly.
    func checkActivationsFitInMemory(batchSize: Int, sequenceLength: Int, recomputesActivations: Bool = false,
                                     availableBytes: UInt64 = ProcessInfo.processInfo.physicalMemory) throws {
        let bytes = activationBytesLowerBound(batchSize: batchSize, sequenceLength: sequenceLength,
                                              recomputesActivations: recomputesActivations)
        guard bytes > Double(availableBytes) else { return }
        func gib(_ value: Double) -> String { String(format: "%.3g GiB", value / 1_073_741_824) }
        throw ActivationMemoryError(batchSize: batchSize, sequenceLength: sequenceLength, bytes: gib(bytes),
                                    available: gib(Double(availableBytes)), recomputes: recomputesActivations)
    }
}
