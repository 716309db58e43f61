import Foundation

/// One optimizer step of training, the same code for `dpft recipe` and `dpft bench step`:
/// draw the logical batch, run it in physical micro-batches, form the gradient, update.
///
/// - Private (DESIGN.md §3): a Poisson-sampled logical batch (each example joins with
///   probability q), book-keeping clipping over its micro-batches (Σ_i Σ_k C_ik g_i|k), Gaussian
///   noise once per logical batch, division by the expected batch size q·N.
/// - Non-private: shuffled epochs of fixed-size batches bucketed by length (seeded); the mean
///   gradient over the logical batch.
///
/// Data-parallel under `mpirun` (`communicator`): rank 0 draws the logical batch and sends it to
/// every rank; each rank runs its share (every `size`-th example of the length-sorted batch)
/// through the same code; the gradient sums meet at rank 0, which alone adds the noise (private)
/// or divides (non-private); the finished gradient is broadcast and every rank takes the same
/// optimizer step. The guarantee is the single process's: one Poisson sample and one noise
/// draw per logical batch, the same clipped sum up to the order of float additions.
///
/// This is the only place the training loop calls the model's forward/backward and the
/// book-keeping engine.
public final class TrainingStep {
    /// How logical batches are drawn and turned into a gradient.
    public enum Method {
        /// DP-SGD with book-keeping clipping by `engine`; σ = `noiseMultiplier`. With a
        /// `noiseSeed` the batches and the noise of step s come from streams derived from the
        /// seed and s (reproducible, also across resume); without one from the secure generator.
        case poisson(engine: PrivateGradient, sampleRate: Double, noiseMultiplier: Double, noiseSeed: UInt64?)
        /// Non-private: fixed-size batches from seeded, length-bucketed shuffles of each epoch.
        case shuffled(batchSize: Int, seed: UInt64)
    }

    /// What one step saw.
    public struct Result: Sendable {
        /// Mean per-example loss over the logical batch (NaN for an empty batch). Computed on
        /// private data: not itself privatized.
        public var loss: Double
        /// Examples in the logical batch.
        public var examples: Int
        /// Their unpadded tokens.
        public var tokens: Int
        /// Per-group clip rate and median norm of a private step (nil for non-private).
        public var clipStatistics: ClipStatistics? = nil
    }

    /// A step that cannot be used because training diverged: its loss (over a non-empty
    /// batch), its gradient or its updated parameters hold a NaN or infinity. Thrown before the
    /// update for the loss and the gradient, after it for the parameters.
    public enum NonFinite: Error, Equatable, CustomStringConvertible {
        case loss(Double)
        case gradient(tensor: String, index: Int, value: Float)
        case parameter(tensor: String, index: Int, value: Float)

        public var description: String {
            switch self {
            case .loss(let loss): return "the loss is \(Self.name(loss))"
            case .gradient(let tensor, let index, let value):
                return "the gradient of \(tensor) is \(Self.name(Double(value))) at element \(index)"
            case .parameter(let tensor, let index, let value):
                return "the update made \(tensor) \(Self.name(Double(value))) at element \(index)"
            }
        }

        private static func name(_ value: Double) -> String {
            value.isNaN ? "NaN" : value > 0 ? "+infinity" : "-infinity"
        }
    }

    public let model: Transformer
    public let optimizer: Optimizer
    public let examples: [TokenizedExample]
    public let physicalBatchSize: Int
    public let method: Method
    public let communicator: Communicator
    /// Every this many steps the ranks compare parameter checksums (data-parallel runs only).
    public static let agreementCheckInterval = 10
    private let sampler: PoissonSampler?
    private var secureSource = NoiseSource.secure()
    private var shuffled: [Int] = []

