import Foundation

// C = channels (hidden size), V = vocabulary, P = max positions, L = layers, H = heads,
// KV = key/value heads, D = head dimension, I = MLP inner size, E = experts.

/// A bad or unsupported `config.json`; every case names the file and the key.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case notJSON(source: String, reason: String)
    /// The file could not be read (the reason in words: "no such file", "it is a directory, not a file").
    case unreadable(source: String, reason: String)
    case missingKey(source: String, key: String)
    case unknownModelType(source: String, value: String)
    case invalidValue(source: String, key: String, value: String, reason: String)
    /// Not JSON (or a duplicate key, …): the parser's error names the line and column.
    case invalidJSON(JSONParseError)
    /// The parameters alone (float32) need more memory than the machine has.
    case modelTooLarge(source: String, parameters: String, bytes: String, available: String)

    public var description: String {
        switch self {
        case .notJSON(let source, let reason):
            return "\(source): not a JSON object (\(reason))."
        case .unreadable(let source, let reason):
            return "\(source): cannot read the config: \(reason)."
        case .missingKey(let source, let key):
            return "\(source): key `\(key)` is required."
        case .unknownModelType(let source, let value):
            return "\(source): `model_type` is \"\(value)\"; dpft supports \(ModelType.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))."
        case .invalidValue(let source, let key, let value, let reason):
            return "\(source): `\(key)` = \(value) is invalid: \(reason)."
        case .invalidJSON(let error):
            return "\(error). A config.json must be one strict JSON object (no duplicate keys, comments or trailing commas)."
        case .modelTooLarge(let source, let parameters, let bytes, let available):
            return "\(source): the model has \(parameters) parameters, \(bytes) as float32 before any gradient or activation, but this machine has \(available) of memory. Choose smaller vocab_size, hidden size, intermediate size or layer count."
        }
    }
}

/// The architecture of a model, read from a Hugging Face `config.json` (HF keys and
/// HF defaults for absent keys).
public struct ModelConfig: Sendable, Equatable {
    public var modelType: ModelType
    public var vocabularySize: Int          // V
    public var hiddenSize: Int              // C
    public var layerCount: Int              // L
    public var headCount: Int               // H
    public var keyValueHeadCount: Int       // KV (= H without grouped-query attention)
    public var headDimension: Int           // D
    public var intermediateSize: Int        // I
    public var maxPositions: Int            // P
    public var normEpsilon: Double
    public var ropeTheta: Double            // rotary families only (0 for gpt2)
    public var tiedEmbeddings: Bool
    public var expertCount: Int             // E (mixture of experts; 0 otherwise)
    public var expertsPerToken: Int         // top-k (mixture of experts; 0 otherwise)

    /// The full HF config this was read from, with resolved defaults filled in, as JSON text
    /// (what `export` writes as config.json and what checkpoints store).
    public private(set) var json: String

    /// The sizes of a model; `json` is filled in by `init(json:source:)`.
    init(modelType: ModelType, vocabularySize: Int, hiddenSize: Int, layerCount: Int, headCount: Int,
         keyValueHeadCount: Int, headDimension: Int, intermediateSize: Int, maxPositions: Int,
         normEpsilon: Double, ropeTheta: Double = 0, tiedEmbeddings: Bool, expertCount: Int = 0,
         expertsPerToken: Int = 0) {
        self.modelType = modelType
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.layerCount = layerCount
        self.headCount = headCount
        self.keyValueHeadCount = keyValueHeadCount
        self.headDimension = headDimension
        self.intermediateSize = intermediateSize
        self.maxPositions = maxPositions
        self.normEpsilon = normEpsilon
        self.ropeTheta = ropeTheta
        self.tiedEmbeddings = tiedEmbeddings
        self.expertCount = expertCount
        self.expertsPerToken = expertsPerToken
        json = ""
    }

    /// The family this config belongs to (registered in `ModelFamilies`).
    public var family: any ModelFamily.Type {
        guard let family = ModelFamilies.family(modelType) else {
            preconditionFailure("model type \(modelType) was decoded but is not registered")
        }
        return family
    }

