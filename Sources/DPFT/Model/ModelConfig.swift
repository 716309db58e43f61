import Foundation

// C = channels (hidden size), V = vocabulary, P = max positions, L = layers, H = heads,
// KV = key/value heads, D = head dimension, I = MLP inner size, E = experts.

/// The model families dpft implements (DESIGN.md §2).
public enum ModelType: String, Sendable, CaseIterable {
    case gpt2, llama, mixtral
}

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
    public var keyValueHeadCount: Int       // KV (= H for gpt2)
    public var headDimension: Int           // D
    public var intermediateSize: Int        // I
    public var maxPositions: Int            // P
    public var normEpsilon: Double
    public var ropeTheta: Double            // llama/mixtral only
    public var tiedEmbeddings: Bool
    public var expertCount: Int             // E (mixtral; 0 otherwise)
    public var expertsPerToken: Int         // top-k (mixtral; 0 otherwise)

    /// The full HF config this was read from, with resolved defaults filled in, as JSON text
    /// (what `export` writes as config.json and what checkpoints store).
    public private(set) var json: String

    /// Reads and validates a config. `source` names the file in error messages.
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
        try self.init(dictionary: dictionary, source: source)
    }

    /// Reads a `config.json` file.
    public init(contentsOf url: URL) throws {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ConfigError.notJSON(source: url.path, reason: "the file does not exist or cannot be read")
        }
        try self.init(json: data, source: url.path)
    }

    init(dictionary: [String: Any], source: String) throws {
        let keys = ConfigKeys(dictionary: dictionary, source: source)
        guard let typeName = try keys.string("model_type") else {
            throw ConfigError.missingKey(source: source, key: "model_type")
        }
        guard let type = ModelType(rawValue: typeName) else {
            throw ConfigError.unknownModelType(source: source, value: typeName)
        }
        modelType = type
        var resolved = dictionary
        switch type {
        case .gpt2:
            vocabularySize = try keys.positive("vocab_size", default: 50257)
            hiddenSize = try keys.positive("n_embd", default: 768)
            layerCount = try keys.positive("n_layer", default: 12)
            headCount = try keys.positive("n_head", default: 12)
            keyValueHeadCount = headCount
            maxPositions = try keys.positive("n_positions", default: 1024)
            intermediateSize = try keys.positive("n_inner", default: 4 * hiddenSize)
            normEpsilon = try keys.positiveReal("layer_norm_epsilon", default: 1e-5)
            ropeTheta = 0
            tiedEmbeddings = try keys.bool("tie_word_embeddings", default: true)
            expertCount = 0
            expertsPerToken = 0
            let activation = try keys.string("activation_function") ?? "gelu_new"
            guard ["gelu_new", "gelu_pytorch_tanh"].contains(activation) else {
                throw ConfigError.invalidValue(source: source, key: "activation_function", value: "\"\(activation)\"",
                                               reason: "dpft implements GPT-2's tanh GELU (\"gelu_new\") only")
            }
            guard hiddenSize % headCount == 0 else {
                throw ConfigError.invalidValue(source: source, key: "n_head", value: "\(headCount)",
                                               reason: "n_embd (\(hiddenSize)) must be divisible by it")
            }
            headDimension = hiddenSize / headCount
            resolved["architectures"] = resolved["architectures"] ?? ["GPT2LMHeadModel"]
            resolved.merge(["vocab_size": vocabularySize, "n_embd": hiddenSize, "n_layer": layerCount,
                            "n_head": headCount, "n_positions": maxPositions,
                            "layer_norm_epsilon": normEpsilon, "tie_word_embeddings": tiedEmbeddings,
                            "activation_function": activation]) { _, new in new }
        case .llama, .mixtral:
            let isMixtral = type == .mixtral
            vocabularySize = try keys.positive("vocab_size", default: 32000)
            hiddenSize = try keys.positive("hidden_size", default: 4096)
            layerCount = try keys.positive("num_hidden_layers", default: 32)
            headCount = try keys.positive("num_attention_heads", default: 32)
            keyValueHeadCount = try keys.positive("num_key_value_heads", default: isMixtral ? 8 : headCount)
            intermediateSize = try keys.positive("intermediate_size", default: isMixtral ? 14336 : 11008)
            maxPositions = try keys.positive("max_position_embeddings", default: isMixtral ? 131072 : 2048)
            normEpsilon = try keys.positiveReal("rms_norm_eps", default: isMixtral ? 1e-5 : 1e-6)
            // transformers ≥ 5 nests the rotary settings in `rope_parameters`; older files
            // have a top-level `rope_theta` and an optional `rope_scaling`.
            let ropeParameters = dictionary["rope_parameters"].flatMap { $0 is NSNull ? nil : $0 }
            if let ropeParameters {
                guard let nested = ropeParameters as? [String: Any] else {
                    throw ConfigError.invalidValue(source: source, key: "rope_parameters", value: "\(ropeParameters)",
                                                   reason: "expected an object")
                }
                let rope = ConfigKeys(dictionary: nested, source: source, prefix: "rope_parameters.")
                let ropeType = try rope.string("rope_type") ?? "default"
                guard ropeType == "default" else {
                    throw ConfigError.invalidValue(source: source, key: "rope_parameters.rope_type", value: "\"\(ropeType)\"",
                                                   reason: "only the default (unscaled) rotary embedding is supported")
                }
                ropeTheta = try rope.positiveReal("rope_theta", default: isMixtral ? 1e6 : 10000)
            } else {
                ropeTheta = try keys.positiveReal("rope_theta", default: isMixtral ? 1e6 : 10000)
            }
            tiedEmbeddings = try keys.bool("tie_word_embeddings", default: false)
            expertCount = isMixtral ? try keys.positive("num_local_experts", default: 8) : 0
            expertsPerToken = isMixtral ? try keys.positive("num_experts_per_tok", default: 2) : 0
            if isMixtral && expertsPerToken > expertCount {
                throw ConfigError.invalidValue(source: source, key: "num_experts_per_tok", value: "\(expertsPerToken)",
                                               reason: "it exceeds num_local_experts (\(expertCount))")
            }
            let activation = try keys.string("hidden_act") ?? "silu"
            guard activation == "silu" else {
                throw ConfigError.invalidValue(source: source, key: "hidden_act", value: "\"\(activation)\"",
                                               reason: "dpft implements the SiLU (SwiGLU) MLP only")
            }
            if let scaling = dictionary["rope_scaling"], !(scaling is NSNull) {
                throw ConfigError.invalidValue(source: source, key: "rope_scaling", value: "\(scaling)",
                                               reason: "rotary scaling is not supported; use null")
            }
            guard headCount % keyValueHeadCount == 0 else {
                throw ConfigError.invalidValue(source: source, key: "num_key_value_heads", value: "\(keyValueHeadCount)",
                                               reason: "num_attention_heads (\(headCount)) must be a multiple of it")
            }
            let defaultHeadDimension = hiddenSize / headCount
            headDimension = try keys.positive("head_dim", default: defaultHeadDimension)
            guard headDimension % 2 == 0 else {
                throw ConfigError.invalidValue(source: source, key: "head_dim", value: "\(headDimension)",
                                               reason: "rotary embeddings need an even head dimension")
            }
            if dictionary["head_dim"] == nil && hiddenSize % headCount != 0 {
                throw ConfigError.invalidValue(source: source, key: "num_attention_heads", value: "\(headCount)",
                                               reason: "hidden_size (\(hiddenSize)) must be divisible by it (or give head_dim)")
            }
            resolved["architectures"] = resolved["architectures"] ?? [isMixtral ? "MixtralForCausalLM" : "LlamaForCausalLM"]
            var values: [String: Any] = [
                "vocab_size": vocabularySize, "hidden_size": hiddenSize, "num_hidden_layers": layerCount,
                "num_attention_heads": headCount, "num_key_value_heads": keyValueHeadCount,
                "intermediate_size": intermediateSize, "max_position_embeddings": maxPositions,
                "rms_norm_eps": normEpsilon, "tie_word_embeddings": tiedEmbeddings,
                "hidden_act": activation, "head_dim": headDimension,
            ]
            if ropeParameters == nil { values["rope_theta"] = ropeTheta }
            if isMixtral {
                values["num_local_experts"] = expertCount
                values["num_experts_per_tok"] = expertsPerToken
            }
            resolved.merge(values) { _, new in new }
        }
        let text = try JSONSerialization.data(withJSONObject: resolved, options: [.sortedKeys, .prettyPrinted])
        json = Self.restoringFloatLiterals(String(decoding: text, as: UTF8.self))
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

/// Typed access to config keys with errors that name the key.
private struct ConfigKeys {
    let dictionary: [String: Any]
    let source: String
    /// Prepended to key names in messages (for nested objects).
    var prefix = ""

    func string(_ key: String) throws -> String? {
        guard let value = dictionary[key], !(value is NSNull) else { return nil }
        guard let text = value as? String else {
            throw ConfigError.invalidValue(source: source, key: prefix + key, value: "\(value)", reason: "expected a string")
        }
        return text
    }

    func positive(_ key: String, default fallback: Int) throws -> Int {
        guard let value = dictionary[key], !(value is NSNull) else { return fallback }
        guard let number = value as? NSNumber, !isBoolean(number),
              let integer = Int(exactly: number.doubleValue) else {
            throw ConfigError.invalidValue(source: source, key: prefix + key, value: "\(value)", reason: "expected a whole number")
        }
        guard integer > 0 && integer <= 1 << 24 else {
            throw ConfigError.invalidValue(source: source, key: prefix + key, value: "\(integer)",
                                           reason: "expected a positive number no larger than \(1 << 24)")
        }
        return integer
    }

    func positiveReal(_ key: String, default fallback: Double) throws -> Double {
        guard let value = dictionary[key], !(value is NSNull) else { return fallback }
        guard let number = value as? NSNumber, !isBoolean(number) else {
            throw ConfigError.invalidValue(source: source, key: prefix + key, value: "\(value)", reason: "expected a number")
        }
        let real = number.doubleValue
        guard real > 0 && real.isFinite else {
            throw ConfigError.invalidValue(source: source, key: prefix + key, value: "\(real)", reason: "expected a positive number")
        }
        return real
    }

    func bool(_ key: String, default fallback: Bool) throws -> Bool {
        guard let value = dictionary[key], !(value is NSNull) else { return fallback }
        guard let number = value as? NSNumber, isBoolean(number) else {
            throw ConfigError.invalidValue(source: source, key: prefix + key, value: "\(value)", reason: "expected true or false")
        }
        return number.boolValue
    }

    private func isBoolean(_ number: NSNumber) -> Bool {
        // JSONSerialization gives booleans an objCType of "c" (char); numbers are "i", "q", "d"…
        String(cString: number.objCType) == "c"
    }
}