    /// `examples` are the training set (N = their count); micro-batches hold at most
    /// `physicalBatchSize` of them.
    public init(model: Transformer, optimizer: Optimizer, examples: [TokenizedExample], physicalBatchSize: Int,
                method: Method, communicator: Communicator = .single) {
        self.model = model
        self.communicator = communicator
        self.optimizer = optimizer
        self.examples = examples
        self.physicalBatchSize = max(physicalBatchSize, 1)
        self.method = method
        if case .poisson(_, let sampleRate, _, _) = method {
            sampler = PoissonSampler(datasetSize: examples.count, sampleRate: sampleRate)
        } else {
            sampler = nil
        }
    }

    /// Largest bytes of book copies held during private steps (0 for non-private).
    public var peakBookBytes: Int {
        if case .poisson(let engine, _, _, _) = method { return engine.peakBookBytes }
        return 0
    }

    /// Step `step` (0-based; selects the seeded streams and the epoch): zero the gradients,
    /// form the (private) gradient of a logical batch, take an optimizer step at `learningRate`.
    /// Throws `NonFinite` when the step diverged (nothing is updated for a non-finite loss or
    /// gradient).
    @discardableResult
    public func run(step: Int, learningRate: Float) throws -> Result {
        model.zeroGradients()
        let result: Result
        switch method {
        case .poisson(let engine, _, let noiseMultiplier, let noiseSeed):
            result = try privateGradient(step: step, engine: engine, noiseMultiplier: noiseMultiplier, noiseSeed: noiseSeed)
        case .shuffled(let batchSize, let seed):
            result = try meanGradient(step: step, batchSize: batchSize, seed: seed)
        }
        if result.examples > 0, !result.loss.isFinite { throw NonFinite.loss(result.loss) }
        if let bad = Self.firstNonFinite(model.gradients, names: model.gradients.names) {
            throw NonFinite.gradient(tensor: bad.name, index: bad.index, value: bad.value)
        }
        optimizer.step(model: model, learningRate: learningRate)
        if let bad = Self.firstNonFinite(model.parameters, names: model.gradients.names) {
            throw NonFinite.parameter(tensor: bad.name, index: bad.index, value: bad.value)
        }
        if communicator.size > 1, (step + 1) % Self.agreementCheckInterval == 0 { try checkRanksAgree(step: step + 1) }
        return result
    }

    /// Throws `DistributedError.ranksDisagree` on every rank when some rank's trainable
    /// parameters differ from rank 0's (a checksum of their bits; cheap beside a step).
    func checkRanksAgree(step: Int) throws {
        var checksum: UInt64 = 0
        for name in model.gradients.names {
            guard let tensor = model.parameters[name] else { continue }
            let base = tensor.storage.base + tensor.offset
            for i in 0..<tensor.count { checksum = checksum &+ UInt64(base[i].bitPattern) &* UInt64(i &+ 1) }
            checksum = (checksum << 7) | (checksum >> 57)
        }
        let rootChecksum = communicator.broadcast([Int(bitPattern: UInt(checksum))])[0]
        var differs = [Double](repeating: 0, count: communicator.size)
        differs[communicator.rank] = rootChecksum == Int(bitPattern: UInt(checksum)) ? 0 : 1
        if let rank = communicator.sum(differs).firstIndex(where: { $0 > 0 }) {
            throw DistributedError.ranksDisagree(step: step, rank: rank)
        }
    }

    /// The clip statistics of the whole logical batch from every rank's share (each rank's
    /// norms go to their batch positions of a zero array, and the arrays are summed).
    private func gathered(_ statistics: ClipStatistics, batchSize: Int) -> ClipStatistics {
        guard communicator.size > 1 else { return statistics }
        let K = statistics.groupNames.count
        var flat = [Double](repeating: 0, count: K * batchSize)
        for (j, position) in sharePositions(inBatchOf: batchSize).enumerated() {
            for k in 0..<K { flat[k * batchSize + position] = statistics.norms(ofGroup: k)[j] }
        }
        let all = communicator.sum(flat)
        var result = ClipStatistics(groupNames: statistics.groupNames, thresholds: statistics.thresholds)
        result.add((0..<batchSize).map { position in (0..<K).map { all[$0 * batchSize + position] } })
        return result
    }

