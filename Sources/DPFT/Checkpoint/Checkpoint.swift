import Foundation

/// A dpft checkpoint: a model's config and named float32 tensors, plus optional LoRA
/// adapters, privacy ledger and tokenizer (DESIGN.md §6).
///
/// On disk it is a plain HDF5 file:
///
///     /                      attrs format = "dpft", format_version = 1, model_type, config (JSON)
///     /tensors/<HF name>     float32 datasets (linear weights [out, in] in every family)
///     /adapters/<PEFT name>  LoRA tensors, attr adapter_config (JSON)
///     /privacy               attr ledger (JSON)
///     /tokenizer             uint8 dataset: the tokenizer file's bytes, attr kind =
///                            "sentencepiece" (a .model) or "tokenizer.json"
///     /tokenizer_config      uint8 dataset: tokenizer_config.json, when imported with one
///
/// A LoRA run's step checkpoint may instead refer to its frozen base (`frozenBase`): root
/// attrs `base_checkpoint` (absolute path) and `base_sha256`, `format_version` 2, and no
/// `/tensors`; reading it reads the base's tensors after checking the base file's SHA-256.
public struct Checkpoint {
    /// The newest `format_version` this build reads: 1 for a checkpoint that stands alone
    /// (what older builds read, and what this build writes unless `frozenBase` is set), 2 for
    /// one that refers to its frozen base.
    public static let formatVersion: Int64 = 2

    /// A frozen base checkpoint a LoRA step checkpoint refers to instead of copying its
    /// weights: the file and the SHA-256 its bytes had when the run started.
    public struct BaseReference: Equatable, Sendable {
        /// Absolute path of the base checkpoint file.
        public var path: String
        /// 64 lowercase hex digits.
        public var sha256: String

        public init(path: String, sha256: String) {
            self.path = path
            self.sha256 = sha256
        }

        /// The reference to the standalone checkpoint file at `url` as it is now.
        public init(file url: URL) throws {
            path = url.standardizedFileURL.path
            sha256 = try fileSHA256(url)
        }
    }

    public var config: ModelConfig
    /// Model tensors by HF name (see `ModelConfig.parameterSpecs`).
    public var tensors: [String: Tensor]
    /// LoRA tensors by PEFT name; empty when the model has no adapters.
    public var adapters: [String: Tensor] = [:]
    /// PEFT `adapter_config.json` text, present when `adapters` is not empty.
    public var adapterConfig: String?
    /// The privacy ledger (JSON text); nil for a non-private checkpoint.
    public var privacyLedger: String?
    /// The tokenizer file's bytes — a SentencePiece model or a `tokenizer.json` — so that the
    /// checkpoint stands alone; `/tokenizer`, its `kind` attribute says which.
    public var tokenizerModel: [UInt8]?
    /// The `tokenizer_config.json` imported beside a `tokenizer.json`; `/tokenizer_config`.
    public var tokenizerConfig: [UInt8]?
    /// Optimizer moments for resuming, by key (e.g. `exp_avg/<tensor name>`); `/optimizer`.
    public var optimizerState: [String: Tensor] = [:]
    /// Training state for resuming (step, sampler, schedule…) as JSON text; `/state`.
    public var trainingState: String?
    /// When set, `write` stores this reference instead of `tensors` (which must equal the
    /// base's). `read` resolves a reference into `tensors` and leaves this nil, so that a
    /// checkpoint read and written again (e.g. by `dpft export`) stands alone.
    public var frozenBase: BaseReference?

    public init(config: ModelConfig, tensors: [String: Tensor]) {
        self.config = config
        self.tensors = tensors
    }

    /// A randomly initialised model: weights and embeddings normal(0, 0.02), norm weights 1,
    /// biases 0. The same seed gives the same tensors.
    public static func initialized(config: ModelConfig, seed: UInt64) -> Checkpoint {
        var generator = SeededGenerator(seed: seed)
        var tensors: [String: Tensor] = [:]
        for spec in config.parameterSpecs {
            let tensor = Tensor(zeros: spec.shape)
            switch spec.kind {
            case .embedding, .positionEmbedding, .linearWeight, .router, .loraA, .loraB:
                tensor.fillNormal(std: 0.02, using: &generator)
            case .normWeight:
                tensor.fill(1)
            case .linearBias, .normBias:
                break
            }
            tensors[spec.name] = tensor
        }
        return Checkpoint(config: config, tensors: tensors)
    }

    /// Checks that `tensors` holds exactly the config's parameters with their shapes.
    public func validate(source: String) throws {
        let specs = config.parameterSpecs
        for spec in specs {
            guard let tensor = tensors[spec.name] else {
                throw CheckpointError.missingTensor(path: source, name: spec.name)
            }
            guard tensor.shape == spec.shape else {
                throw CheckpointError.shapeMismatch(path: source, name: spec.name,
                                                    expected: spec.shape, found: tensor.shape)
            }
        }
        let known = Set(specs.map(\.name))
        if let extra = tensors.keys.sorted().first(where: { !known.contains($0) }) {
            throw CheckpointError.unexpectedTensor(path: source, name: extra)
        }
    }

