import Foundation
import Testing
@testable import DPFT

/// Forward and backward against PyTorch/transformers (+ PEFT) on tiny random models:
/// fixtures from tools/make_forward_backward_fixtures.py (gpt2, llama) and
/// tools/make_moe_fixtures.py (mixtral: MixtralForCausalLM, full and LoRA on attention and every
/// expert's w1/w2/w3; in layer 1 expert 3 receives no token). A padded batch of mixed lengths with
/// masked labels and one example without label tokens.
///
/// Error measure, per tensor: max |dpft − reference| / max |reference| (scale-relative, so
/// near-zero entries do not dominate), each tensor on its own scale. Bounds: losses 1e-4;
/// logits and every gradient 1e-5, about ten times the largest error seen (logits 6.7e-7,
/// gradients 1.5e-6 — biases and norm weights included, which a looser common bound would let
/// be far off).
@Suite struct ReferenceModelTests {
    static let cases = ["gpt2-full", "gpt2-lora", "llama-gqa-full", "llama-gqa-lora", "llama-tied-full"]
    /// Mixtral (sparse mixture of experts) cases.
    static let moeCases = ["mixtral-full", "mixtral-lora"]

    struct Reference {
        let file: HDF5File
        let checkpoint: Checkpoint
        let batch: TokenBatch

        init(_ name: String) throws {
            file = try HDF5File.openForReading(Fixtures.url("reference/\(name).h5").path)
            let modelDirectory = try #require(try file.attribute("model_dir")?.stringValue)
            var checkpoint = try HuggingFace.importModel(from: Fixtures.url(modelDirectory))
            if file.isGroup("/adapters") {
                guard case .integer(let rank)? = try file.attribute("lora_rank"),
                      case .integer(let alpha)? = try file.attribute("lora_alpha"),
                      let targets = try file.attribute("lora_targets")?.stringValue else {
                    throw CheckpointError.missingAttribute(path: file.path, name: "lora_*")
                }
                let lora = LoRAConfig(rank: Int(rank), alpha: Double(alpha),
                                      targets: try JSONDecoder().decode([String].self, from: Data(targets.utf8)))
                for name in try file.children(of: "/adapters") {
                    checkpoint.adapters[name] = try file.readTensor(at: "/adapters/\(name)")
                }
                checkpoint.adapterConfig = lora.peftJSON
            }
            self.checkpoint = checkpoint
            let ids = try file.readTensor(at: "/input_ids"), labels = try file.readTensor(at: "/labels")
            let lengths = try file.readTensor(at: "/lengths").values.map { Int($0) }
            let T = ids.shape[1]
            batch = TokenBatch(examples: lengths.enumerated().map { b, length in
                (ids: (0..<length).map { Int(ids.pointer[b * T + $0]) },
                 labels: (0..<length).map { Int(labels.pointer[b * T + $0]) })
            }, sequenceLength: T)
        }
    }

    static func scaleRelative(_ a: [Float], _ b: [Float]) -> Float {
        let scale = b.map(abs).max() ?? 0
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        return worst / max(scale, 1e-12)
    }

    /// Two snapshots of a whole gradient store compared tensor by tensor, each on its own scale
    /// (one scale over the store would let a small tensor — a bias, a norm weight — be far off):
    /// expects every tensor's `scaleRelative` error ≤ `bound`; returns the largest.
    @discardableResult
    static func expectEachTensorClose(_ actual: [Float], _ expected: [Float], in store: ParameterStore, bound: Float,
                                      _ label: String, sourceLocation: SourceLocation = #_sourceLocation) -> Float {
        var largest: Float = 0
        for name in store.names {
            let view = store[name]!
            let offset = view.pointer - store.storage.base
            let error = scaleRelative(Array(actual[offset..<offset + view.count]), Array(expected[offset..<offset + view.count]))
            largest = max(largest, error)
            #expect(error <= bound, "\(label): \(name) off by \(error) of its own scale", sourceLocation: sourceLocation)
        }
        return largest
    }

    @Test(arguments: cases + moeCases)
    func forwardAndBackwardMatchPyTorch(name: String) throws {
        let reference = try Reference(name)
        let batch = reference.batch
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: batch.batchSize,
                                    maxSequenceLength: batch.sequenceLength)
        let loss = try model.forward(batch)

        // logits at real positions only (padding rows are not defined by the model)
        let referenceLogits = try reference.file.readTensor(at: "/logits")
        let V = model.config.vocabularySize, T = batch.sequenceLength
        var ours: [Float] = [], theirs: [Float] = []
        for b in 0..<batch.batchSize {
            for t in 0..<batch.lengths[b] {
                ours += model.logits(example: b, position: t)
                theirs += UnsafeBufferPointer(start: referenceLogits.pointer + (b * T + t) * V, count: V)
            }
        }
        let logitsError = Self.scaleRelative(ours, theirs)
        print("[\(name)] logits: \(logitsError)")
        #expect(logitsError <= 1e-5, "logits differ by \(logitsError)")

