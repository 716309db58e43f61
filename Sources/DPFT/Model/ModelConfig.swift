import Foundation

// C = channels (hidden size), V = vocabulary, P = max positions, L = layers, H = heads,
// KV = key/value heads, D = head dimension, I = MLP inner size, E = experts.

/// A bad or unsupported `config.json`; every case names the file and the key.
public enum ConfigError: Error, CustomStringConvertible, Equatable {
    case notJSON(source: String, reason: String)
    case missingKey(source: String, key: String)
    case unknownModelType(source: String, value: String)
    case invalidValue(source: String, key: String, value: String, reason: String)

    public var description: String {
        switch self {
        case .notJSON(let source, let reason):
            return "\(source): not a JSON object (\(reason))."
        case .missingKey(let source, let key):
            return "\(source): key `\(key)` is required."
        case .unknownModelType(let source, let value):
            return "\(source): `model_type` is \"\(value)\"; dpft supports \(ModelType.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", "))."
        case .invalidValue(let source, let key, let value, let reason):
            return "\(source): `\(key)` = \(value) is invalid: \(reason)."
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
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ConfigError.notJSON(source: source, reason: "\(error.localizedDescription)")
        }
        guard let dictionary = object as? [String: Any] else {
            throw ConfigError.notJSON(source: source, reason: "the top level is not an object")
        }
        guard let typeValue = dictionary["model_type"], !(typeValue is NSNull) else {
            throw ConfigError.missingKey(source: source, key: "model_type")
        }
        guard let typeName = typeValue as? String else {
            throw ConfigError.invalidValue(source: source, key: "model_type", value: "\(typeValue)", reason: "expected a string")
        }
        guard let family = ModelFamilies.family(ModelType(rawValue: typeName)) else {
            throw ConfigError.unknownModelType(source: source, value: typeName)
        }
        do {
            self = try Self.decode(family, data: data, original: dictionary)
        } catch let error as ConfigValueError {
            throw ConfigError.invalidValue(source: source, key: error.key, value: error.value, reason: error.reason)
        } catch let error as DecodingError {
            throw ConfigError.notJSON(source: source, reason: "\(error)")
        }
    }

    /// Reads a `config.json` file.
    public init(contentsOf url: URL) throws {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ConfigError.notJSON(source: url.path, reason: "the file does not exist or cannot be read")
        }
        try self.init(json: data, source: url.path)
    }

    /// Decodes `F.Config` and keeps the whole file, the resolved values written over it, as `json`.
    private static func decode<F: ModelFamily>(_ family: F.Type, data: Data, original: [String: Any]) throws -> ModelConfig {
        let decoded = try JSONDecoder().decode(F.Config.self, from: data)
        var config = try F.modelConfig(decoded)
        let encoded = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(decoded)) as? [String: Any] ?? [:]
        var resolved = original.merging(encoded) { _, new in new }
        resolved["architectures"] = original["architectures"] ?? [F.architecture]
        let text = try JSONSerialization.data(withJSONObject: resolved, options: [.sortedKeys, .prettyPrinted])
        config.json = Self.restoringFloatLiterals(String(decoding: text, as: UTF8.self))
        return config
    }

    /// HF config keys whose values transformers types as float. JSONSerialization writes a
    /// whole-number Double without its fraction (`0.0` → `0`), and transformers 5 rejects an
    /// int for some of them (MixtralConfig's `router_jitter_noise`), so these get it back.
    static let floatKeys = ["router_jitter_noise", "router_aux_loss_coef", "attention_dropout", "initializer_range",
                            "rope_theta", "rms_norm_eps", "layer_norm_epsilon", "embd_pdrop", "attn_pdrop",
                            "resid_pdrop", "summary_first_dropout"]

    /// `"key" : 0` → `"key" : 0.0` for the float-typed keys (one key per line, as pretty-printed).
    static func restoringFloatLiterals(_ text: String) -> String {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            let trimmed = line.drop { $0 == " " }
            guard let key = floatKeys.first(where: { trimmed.hasPrefix("\"\($0)\" : ") }) else { return String(line) }
            let valueStart = line.index(line.startIndex, offsetBy: line.count - trimmed.count + key.count + 5)
            var value = line[valueStart...]
            let comma = value.hasSuffix(",")
            if comma { value = value.dropLast() }
            guard !value.isEmpty, value.allSatisfy({ $0.isNumber || $0 == "-" }) else { return String(line) }
            return line[..<valueStart] + value + ".0" + (comma ? "," : "")
        }
        return lines.joined(separator: "\n")
    }
}
