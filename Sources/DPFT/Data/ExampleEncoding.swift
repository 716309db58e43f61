/// Turns data records into token ids and labels where the caller may have no tokenizer.
public enum ExampleEncoding {
    /// With an encoder, every record shape is encoded by it (templates, BOS/EOS, label masks).
    /// Without one only pre-tokenized records are possible; text, instruction and chat records
    /// are an error naming the line.
    public static func encode(_ record: DataRecord, encoder: ExampleEncoder?, path: String, line: Int) throws -> TokenizedExample {
        if let encoder { return try encoder.encode(record).example }
        guard case .tokens(let ids, let labels) = record else { throw DataError.needsTokenizer(path: path, line: line) }
        return TokenizedExample(ids: ids, labels: labels)
    }

    /// The encoder `dpft eval` and `dpft norms` use by default: the Alpaca and chat templates,
    /// response-only labels, and no BOS/EOS around plain text (so `{"text"}` scores exactly the
    /// text's own tokens, as transformers does on the same ids).
    public static func plainEncoder(_ tokenizer: Tokenizer?) throws -> ExampleEncoder? {
        try tokenizer.map { try ExampleEncoder(tokenizer: $0, addBOS: false, addEOS: false) }
    }
}
