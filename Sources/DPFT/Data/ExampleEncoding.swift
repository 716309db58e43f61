/// The default encoder of the commands that may have no recipe (`dpft eval`, `dpft norms`);
/// `ExampleLoader` reads pre-tokenized records when there is no tokenizer at all.
public enum ExampleEncoding {
    /// The encoder `dpft eval` and `dpft norms` use by default: the Alpaca and chat templates,
    /// response-only labels, and no BOS/EOS around plain text (so `{"text"}` scores exactly the
    /// text's own tokens, as transformers does on the same ids).
    public static func plainEncoder(_ tokenizer: Tokenizer?) throws -> ExampleEncoder? {
        try tokenizer.map { try ExampleEncoder(tokenizer: $0, addBOS: false, addEOS: false) }
    }
}
