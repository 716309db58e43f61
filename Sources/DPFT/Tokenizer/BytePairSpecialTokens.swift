/// The BOS/EOS/PAD/UNK ids of a `tokenizer.json`, which has no fields for them: they come from
/// the `tokenizer_config.json` stored beside it (`bos_token`, `eos_token`, `pad_token`,
/// `unk_token`, each a string or `{"content": …}`); else BOS from the post-processor's
/// template (Llama 3's `<|begin_of_text|>`) — what transformers would add — and EOS from the
/// model's `eos_token_id`, else the first special token with a conventional end name. The
/// model's `bos_token_id` is not used: GPT-2's and Qwen2's name `<|endoftext|>`, which their
/// tokenizers never prepend. -1 means none, as SentencePiece reports it.
struct BytePairSpecialTokens {
    var bos = -1, eos = -1, pad = -1, unk = -1

    /// End-of-text names in the order they are tried when no config names EOS.
    static let endNames = ["<|endoftext|>", "<|end_of_text|>", "</s>", "<|im_end|>", "<|eot_id|>"]

    init(_ bpe: BPETokenizer, configBytes: [UInt8]?, modelEndOfSequence: Int?, source: String) throws {
        let names = try configBytes.map { try Self.names(in: $0, source: source + " (tokenizer_config.json)") } ?? [:]
        func id(_ name: String?) -> Int { name.flatMap(bpe.id(ofToken:)) ?? -1 }
        bos = id(names["bos_token"] ?? bpe.templateFirstToken)
        let specials = Set(bpe.addedTokens.filter(\.special).map(\.content))
        if let name = names["eos_token"] {
            eos = id(name)
        } else if let modelEndOfSequence, modelEndOfSequence >= 0, modelEndOfSequence < bpe.vocabularySize {
            eos = modelEndOfSequence
        } else {
            eos = id(Self.endNames.first(where: specials.contains))
        }
        pad = id(names["pad_token"])
        unk = id(names["unk_token"])
    }

    /// The token names a `tokenizer_config.json` gives (null and absent names are left out).
    static func names(in bytes: [UInt8], source: String) throws -> [String: String] {
        let root: JSONValue
        do {
            root = try JSONParser.parse(bytes, source: source, allowsByteOrderMark: true)
        } catch {
            throw TokenizerError.malformedTokenizerJSON(source: source, key: "", reason: error.locatedReason)
        }
        guard case .object(let config) = root else {
            throw TokenizerError.malformedTokenizerJSON(source: source, key: "", reason: "should be an object, found \(root.kind)")
        }
        var names: [String: String] = [:]
        for key in ["bos_token", "eos_token", "pad_token", "unk_token"] {
            switch config[key] {
            case .string(let name)?:
                names[key] = name
            case .object(let token)?:
                guard case .string(let name)? = token["content"] else {
                    throw TokenizerError.malformedTokenizerJSON(source: source, key: key + ".content", reason: "should be a string")
                }
                names[key] = name
            case nil, .null?:
                continue
            case let other?:
                throw TokenizerError.malformedTokenizerJSON(source: source, key: key,
                                                            reason: "should be a token string, found \(other.kind)")
            }
        }
        return names
    }
}