    /// This checkpoint without its tensors and adapters: the config, tokenizer and metadata on
    /// which `Transformer.checkpoint(base:)` puts a model's current weights.
    public var withoutWeights: Checkpoint {
        var copy = self
        copy.tensors = [:]
        copy.adapters = [:]
        return copy
    }

    // MARK: Writing

    /// Writes the checkpoint atomically (temporary file, then rename).
    public func write(to url: URL) throws {
        if frozenBase == nil { try validate(source: url.path) }  // else the base file holds the tensors
        try writeAtomically(to: url) { temporary in
            let file = try HDF5File.create(temporary.path)
            try file.setAttribute("format", .string("dpft"))
            try file.setAttribute("format_version", .integer(frozenBase == nil ? 1 : 2))
            try file.setAttribute("model_type", .string(config.modelType.rawValue))
            try file.setAttribute("config", .string(config.json))
            if let frozenBase {
                try file.setAttribute("base_checkpoint", .string(frozenBase.path))
                try file.setAttribute("base_sha256", .string(frozenBase.sha256))
            } else {
                try file.createGroup("/tensors")
                for spec in config.parameterSpecs {
                    try file.writeTensor(tensors[spec.name]!, at: "/tensors/\(spec.name)")
                }
            }
            if !adapters.isEmpty {
                try file.createGroup("/adapters")
                try file.setAttribute("adapter_config", .string(adapterConfig ?? "{}"), on: "/adapters")
                for name in adapters.keys.sorted() {
                    try file.writeTensor(adapters[name]!, at: "/adapters/\(name)")
                }
            }
            if let privacyLedger {
                try file.createGroup("/privacy")
                try file.setAttribute("ledger", .string(privacyLedger), on: "/privacy")
            }
            if let tokenizerModel {
                try file.writeBytes(tokenizerModel, at: "/tokenizer")
                let kind = Tokenizer.isJSON(tokenizerModel) ? "tokenizer.json" : "sentencepiece"
                try file.setAttribute("kind", .string(kind), on: "/tokenizer")
            }
            if let tokenizerConfig { try file.writeBytes(tokenizerConfig, at: "/tokenizer_config") }
            if !optimizerState.isEmpty {
                try file.createGroup("/optimizer")
                var created: Set<String> = ["/optimizer"]
                for key in optimizerState.keys.sorted() {
                    // keys like "exp_avg/<tensor name>" become nested groups
                    var path = "/optimizer"
                    for component in key.split(separator: "/").dropLast() {
                        path += "/\(component)"
                        if created.insert(path).inserted { try file.createGroup(path) }
                    }
                    try file.writeTensor(optimizerState[key]!, at: "/optimizer/\(key)")
                }
            }
            if let trainingState {
                try file.createGroup("/state")
                try file.setAttribute("json", .string(trainingState), on: "/state")
            }
            try file.flush()
        }
    }

    // MARK: Reading

    /// Reads and validates a checkpoint: the format marker and version, the config (and that
    /// `model_type` agrees with it), every tensor's presence and shape, and that every weight
    /// is finite; LoRA adapters against their adapter_config (`validateAdapters`). Errors name
    /// the file and the tensor or key.
    public static func read(from url: URL) throws -> Checkpoint {
        let path = url.path
        let file = try HDF5File.openForReading(path)
        let config = try readHeader(file)
        let frozenBase = try readBaseReference(file)
        let tensors = try frozenBase.map { try baseTensors($0, config: config, path: path) }
            ?? readModelTensors(file, config: config)
        var checkpoint = Checkpoint(config: config, tensors: tensors)  // stands alone: `frozenBase` stays nil
        if file.isGroup("/adapters") {
            for name in try file.children(of: "/adapters") {
                checkpoint.adapters[name] = try finite(try file.readTensor(at: "/adapters/\(name)"), name: name, path: path)
            }
            checkpoint.adapterConfig = try file.attribute("adapter_config", on: "/adapters")?.stringValue
            try checkpoint.validateAdapters(source: path)
        }
        if file.exists("/privacy") {
            checkpoint.privacyLedger = try file.attribute("ledger", on: "/privacy")?.stringValue
        }
        if file.exists("/tokenizer") {
            checkpoint.tokenizerModel = try file.readBytes(at: "/tokenizer")
        }
        if file.exists("/tokenizer_config") {
            checkpoint.tokenizerConfig = try file.readBytes(at: "/tokenizer_config")
        }
        if file.isGroup("/optimizer") {
            func walk(_ path: String, prefix: String) throws {
                for child in try file.children(of: path) {
                    let childPath = path + "/" + child
                    if file.isGroup(childPath) {
                        try walk(childPath, prefix: prefix + child + "/")
                    } else {
                        checkpoint.optimizerState[prefix + child] = try file.readTensor(at: childPath)
                    }
                }
            }
            try walk("/optimizer", prefix: "")
        }
        if file.isGroup("/state") {
            checkpoint.trainingState = try file.attribute("json", on: "/state")?.stringValue
        }
        return checkpoint
    }