    /// This rank's examples of a logical batch: every `size`-th one from position `rank`, so
    /// that the length-sorted batch spreads its long and short examples over the ranks.
    private func share(of batch: [Int]) -> [Int] {
        sharePositions(inBatchOf: batch.count).map { batch[$0] }
    }

    /// The positions in a logical batch of `count` examples that this rank runs, in order.
    private func sharePositions(inBatchOf count: Int) -> StrideTo<Int> {
        stride(from: communicator.rank, to: count, by: communicator.size)
    }

    /// The ranks' gradient sums, finished by rank 0 (`finish`: noise and division, or the
    /// division alone), on every rank. The logged loss and token count are summed the same way.
    private func combine(loss: Double, tokens: Int, finish: () throws -> Void) rethrows -> (loss: Double, tokens: Int) {
        let totals = communicator.sum([loss, Double(tokens)])
        let gradients = UnsafeMutableBufferPointer(start: model.gradients.storage.base, count: model.gradients.count)
        communicator.sumToRoot(gradients)
        if communicator.isRoot { try finish() }
        communicator.broadcast(gradients)
        return (totals[0], Int(totals[1]))
    }

    /// The first NaN or infinity among the tensors `names` of `store`, in order. Each tensor is
    /// screened with SIMD sums of x − x (0 for a finite x, NaN otherwise); only a tensor that
    /// fails the screen is searched element by element.
    static func firstNonFinite(_ store: ParameterStore, names: [String]) -> (name: String, index: Int, value: Float)? {
        for name in names {
            guard let tensor = store[name] else { continue }
            let base = tensor.storage.base + tensor.offset, count = tensor.count
            if allFinite(base, count: count) { continue }
            if let index = (0..<count).first(where: { !base[$0].isFinite }) { return (name, index, base[index]) }
        }
        return nil
    }

    /// True when `count` floats at `base` are all finite: x − x is 0 for a finite x and NaN
    /// otherwise, summed in sixteen lanes, the chunks of a large tensor on every core (two such
    /// screens and a ÷ B per step took 60 ms of GPT-2 small's step on one core).
    private static func allFinite(_ base: UnsafeMutablePointer<Float>, count: Int) -> Bool {
        let shared = UncheckedSendable(base)
        return Parallel.mapChunks(count, minimumPerChunk: 1 << 16) { range in
            let base = shared.value
            var screen = SIMD16<Float>(repeating: 0)
            var i = range.lowerBound
            while i + 16 <= range.upperBound {
                let v = UnsafeRawPointer(base + i).loadUnaligned(as: SIMD16<Float>.self)
                screen += v - v
                i += 16
            }
            var tail: Float = 0
            while i < range.upperBound { tail += base[i] - base[i]; i += 1 }
            return (screen.sum() + tail).isFinite
        }.allSatisfy { $0 }
    }

    /// Poisson batch → clipped sums over micro-batches → noise once → ÷ q·N (DESIGN.md §3).
    private func privateGradient(step: Int, engine: PrivateGradient, noiseMultiplier: Double,
                                 noiseSeed: UInt64?) throws -> Result {
        let sampler = sampler!
        let batch = communicator.broadcast(communicator.isRoot ? sampleBatch(step: step, noiseSeed: noiseSeed) : [])
        var loss = 0.0, tokens = 0
        var statistics = ClipStatistics(groups: engine.groups)
        for micro in MicroBatches(examples, order: share(of: batch), size: physicalBatchSize) {
            let microLoss = try engine.accumulate(micro.batch)
            loss += Double(microLoss) * Double(micro.indices.count)
            tokens += micro.tokens
            statistics.add(engine.perSampleNorms)
        }
        let total = try combine(loss: loss, tokens: tokens) {
            var noise = noiseSeed.map { NoiseSource.seeded($0, purpose: "noise", index: UInt64(step)) } ?? secureSource
            try engine.finishLogicalBatch(noiseMultiplier: noiseMultiplier, expectedBatchSize: sampler.expectedBatchSize,
                                          noise: &noise)
            if noiseSeed == nil { secureSource = noise }
        }
        if !communicator.isRoot { engine.discardLogicalBatch() }
        return Result(loss: batch.isEmpty ? .nan : total.loss / Double(batch.count), examples: batch.count,
                      tokens: total.tokens, clipStatistics: gathered(statistics, batchSize: batch.count))
    }