    /// Every module of the model, as its family declares it.
    public var declaration: ModelDeclaration { family.declaration(self) }

    /// Reads and validates a config with its family's keys and defaults. `source` names the
    /// file in error messages.
    public init(json data: Data, source: String) throws {
        let value: JSONValue
        do {
            value = try JSONParser.parse(data, source: source)
        } catch {
            throw ConfigError.invalidJSON(error)
        }
        guard case .object(let object) = value else {
            throw ConfigError.notJSON(source: source, reason: "the top level is \(value.kind), not an object")
        }
        guard let typeValue = object["model_type"], !typeValue.isNull else {
            throw ConfigError.missingKey(source: source, key: "model_type")
        }
        guard case .string(let typeName) = typeValue else {
            throw ConfigError.invalidValue(source: source, key: "model_type", value: typeValue.excerpt, reason: "expected a string")
        }
        guard let family = ModelFamilies.family(ModelType(rawValue: typeName)) else {
            throw ConfigError.unknownModelType(source: source, value: typeName)
        }
        do {
            self = try Self.decode(family, object: object, source: source)
        } catch let error as ConfigValueError {
            throw ConfigError.invalidValue(source: source, key: error.key, value: error.value, reason: error.reason)
        } catch let error as JSONAccessError {
            throw ConfigError.invalidValue(source: source, key: error.keyPath, value: "…", reason: error.problem)
        }
    }

    /// Reads a `config.json` file.
    public init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try FileProblem.contents(ofFile: url.path)
        } catch {
            throw ConfigError.unreadable(source: url.path, reason: error.reason)
        }
        try self.init(json: data, source: url.path)
    }

    /// Decodes `F.Config` and keeps the whole file as `json`, with the resolved values (HF
    /// defaults filled in) written over it: members keep their order and number literals
    /// (transformers 5 rejects `0` where MixtralConfig wants the float `router_jitter_noise`),
    /// a resolved value equal to the file's keeps the file's literal, new keys come last.
    private static func decode<F: ModelFamily>(_ family: F.Type, object: JSONObject, source: String) throws -> ModelConfig {
        let decoded = try F.Config(from: JSONValueDecoder(value: .object(object), source: source))
        var config = try F.modelConfig(decoded)
        var resolved = object
        if case .object(let values) = try JSONValueEncoder.encode(decoded) {
            for (key, value) in values where resolved[key] != value { resolved[key] = value }
        }
        if resolved["architectures"] == nil { resolved["architectures"] = [.string(F.architecture)] }
        config.json = JSONValue.object(resolved).text(.pretty())
        return config
    }
}

extension ModelConfig {
    /// The number of parameter scalars, or nil when it overflows `Int`.
    public var parameterCount: Int? {
        var total = 0
        for spec in parameterSpecs {
            var count = 1
            for dimension in spec.shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
                if overflow { return nil }
                count = product
            }
            let (sum, overflow) = total.addingReportingOverflow(count)
            if overflow { return nil }
            total = sum
        }
        return total
    }

    /// Refuses a model whose float32 parameters alone exceed the machine's physical memory,
    /// before anything is allocated (an allocation that large aborts the process instead of
    /// throwing). `source` names the config in the message.
    public func checkParametersFitInMemory(source: String,
                                           availableBytes: UInt64 = ProcessInfo.processInfo.physicalMemory) throws {
        let available = Double(availableBytes)
        let bytes = parameterCount.map { Double($0) * 4 } ?? .infinity
        guard bytes > available else { return }
        func gib(_ value: Double) -> String { value.isFinite ? String(format: "%.3g GiB", value / 1_073_741_824) : "more than 2^63 bytes" }
        throw ConfigError.modelTooLarge(source: source, parameters: parameterCount.map(String.init) ?? "more than 2^63",
                                        bytes: gib(bytes), available: gib(available))
    }
}
