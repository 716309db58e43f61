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
            model.safetensors.index.json); the folder's tokenizer is stored in the checkpoint: \
            tokenizer.json (with tokenizer_config.json) when present, else tokenizer.model. \
            F32, F16 and BF16 weights are read; dpft stores float32.
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
              + "\(checkpoint.tensors.count) tensors" + tokenizerNote(checkpoint))
    }

    /// Which tokenizer file went into the checkpoint, and which was passed over.
    private func tokenizerNote(_ checkpoint: Checkpoint) -> String {
        guard let bytes = checkpoint.tokenizerModel else { return ", no tokenizer (tokenizer.json or tokenizer.model)" }
        let folder = URL(fileURLWithPath: directory)
        let stored = Tokenizer.kind(ofFile: bytes)
        var note = ", tokenizer from \(stored.fileName)"
        if checkpoint.tokenizerConfig != nil { note += " + tokenizer_config.json" }
        let other = TokenizerKind.sentencePiece.fileName
        if stored == .bytePairJSON, FileManager.default.fileExists(atPath: folder.appendingPathComponent(other).path) {
            note += " (\(other) also present, not used)"
        }
        return note
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a checkpoint as a Hugging Face folder (safetensors) or as HDF5.",
        discussion: """
            safetensors: config.json + model.safetensors (+ the imported tokenizer.json and \
            tokenizer_config.json, or tokenizer.model; LoRA adapters in \
            PEFT layout unless --merge-lora, privacy_ledger.json) — loadable with \
            transformers.AutoModelForCausalLM.from_pretrained(DIR). hdf5: config.json + model.h5.
            """)

    @Argument(help: "The dpft checkpoint to export.")
    var checkpoint: String

    @Option(help: "Folder to write (created if missing).")
    var output: String

    @Option(help: "safetensors or hdf5.")
    var format: ExportFormat = .safetensors

    @Flag(help: "Fold LoRA adapters into the base weights (W += alpha/r · B A) so the folder loads as a plain model.")
    var mergeLora = false

    func run() throws {
        var model = try Checkpoint.read(from: URL(fileURLWithPath: checkpoint))
        let hadAdapters = !model.adapters.isEmpty
        if mergeLora { try model.mergeAdapters() }
        try HuggingFace.export(model, to: URL(fileURLWithPath: output), format: format)
        var notes: [String] = []
        if mergeLora && hadAdapters { notes.append("LoRA merged") }
        if !model.adapters.isEmpty { notes.append("adapters in PEFT layout") }
        if model.privacyLedger != nil { notes.append("privacy ledger in privacy_ledger.json") }
        if let text = model.privacyLedger, let ledger = try? PrivacyLedger(json: text) { warnAbout(ledger) }
        print("exported \(checkpoint) → \(output)/ (\(format.rawValue)\(notes.isEmpty ? "" : "; " + notes.joined(separator: ", ")))")
    }

    /// What the ledger says about the release that the user must not miss, on standard error.
    private func warnAbout(_ ledger: PrivacyLedger) {
        if !ledger.privateRelease {
            FileHandle.standardError.write(Data("""
                warning: \(checkpoint) was trained with a fixed noise seed (privacy.noise_seed): whoever \
                knows the seed can rebuild every batch and noise draw, so this export is NOT a private \
                release. Retrain without noise_seed for one.\n
                """.utf8))
        }
        if !ledger.epsilon.isFinite {
            FileHandle.standardError.write(Data("""
                warning: the ledger of \(checkpoint) has ε = \(ledger.epsilon): this export carries no \
                differential-privacy guarantee.\n
                """.utf8))
        }
    }
}
