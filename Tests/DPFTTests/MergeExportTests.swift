import Foundation
import Testing
@testable import DPFT

@Suite struct MergeExportTests {
    /// Merging LoRA (W += alpha/r · B A) leaves the model's outputs unchanged.
    @Test(arguments: ["gpt2-lora", "llama-gqa-lora"])
    func mergedWeightsGiveTheSameLoss(name: String) throws {
        let reference = try ReferenceModelTests.Reference(name)
        let batch = reference.batch
        let adapted = try Transformer(checkpoint: reference.checkpoint, trainable: TrainableSelection.none,
                                      maxBatchSize: 4, maxSequenceLength: batch.sequenceLength)
        let loss = try adapted.forward(batch)
        var merged = reference.checkpoint
        try merged.mergeAdapters()
        #expect(merged.adapters.isEmpty)
        let plain = try Transformer(checkpoint: merged, trainable: TrainableSelection.none,
                                    maxBatchSize: 4, maxSequenceLength: batch.sequenceLength)
        let mergedLoss = try plain.forward(batch)
        #expect(abs(mergedLoss - loss) / loss < 1e-5, "\(mergedLoss) vs \(loss)")
        #expect(ReferenceModelTests.scaleRelative(plain.perExampleLosses, adapted.perExampleLosses) < 1e-5)
        // The merge changed the adapted base weights (for every model: the weight name used
        // to be llama's only, so GPT-2 skipped this), and not the original checkpoint's.
        let fresh = try ReferenceModelTests.Reference(name).checkpoint
        let changed = merged.tensors.keys.filter { merged.tensors[$0]!.values != fresh.tensors[$0]!.values }
        #expect(!changed.isEmpty, "merging changed no weight")
        for weight in changed {
            #expect(reference.checkpoint.tensors[weight]!.values == fresh.tensors[weight]!.values, "\(weight) merged in place")
        }
    }

    /// The exported folder has the layout transformers/PEFT read: HF names and shapes, the
    /// ledger beside it, adapters under PEFT's names when not merged.
    @Test func exportLayoutWithLedgerAndAdapters() throws {
        var checkpoint = try ReferenceModelTests.Reference("gpt2-lora").checkpoint
        checkpoint.privacyLedger = #"{"epsilon": 3.2}"#
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try HuggingFace.export(checkpoint, to: directory, format: .safetensors)
        let adapters = try SafeTensorsFile.read(url: directory.appendingPathComponent("adapter_model.safetensors"))
        #expect(adapters.tensorNames.contains("base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"))
        #expect(adapters.shape(of: "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight") == [96, 4])
        let peft = try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("adapter_config.json"))) as? [String: Any]
        #expect(peft?["r"] as? Int == 4)
        #expect(String(decoding: try Data(contentsOf: directory.appendingPathComponent("privacy_ledger.json")), as: UTF8.self) == #"{"epsilon": 3.2}"#)
        let model = try SafeTensorsFile.read(url: directory.appendingPathComponent("model.safetensors"))
        #expect(model.shape(of: "transformer.h.0.attn.c_attn.weight") == [32, 96], "Conv1D layout [in, out]")
        #expect(model.metadata["format"] == "pt")

        var merged = checkpoint
        try merged.mergeAdapters()
        let mergedDirectory = directory.appendingPathComponent("merged")
        try HuggingFace.export(merged, to: mergedDirectory, format: .safetensors)
        #expect(!FileManager.default.fileExists(atPath: mergedDirectory.appendingPathComponent("adapter_model.safetensors").path))
        let reimported = try HuggingFace.importModel(from: mergedDirectory)
        for (name, tensor) in merged.tensors {
            #expect(reimported.tensors[name]?.values == tensor.values, "\(name)")
        }
    }
}
