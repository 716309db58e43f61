import Foundation

/// Errors converting between Hugging Face model directories and dpft checkpoints.
public enum HuggingFaceError: Error, CustomStringConvertible, Equatable {
    case notADirectory(path: String)
    case missingConfig(directory: String)
    case noWeights(directory: String)
    case shardMissing(index: String, shard: String)
    case tiedHeadDiffers(directory: String, name: String)
    case unsupportedExportFormat(String)

    public var description: String {
        switch self {
        case .notADirectory(let path):
            return "\(path): not a directory. Give the folder that holds config.json and the *.safetensors files."
        case .missingConfig(let directory):
            return "\(directory): no config.json. A Hugging Face model folder needs config.json beside its weights."
        case .noWeights(let directory):
            return "\(directory): neither model.safetensors nor model.safetensors.index.json is present. "
                + "dpft reads safetensors weights only; convert *.bin files with transformers' save_pretrained(safe_serialization=True)."
        case .shardMissing(let index, let shard):
            return "\(index): names shard \(shard), which is missing from the folder."
        case .tiedHeadDiffers(let directory, let name):
            return "\(directory): config says tie_word_embeddings, but `\(name)` differs from the embedding."
        case .unsupportedExportFormat(let format):
            return "unknown export format \"\(format)\"; use safetensors or hdf5."
        }
    }
}

/// The formats `dpft export` writes.
public enum ExportFormat: String, Sendable, CaseIterable {
    /// config.json + model.safetensors (+ tokenizer.model): loadable by transformers.
    case safetensors
    /// config.json + model.h5 (a dpft checkpoint).
    case hdf5
}

/// Import from and export to Hugging Face model folders (config.json + safetensors).
public enum HuggingFace {
    /// Buffers that some HF checkpoints store but that are not parameters.
    static func isNonParameterBuffer(_ name: String) -> Bool {
        name.hasSuffix(".attn.bias") || name.hasSuffix(".attn.masked_bias")
            || name.hasSuffix("rotary_emb.inv_freq")
    }