    /// The logical batch of private step `step`: each example joins with probability q, drawn
    /// from the seeded stream of `step` or the secure generator; sorted by length, since
    /// micro-batches of similar lengths pad less and the clipped sum does not depend on order.
    func sampleBatch(step: Int, noiseSeed: UInt64?) -> [Int] {
        var source = noiseSeed.map { NoiseSource.seeded($0, purpose: "sample", index: UInt64(step)) } ?? secureSource
        let batch = sampler!.sample(using: &source).sorted { examples[$0].ids.count < examples[$1].ids.count }
        if noiseSeed == nil { secureSource = source }
        return batch
    }

    /// Fixed-size batch of a shuffled epoch → Σ_i ∇L_i over micro-batches → ÷ batch size.
    private func meanGradient(step: Int, batchSize: Int, seed: UInt64) throws -> Result {
        let N = examples.count
        let perEpoch = max(N / batchSize, 1)
        let epoch = step / perEpoch, position = step % perEpoch
        if shuffled.isEmpty || position == 0 {
            shuffled = Self.bucketedOrder(lengths: examples.map(\.ids.count), batchSize: batchSize,
                                          seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
        }
        let batch = Array(shuffled[(position * batchSize)..<min((position + 1) * batchSize, N)])
        // Each micro-batch adds Σ_i ∇L_i; one division by the logical batch size at the end
        // gives the mean over the logical batch whatever the micro-batch sizes.
        model.sumsPerExampleLosses = true
        defer { model.sumsPerExampleLosses = false }
        var loss = 0.0, tokens = 0
        for micro in MicroBatches(examples, order: share(of: batch), size: physicalBatchSize) {
            try model.forward(micro.batch)
            loss += Double(model.perExampleLosses.reduce(0, +))
            model.backward()
            tokens += micro.tokens
        }
        let total = combine(loss: loss, tokens: tokens) { scaleGradients(by: 1 / Float(max(batch.count, 1))) }
        return Result(loss: batch.isEmpty ? .nan : total.loss / Double(batch.count), examples: batch.count,
                      tokens: total.tokens)
    }

    private func scaleGradients(by factor: Float) {
        guard factor != 1 else { return }
        VectorMath.scale(model.gradients.storage.base, count: model.gradients.count, by: factor)
    }

    /// A shuffled epoch whose batches hold examples of similar length (less padding): shuffle,
    /// sort runs of 16 batches by length, cut into batches, shuffle the batches.
    static func bucketedOrder(lengths: [Int], batchSize: Int, seed: UInt64) -> [Int] {
        var generator = SeededGenerator(seed: seed)
        let shuffled = Array(lengths.indices).shuffled(using: &generator)
        let run = batchSize * 16
        var batches: [[Int]] = []
        for start in stride(from: 0, to: shuffled.count, by: run) {
            let sorted = shuffled[start..<min(start + run, shuffled.count)].sorted { lengths[$0] < lengths[$1] }
            for batchStart in stride(from: 0, to: sorted.count, by: batchSize) {
                batches.append(Array(sorted[(sorted.startIndex + batchStart)..<min(sorted.startIndex + batchStart + batchSize, sorted.endIndex)]))
            }
        }
        return batches.shuffled(using: &generator).flatMap { $0 }
    }
}
