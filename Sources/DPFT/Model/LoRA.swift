import Foundation

/// LoRA adapters (DESIGN.md §2): `y = W x + (alpha / r) · B A x` on the chosen linear modules,
/// `A [r, in]` random, `B [out, r]` zero; names follow PEFT (`<module>.lora_A.weight`).
public struct LoRAConfig: Codable, Equatable, Sendable {
    /// Rank r.
    public var rank: Int
    /// Scaling numerator: the update is scaled by alpha / r.
    public var alpha: Double
    /// Module names to adapt, matched against the last component of a linear module's name
    /// (e.g. "q_proj", "c_attn", "c_proj", "w1").
    public var targets: [String]

    public init(rank: Int, alpha: Double, targets: [String]) {
        self.rank = rank
        self.alpha = alpha
        self.targets = targets
    }

    enum CodingKeys: String, CodingKey {
        case rank = "r", alpha = "lora_alpha", targets = "target_modules"
    }

    /// alpha / r.
    public var scale: Float { Float(alpha / Double(rank)) }

    /// PEFT-style adapter_config.json text.
    public var peftJSON: String {
        let object: [String: Any] = ["peft_type": "LORA", "r": rank, "lora_alpha": alpha,
                                     "target_modules": targets, "lora_dropout": 0.0, "bias": "none",
                                     "task_type": "CAUSAL_LM"]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}

/// Errors in choosing or loading adapters; those about a checkpoint name it (`source`).
public enum LoRAError: Error, CustomStringConvertible, Equatable {
    case invalidRank(Int)
    case unknownTarget(String, available: [String])
    case missingAdapter(name: String, source: String)
    /// An adapter tensor whose shape is not the one its module and rank imply.
    case adapterShapeMismatch(name: String, found: [Int], expected: [Int], source: String)
    /// The adapter_config (PEFT's adapter_config.json) lacks `key` or holds a value of the wrong kind there.
    case badAdapterConfig(source: String, key: String, reason: String)

    public var description: String {
        switch self {
        case .invalidRank(let rank):
            return "LoRA rank \(rank) is invalid; use a positive rank (e.g. 8)."
        case .unknownTarget(let target, let available):
            let router = target == "gate" && available.contains("w1")
                ? " A mixture-of-experts router (`block_sparse_moe.gate`) takes no LoRA: train it in full or leave it frozen." : ""
            return "LoRA target \"\(target)\" matches no linear module of this model; available: \(available.joined(separator: ", "))."
                + router
        case .missingAdapter(let name, let source):
            return "\(source): LoRA tensor `\(name)` is missing; its adapter_config adapts that module."
        case .adapterShapeMismatch(let name, let found, let expected, let source):
            return "\(source): LoRA tensor `\(name)` has shape \(found), but its module and the adapter_config's rank "
                + "require \(expected) (lora_A is [r, in], lora_B is [out, r])."
        case .badAdapterConfig(let source, let key, let reason):
            return "\(source): adapter_config `\(key)`: \(reason). LoRA adapters need PEFT's adapter_config with "
                + "`r` (an integer rank), `lora_alpha` (a number) and `target_modules` (an array of module names)."
        }
    }
}

/// One adapted linear module: its frozen weight and its two LoRA tensors.
public struct AdapterSpec: Sendable, Equatable {
    /// Module name, e.g. `model.layers.0.self_attn.q_proj`.
    public var module: String
    public var inFeatures: Int
    public var outFeatures: Int
    public var block: Int?
    public var loraAName: String { module + ".lora_A.weight" }
    public var loraBName: String { module + ".lora_B.weight" }
    public var weightName: String { module + ".weight" }
}

extension ModelConfig {
    /// The modules LoRA can adapt: every block's linear (not the routers, embeddings or head).
    var adaptableModules: [ModuleDeclaration] {
        declaration.modules.filter { $0.kind == .linear && $0.block != nil }
    }

    /// Short names of the linear modules LoRA can adapt in this model, in first-seen order
    /// (the last component of the module name, as PEFT's `target_modules` matches it).
    public var adaptableModuleNames: [String] {
        var seen: [String] = []
        for module in adaptableModules where !seen.contains(module.shortName) { seen.append(module.shortName) }
        return seen
    }