    /// Reads `config.json`, `model.safetensors` (or the shards listed in
    /// `model.safetensors.index.json`) and the folder's tokenizer (`tokenizerFile`).
    ///
    /// Names and shapes come from the family's declaration: weights HF stores transposed
    /// (GPT-2's Conv1D, `[in, out]`) become dpft's `[out, in]`; a tied LM head stored in the
    /// file is checked against the embedding and dropped.
    public static func importModel(from directory: URL) throws -> Checkpoint {
        let path = directory.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw HuggingFaceError.notADirectory(path: path)
        }
        let configURL = directory.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw HuggingFaceError.missingConfig(directory: path)
        }
        let config = try ModelConfig(contentsOf: configURL)

        // name → (file, name as stored in that file)
        var sources: [String: (file: SafeTensorsFile, storedName: String)] = [:]
        for file in try weightFiles(in: directory) {
            for storedName in file.tensorNames where !isNonParameterBuffer(storedName) {
                sources[config.family.canonicalName(storedName)] = (file, storedName)
            }
        }

        var tensors: [String: Tensor] = [:]
        for spec in config.parameterSpecs {
            guard let source = sources.removeValue(forKey: spec.name) else {
                throw CheckpointError.missingTensor(path: path, name: spec.name)
            }
            let found = source.file.shape(of: source.storedName) ?? []
            guard found == spec.hfShape else {
                throw CheckpointError.shapeMismatch(path: source.file.url.path, name: source.storedName,
                                                    expected: spec.hfShape, found: found)
            }
            let tensor = try source.file.tensor(source.storedName)
            tensors[spec.name] = spec.storedTransposedByHF ? tensor.transposed() : tensor
        }
        if config.tiedEmbeddings, let head = sources.removeValue(forKey: "lm_head.weight") {
            let values = try head.file.tensor(head.storedName).values
            guard values == tensors[config.embeddingName]?.values else {
                throw HuggingFaceError.tiedHeadDiffers(directory: path, name: "lm_head.weight")
            }
        }
        if let extra = sources.keys.sorted().first {
            throw CheckpointError.unexpectedTensor(path: sources[extra]!.file.url.path, name: extra)
        }

        var checkpoint = Checkpoint(config: config, tensors: tensors)
        if let tokenizerURL = tokenizerFile(in: directory) {
            // Loading checks the file now, not at the first run; the bytes are kept as read.
            checkpoint.store(try Tokenizer(contentsOf: tokenizerURL))
        }
        return checkpoint
    }

    /// The tokenizer file of a model folder: `tokenizer.json` when present (it is what
    /// transformers' fast tokenizers read, and it has the added tokens), else
    /// `tokenizer.model`, else nil. A `tokenizer.json`'s `tokenizer_config.json` is read with it.
    public static func tokenizerFile(in directory: URL) -> URL? {
        for kind in [TokenizerKind.bytePairJSON, .sentencePiece] {
            let url = directory.appendingPathComponent(kind.fileName)
            if FileManager.default.fileExists(atPath: url.path) { return url }
        }
        return nil
    }

    /// The safetensors files of a model folder: the single file, or every shard the index names.
    static func weightFiles(in directory: URL) throws -> [SafeTensorsFile] {
        let single = directory.appendingPathComponent("model.safetensors")
        if FileManager.default.fileExists(atPath: single.path) {
            return [try SafeTensorsFile.read(url: single)]
        }
        let indexURL = directory.appendingPathComponent("model.safetensors.index.json")
        guard let data = FileManager.default.contents(atPath: indexURL.path) else {
            throw HuggingFaceError.noWeights(directory: directory.path)
        }
        struct Index: Decodable { var weight_map: [String: String] }
        let index: Index
        do {
            index = try JSONValueDecoder.decode(Index.self, from: data, source: indexURL.path)
        } catch let error as JSONParseError {
            throw ConfigError.invalidJSON(error)
        } catch {
            throw ConfigError.invalidValue(source: indexURL.path, key: "weight_map", value: "…",
                                           reason: "expected an object mapping tensor names to shard files")
        }
        var files: [SafeTensorsFile] = []
        for shard in Set(index.weight_map.values).sorted() {
            let url = directory.appendingPathComponent(shard)
            guard !shard.contains("/"), FileManager.default.fileExists(atPath: url.path) else {
                throw HuggingFaceError.shardMissing(index: indexURL.path, shard: shard)
            }
            let file = try SafeTensorsFile.read(url: url)
            for (name, fileName) in index.weight_map where fileName == shard && file.shape(of: name) == nil {
                throw CheckpointError.missingTensor(path: url.path, name: name)
            }
            files.append(file)
        }
        return files
    }

    /// Writes `checkpoint` into `directory` (created if needed), each file atomically.
    ///
    /// safetensors: `config.json`, `model.safetensors` (HF names and shapes, a tied head
    /// omitted as transformers saves it), the checkpoint's tokenizer file as it was imported
    /// (`tokenizer.model`, or `tokenizer.json` and its `tokenizer_config.json`), the
    /// LoRA adapters as PEFT's `adapter_model.safetensors` + `adapter_config.json`, and the
    /// privacy ledger as `privacy_ledger.json`. hdf5: `config.json` + `model.h5`.
    public static func export(_ checkpoint: Checkpoint, to directory: URL, format: ExportFormat) throws {
        // An export is a model, not a training snapshot: no optimizer moments or resume state.
        var checkpoint = checkpoint
        checkpoint.optimizerState = [:]
        checkpoint.trainingState = nil
        do {
            try FileProblem.createDirectory(atPath: directory.path)
        } catch {
            throw CheckpointError.writeFailed(path: directory.path, reason: error.reason)
        }
        try writeFile(Data(checkpoint.config.json.utf8), to: directory.appendingPathComponent("config.json"))
        switch format {
        case .hdf5:
            try checkpoint.write(to: directory.appendingPathComponent("model.h5"))
            return
        case .safetensors:
            break
        }
        let tensors = checkpoint.config.parameterSpecs.map { spec in
            let tensor = checkpoint.tensors[spec.name]!
            return (name: spec.name, tensor: spec.storedTransposedByHF ? tensor.transposed() : tensor)
        }
        try SafeTensorsFile.write(tensors, to: directory.appendingPathComponent("model.safetensors"))
        if let tokenizerModel = checkpoint.tokenizerModel {
            let kind = Tokenizer.kind(ofFile: tokenizerModel)
            try writeFile(Data(tokenizerModel), to: directory.appendingPathComponent(kind.fileName))
            if let config = checkpoint.tokenizerConfig {
                try writeFile(Data(config), to: directory.appendingPathComponent("tokenizer_config.json"))
            }
        }
        if !checkpoint.adapters.isEmpty {
            // PEFT's saved names: base_model.model.<module>.lora_A.weight
            let adapters = checkpoint.adapters.keys.sorted().map { (name: "base_model.model." + $0, tensor: checkpoint.adapters[$0]!) }
            try SafeTensorsFile.write(adapters, to: directory.appendingPathComponent("adapter_model.safetensors"))
            try writeFile(Data((checkpoint.adapterConfig ?? "{}").utf8),
                          to: directory.appendingPathComponent("adapter_config.json"))
        }
        if let ledger = checkpoint.privacyLedger {
            try writeFile(Data(ledger.utf8), to: directory.appendingPathComponent("privacy_ledger.json"))
        }
    }

    private static func writeFile(_ data: Data, to url: URL) throws {
        try writeAtomically(to: url) { temporary in
            do {
                try data.write(to: temporary)
            } catch {
                throw CheckpointError.writeFailed(path: url.path, reason: FileProblem.reason(for: error, path: url.path))
            }
        }
    }
}
