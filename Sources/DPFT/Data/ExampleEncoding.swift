/// Turns data records into token ids and labels.
public enum ExampleEncoding {
    /// Encodes `{"text"}` (no BOS/EOS added; every token trained on) and pre-tokenized records.
    /// Instruction and chat records need a template, which the recipe runner supplies.
    public static func encode(_ record: DataRecord, tokenizer: Tokenizer?, path: String, line: Int) throws -> TokenizedExample {
        switch record {
        case .tokens(let ids, let labels):
            return TokenizedExample(ids: ids, labels: labels)
        case .text(let text):
            guard let tokenizer else { throw DataError.needsTokenizer(path: path, line: line) }
            return TokenizedExample(ids: try tokenizer.encode(text), labels: nil)
        case .instruction, .chat:
            throw DataError.malformedLine(path: path, line: line,
                                          reason: "instruction and chat records need a prompt template; this command reads `text` and `input_ids` lines")
        }
    }
}