    /// The modules `lora` adapts; an unknown target is an error naming it.
    public func adapterSpecs(for lora: LoRAConfig) throws -> [AdapterSpec] {
        guard lora.rank > 0 else { throw LoRAError.invalidRank(lora.rank) }
        let modules = adaptableModules
        let available = adaptableModuleNames
        for target in lora.targets where !available.contains(target) {
            throw LoRAError.unknownTarget(target, available: available)
        }
        return modules.filter { lora.targets.contains($0.shortName) }.map { module in
            AdapterSpec(module: module.name, inFeatures: module.shape[1], outFeatures: module.shape[0], block: module.block)
        }
    }
}

extension ModuleDeclaration {
    /// The last component of the name (`q_proj`, `c_attn`, `w1`): what LoRA targets match.
    var shortName: String { name.split(separator: ".").last.map(String.init) ?? name }
}

extension Checkpoint {
    /// Adds freshly initialised adapters as PEFT does: A ~ U(−1/√in, 1/√in) (Kaiming-uniform
    /// with a = √5), B = 0.
    public mutating func addAdapters(_ lora: LoRAConfig, seed: UInt64) throws {
        var generator = SeededGenerator(seed: seed)
        for adapter in try config.adapterSpecs(for: lora) {
            let a = Tensor(zeros: [lora.rank, adapter.inFeatures])
            let bound = 1 / Double(adapter.inFeatures).squareRoot()
            for i in 0..<a.count { a.pointer[i] = Float((generator.nextOpenUnit() * 2 - 1) * bound) }
            adapters[adapter.loraAName] = a
            adapters[adapter.loraBName] = Tensor(zeros: [adapter.outFeatures, lora.rank])
        }
        adapterConfig = lora.peftJSON
    }

    /// The LoRA configuration stored with the adapters, or nil when there are none. `source`
    /// names the checkpoint in errors, which name the adapter_config key at fault.
    public func loraConfig(source: String = "the checkpoint") throws -> LoRAConfig? {
        guard !adapters.isEmpty else { return nil }
        guard let text = adapterConfig else {
            throw LoRAError.badAdapterConfig(source: source, key: "adapter_config", reason: "it is missing")
        }
        let origin = "\(source) (adapter_config)"
        do {
            return try JSONValueDecoder.decode(LoRAConfig.self, from: Array(text.utf8), source: origin)
        } catch let error as JSONAccessError {
            throw LoRAError.badAdapterConfig(source: source, key: error.keyPath.isEmpty ? "adapter_config" : error.keyPath,
                                             reason: error.problem)
        } catch let error as JSONParseError {
            throw LoRAError.badAdapterConfig(source: source, key: "adapter_config", reason: "not JSON: \(error)")
        }
    }

    /// The adapter tensor `name`, which must have `shape`; `source` names the checkpoint in errors.
    func adapterTensor(_ name: String, shape: [Int], source: String = "the checkpoint") throws -> Tensor {
        guard let tensor = adapters[name] else { throw LoRAError.missingAdapter(name: name, source: source) }
        guard tensor.shape == shape else {
            throw LoRAError.adapterShapeMismatch(name: name, found: tensor.shape, expected: shape, source: source)
        }
        return tensor
    }

    /// Checks the adapters against their config, as loading a checkpoint does: the
    /// adapter_config decodes, its targets exist, and every adapter tensor it implies is present
    /// with shape `[r, in]` (lora_A) or `[out, r]` (lora_B). `source` names the checkpoint.
    public func validateAdapters(source: String) throws {
        guard let lora = try loraConfig(source: source) else { return }
        for adapter in try config.adapterSpecs(for: lora) {
            _ = try adapterTensor(adapter.loraAName, shape: [lora.rank, adapter.inFeatures], source: source)
            _ = try adapterTensor(adapter.loraBName, shape: [adapter.outFeatures, lora.rank], source: source)
        }
    }

    /// Folds every adapter into its weight (`W += (alpha/r) · B A`) and drops the adapters.
    public mutating func mergeAdapters() throws {
        guard let lora = try loraConfig() else { return }
        for adapter in try config.adapterSpecs(for: lora) {
            let a = try adapterTensor(adapter.loraAName, shape: [lora.rank, adapter.inFeatures])
            let b = try adapterTensor(adapter.loraBName, shape: [adapter.outFeatures, lora.rank])
            let weight = tensors[adapter.weightName]!.copy()  // views may be shared; never merge in place
            sgemm(transposeA: false, transposeB: false, m: adapter.outFeatures, n: adapter.inFeatures,
                  k: lora.rank, alpha: lora.scale, a: b.pointer, lda: lora.rank, b: a.pointer,
                  ldb: adapter.inFeatures, beta: 1, c: weight.pointer, ldc: adapter.inFeatures)
            tensors[adapter.weightName] = weight
        }
        adapters = [:]
        adapterConfig = nil
    }
}