        let referenceLosses = try reference.file.readTensor(at: "/per_example_losses").values
        let lossesError = Self.scaleRelative(model.perExampleLosses, referenceLosses)
        #expect(lossesError <= 1e-4, "per-example losses \(model.perExampleLosses) vs \(referenceLosses)")
        #expect(model.perExampleLosses[2] == 0, "the example without label tokens has loss 0")
        let referenceLoss = try reference.file.readTensor(at: "/loss").values[0]
        #expect(abs(loss - referenceLoss) / abs(referenceLoss) <= 1e-4, "loss \(loss) vs \(referenceLoss)")

        model.backward()
        let specs = Dictionary(uniqueKeysWithValues: model.config.parameterSpecs.map { ($0.name, $0) })
        let referenceNames = try reference.file.children(of: "/grads")
        #expect(Set(referenceNames) == Set(model.trainableNames), "trainable tensors differ from PyTorch's")
        for gradientName in referenceNames {
            var expected = try reference.file.readTensor(at: "/grads/\(gradientName)")
            if specs[gradientName]?.storedTransposedByHF == true { expected = expected.transposed() }
            let actual = try #require(model.gradients[gradientName], "no gradient for \(gradientName)")
            #expect(actual.shape == expected.shape, "\(gradientName) shape")
            let error = Self.scaleRelative(actual.values, expected.values)
            print("[\(name)] \(gradientName): \(error)")
            #expect(error <= 1e-5, "gradient of \(gradientName) differs by \(error)")
        }
    }

    @Test func paddingChangesNothingForRealTokens() throws {
        let reference = try Reference("llama-gqa-lora")
        let batch = reference.batch
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: 4, maxSequenceLength: 20)
        try model.forward(batch)
        let shortLogits = Array(model.logits(example: 1, position: 3))
        model.backward()
        let shortGradients = model.gradients.storage.base
        let before = Array(UnsafeBufferPointer(start: shortGradients, count: model.gradients.count))
        model.zeroGradients()
        // the same examples padded to 20 positions
        let padded = TokenBatch(examples: (0..<batch.batchSize).map { b in
            let T = batch.sequenceLength, length = batch.lengths[b]
            return (ids: (0..<length).map { Int(batch.ids[b * T + $0]) },
                    labels: (0..<length).map { Int(batch.labels[b * T + $0]) })
        }, sequenceLength: 20)
        try model.forward(padded)
        #expect(Self.scaleRelative(Array(model.logits(example: 1, position: 3)), shortLogits) < 1e-6)
        model.backward()
        let after = Array(UnsafeBufferPointer(start: model.gradients.storage.base, count: model.gradients.count))
        Self.expectEachTensorClose(after, before, in: model.gradients, bound: 1e-5, "padded to 20")
    }
}

/// The Mixtral fixture's forced empty expert (layer 1, expert 3: its router row sits below every
/// other expert's logit for every real token): dpft routes no token to it, and its weights get
/// exactly zero gradient while the other experts' do not.
@Suite struct MixtureOfExpertsRoutingTests {
    @Test func anExpertWithoutTokensGetsNoGradient() throws {
        let reference = try ReferenceModelTests.Reference("mixtral-full")
        let batch = reference.batch
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: batch.batchSize,
                                    maxSequenceLength: batch.sequenceLength)
        try model.forward(batch)
        guard case .experts(let moe) = model.blocks[1].feedForward else {
            Issue.record("layer 1 is not a mixture of experts")
            return
        }
        #expect(moe.routedCount(expert: 3) == 0)
        let realTokens = batch.lengths.reduce(0, +)
        #expect((0..<4).map { moe.routedCount(expert: $0) }.reduce(0, +) == realTokens * 2, "top-2: two rows per real token")
        model.backward()
        for w in ["w1", "w2", "w3"] {
            let empty = model.gradients["model.layers.1.block_sparse_moe.experts.3.\(w).weight"]!.values
            #expect(empty.allSatisfy { $0 == 0 }, "\(w) of the empty expert")
            let used = model.gradients["model.layers.1.block_sparse_moe.experts.0.\(w).weight"]!.values
            #expect(used.contains { $0 != 0 }, "\(w) of a used expert")
        }
    }
}

extension MixtureOfExpertsRoutingTests {
    /// LoRA adapts the experts' w1/w2/w3 and the attention projections; the router is not a
    /// LoRA target, and asking for it says so and lists the targets that exist.
    @Test func routerIsNotALoRATarget() throws {
        let config = try ReferenceModelTests.Reference("mixtral-full").checkpoint.config
        #expect(config.adaptableModuleNames == ["q_proj", "k_proj", "v_proj", "o_proj", "w1", "w2", "w3"])
        let error = LoRAError.unknownTarget("gate", available: config.adaptableModuleNames)
        #expect(throws: error) { try config.adapterSpecs(for: LoRAConfig(rank: 2, alpha: 4, targets: ["w1", "gate"])) }
        #expect(error.description.contains("w1, w2, w3") && error.description.contains("router"))
        let specs = try config.adapterSpecs(for: LoRAConfig(rank: 2, alpha: 4, targets: ["w2"]))
        #expect(specs.count == 2 * 4)
        #expect(specs.first?.loraAName == "model.layers.0.block_sparse_moe.experts.0.w2.lora_A.weight")
    }
}
