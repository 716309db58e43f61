import Foundation

extension Checkpoint {
    /// The tokenizer stored in the checkpoint (either kind, with its `tokenizer_config.json`
    /// when imported with one, and the model's `eos_token_id`), or nil when it has none.
    /// `path` names the checkpoint in errors.
    public func storedTokenizer(path: String) throws -> Tokenizer? {
        guard let tokenizerModel else { return nil }
        return try Tokenizer(modelBytes: tokenizerModel, configBytes: tokenizerConfig,
                             modelEndOfSequence: modelEndOfSequence, source: "\(path) (/tokenizer)")
    }

    /// config.json's `eos_token_id` (the first, when it is a list as in Llama 3.1), or nil.
    var modelEndOfSequence: Int? {
        guard case .object(let config)? = try? JSONParser.parse(config.json, source: "config.json") else { return nil }
        switch config["eos_token_id"] {
        case .number(let number)?: return number.integer(as: Int.self)
        case .array(let ids)?:
            guard case .number(let first)? = ids.first else { return nil }
            return first.integer(as: Int.self)
        default: return nil
        }
    }

    /// Stores `tokenizer`'s file (and its config, when it has one) so the checkpoint stands alone.
    public mutating func store(_ tokenizer: Tokenizer) {
        tokenizerModel = tokenizer.modelBytes
        tokenizerConfig = tokenizer.configBytes
    }
}
