import ArgumentParser
import DPFT
import Foundation

extension ExportFormat: ExpressibleByArgument {}

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Convert a Hugging Face model folder into a dpft checkpoint.",
        discussion: """
            Reads config.json and model.safetensors (or the shards listed in \
            model.safetensors.index.json); a tokenizer.model beside them is stored in the \
            checkpoint. F32, F16 and BF16 weights are read; dpft stores float32.
            """)

    @Argument(help: "Folder with config.json and *.safetensors.")
    var directory: String

    @Option(help: "Where to write the checkpoint (HDF5).")
    var output: String

    func run() throws {
        let checkpoint = try HuggingFace.importModel(from: URL(fileURLWithPath: directory))
        try checkpoint.write(to: URL(fileURLWithPath: output))
        let config = checkpoint.config
        print("imported \(directory) → \(output): \(config.modelType.rawValue), "
              + "\(checkpoint.tensors.count) tensors"
              + (checkpoint.tokenizerModel != nil ? ", tokenizer included" : ""))
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint as a Hugging Face folder (safetensors) or as HDF5.",
        discussion: """
            safetensors: config.json + model.safetensors (+ tokenizer.model, LoRA adapters in \
            PEFT layout, privacy_ledger.json) — loadable with \
            transformers.AutoModelForCausalLM.from_pretrained(DIR). hdf5: config.json + model.h5.
            """)

    @Argument(help: "The dpft checkpoint to export.")
    var checkpoint: String

    @Option(help: "Folder to write (created if missing).")
    var output: String

    @Option(help: "safetensors or hdf5.")
    var format: ExportFormat = .safetensors

    func run() throws {
        let model = try Checkpoint.read(from: URL(fileURLWithPath: checkpoint))
        try HuggingFace.export(model, to: URL(fileURLWithPath: output), format: format)
        print("exported \(checkpoint) → \(output)/ (\(format.rawValue))")
    }
}
