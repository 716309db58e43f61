import Foundation

extension Checkpoint {
    /// The tokenizer stored in the checkpoint (either kind, with its `tokenizer_config.json`
    /// when imported with one), or nil when it has none. `path` names the checkpoint in errors.
    public func storedTokenizer(path: String) throws -> Tokenizer? {
        guard let tokenizerModel else { return nil }
        return try Tokenizer(modelBytes: tokenizerModel, configBytes: tokenizerConfig,
                             source: "\(path) (/tokenizer)")
    }

    /// Stores `tokenizer`'s file (and its config, when it has one) so the checkpoint stands alone.
    public mutating func store(_ tokenizer: Tokenizer) {
        tokenizerModel = tokenizer.modelBytes
        tokenizerConfig = tokenizer.configBytes
    }
}