    /// The root attributes: `format` = "dpft", an integer `format_version` this build reads,
    /// the config, and a `model_type` that matches the config's.
    private static func readHeader(_ file: HDF5File) throws -> ModelConfig {
        let path = file.path
        guard let format = try file.attribute("format") else {
            throw CheckpointError.wrongFormat(path: path, found: "(none)")
        }
        guard format.stringValue == "dpft" else {
            throw CheckpointError.wrongFormat(path: path, found: format.stringValue ?? "\(format)")
        }
        switch try file.attribute("format_version") {
        case .integer(let version)? where version >= 1 && version <= formatVersion:
            break
        case .integer(let version)?:
            throw CheckpointError.unsupportedVersion(path: path, found: version)
        case let other?:
            throw CheckpointError.invalidAttribute(path: path, name: "format_version", found: "\(other)",
                                                   expected: "the integer \(formatVersion)")
        case nil:
            throw CheckpointError.missingAttribute(path: path, name: "format_version")
        }
        guard let configText = try file.attribute("config")?.stringValue else {
            throw CheckpointError.missingAttribute(path: path, name: "config")
        }
        let config = try ModelConfig(json: Data(configText.utf8), source: "\(path) (attribute `config`)")
        try config.checkParametersFitInMemory(source: "\(path) (attribute `config`)")
        if let modelType = try file.attribute("model_type"), modelType.stringValue != config.modelType.rawValue {
            throw CheckpointError.invalidAttribute(path: path, name: "model_type", found: "\(modelType)",
                                                   expected: "\"\(config.modelType.rawValue)\" as in its config")
        }
        return config
    }

    /// The frozen base the checkpoint file at `url` refers to; nil when it stands alone.
    public static func frozenBase(of url: URL) throws -> BaseReference? {
        try readBaseReference(try HDF5File.openForReading(url.path))
    }

    /// The `base_checkpoint` / `base_sha256` root attributes, when the checkpoint has them.
    private static func readBaseReference(_ file: HDF5File) throws -> BaseReference? {
        guard let base = try file.attribute("base_checkpoint") else { return nil }
        guard let basePath = base.stringValue else {
            throw CheckpointError.invalidAttribute(path: file.path, name: "base_checkpoint", found: "\(base)",
                                                   expected: "the base checkpoint's path")
        }
        guard let sha256 = try file.attribute("base_sha256")?.stringValue else {
            throw CheckpointError.missingAttribute(path: file.path, name: "base_sha256")
        }
        return BaseReference(path: basePath, sha256: sha256)
    }

    /// The tensors of the frozen base `reference` of the checkpoint at `path`: the base file
    /// must exist, have the SHA-256 recorded when the run started, stand alone, and have
    /// `config`.
    private static func baseTensors(_ reference: BaseReference, config: ModelConfig, path: String) throws -> [String: Tensor] {
        let url = URL(fileURLWithPath: reference.path)
        guard FileManager.default.fileExists(atPath: reference.path) else {
            throw CheckpointError.baseMissing(path: path, base: reference.path)
        }
        let found = try fileSHA256(url)
        guard found == reference.sha256 else {
            throw CheckpointError.baseChanged(path: path, base: reference.path, expected: reference.sha256, found: found)
        }
        let base = try read(from: url)
        guard base.frozenBase == nil, base.config.json == config.json else {
            throw CheckpointError.invalidAttribute(path: path, name: "base_checkpoint", found: "\"\(reference.path)\"",
                                                   expected: "a standalone checkpoint with this checkpoint's config")
        }
        return base.tensors
    }

    /// Every tensor the config names, present, of the config's shape and finite; no others.
    private static func readModelTensors(_ file: HDF5File, config: ModelConfig) throws -> [String: Tensor] {
        let path = file.path
        let specs = config.parameterSpecs
        guard file.isGroup("/tensors") else {
            throw CheckpointError.missingTensor(path: path, name: specs.first?.name ?? "/tensors")
        }
        let known = Set(specs.map(\.name))
        if let extra = try file.children(of: "/tensors").first(where: { !known.contains($0) }) {
            throw CheckpointError.unexpectedTensor(path: path, name: extra)
        }
        var tensors: [String: Tensor] = [:]
        for spec in specs {
            let objectPath = "/tensors/\(spec.name)"
            guard file.exists(objectPath) else {
                throw CheckpointError.missingTensor(path: path, name: spec.name)
            }
            let shape = try file.shape(of: objectPath)
            guard shape == spec.shape else {
                throw CheckpointError.shapeMismatch(path: path, name: spec.name, expected: spec.shape, found: shape)
            }
            tensors[spec.name] = try finite(try file.readTensor(at: objectPath), name: spec.name, path: path)
        }
        return tensors
    }

    /// `tensor`, unless it holds a NaN or an infinity: a model that diverged (or a damaged
    /// file) must not be trained, evaluated or exported as if it were a model.
    private static func finite(_ tensor: Tensor, name: String, path: String) throws -> Tensor {
        let values = UnsafeBufferPointer(start: tensor.pointer, count: tensor.count)
        if let index = values.firstIndex(where: { !$0.isFinite }) {
            throw CheckpointError.nonFiniteTensor(path: path, name: name, index: index, value: Double(values[index]))
        }
        return tensor
    }
}
