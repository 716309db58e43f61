// The registry of model families: adding a family is one file and one line here.

/// The registered model families, looked up by `model_type`.
public enum ModelFamilies {
    /// Every family dpft implements.
    public static var all: [any ModelFamily.Type] { [GPT2.self, Llama.self, Mixtral.self, Qwen2.self] }

    /// The family of `type`, or nil when dpft does not implement it.
    public static func family(_ type: ModelType) -> (any ModelFamily.Type)? {
        all.first { $0.modelType == type }
    }
}
