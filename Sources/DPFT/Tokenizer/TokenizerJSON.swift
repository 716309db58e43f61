// Reads a Hugging Face `tokenizer.json` into the parts dpft's byte-level BPE uses, refusing by
// name every component it does not implement. The file comes from outside: every id, string
// and merge is checked before it is trusted.

/// A token matched in the text before pre-tokenization and never split (`added_tokens`).
struct AddedToken: Sendable, Equatable {
    var content: String
    var id: Int
    /// A special token (BOS, EOS, chat markers) rather than a user-added word.
    var special: Bool
    /// Matched in the normalized text rather than the raw text.
    var normalized: Bool
}

/// What a `tokenizer.json` says, in the terms dpft's `BPETokenizer` implements.
struct TokenizerJSON: Sendable {
    /// Vocabulary entries as the file writes them (byte-level strings) and their ids.
    var vocabulary: [String: Int]
    /// Merges by rank: the pair at index r is merged before any pair after it.
    var merges: [(left: String, right: String)]
    /// Look a whole word up in the vocabulary before merging (`model.ignore_merges`).
    var ignoreMerges: Bool
    /// The token for bytes the vocabulary lacks (`model.unk_token`); they are dropped without one.
    var unknownToken: String?
    var addedTokens: [AddedToken]
    /// Apply Unicode NFC before pre-tokenization (`normalizer: {"type": "NFC"}`).
    var normalizesNFC: Bool
    var splitPattern: SplitPattern
    /// Prepend a space to text that does not start with one (`ByteLevel.add_prefix_space`).
    var addsPrefixSpace: Bool
    /// The special token a `TemplateProcessing` post-processor puts first (Llama 3's BOS).
    var templateFirstToken: String?

    /// Parses `bytes`; `source` names the file in errors.
    init(bytes: [UInt8], source: String) throws {
        let root: JSONValue
        do {
            root = try JSONParser.parse(bytes, source: source, allowsByteOrderMark: true)
        } catch {
            throw TokenizerError.malformedTokenizerJSON(source: source, key: "", reason: error.locatedReason)
        }
        let file = TokenizerJSONFile(source: source)
        let top = try file.object(root, "")
        for key in ["truncation", "padding"] where !(top[key] ?? .null).isNull {
            throw file.unsupported(key, top[key]!, supported: "null (dpft cuts and pads examples itself)")
        }
        let model = try file.object(top["model"] ?? .null, "model")
        (vocabulary, merges, ignoreMerges, unknownToken) = try file.bytePairModel(model)
        addedTokens = try file.addedTokens(top["added_tokens"] ?? .array([]))
        normalizesNFC = try file.normalizer(top["normalizer"] ?? .null, "normalizer")
        (splitPattern, addsPrefixSpace) = try file.preTokenizer(top["pre_tokenizer"] ?? .null)
        templateFirstToken = try file.postProcessor(top["post_processor"] ?? .null, "post_processor")
        try file.decoder(top["decoder"] ?? .null)
    }
}

/// The checks and messages of `TokenizerJSON`, with the file's name.
private struct TokenizerJSONFile {
    let source: String

    func unsupported(_ key: String, _ value: JSONValue, supported: String) -> TokenizerError {
        .unsupportedComponent(source: source, key: key, value: value.description, supported: supported)
    }

    func malformed(_ key: String, _ reason: String) -> TokenizerError {
        .malformedTokenizerJSON(source: source, key: key, reason: reason)
    }

    func object(_ value: JSONValue, _ key: String) throws -> JSONObject {
        guard case .object(let object) = value else {
            throw malformed(key, "should be an object, found \(value.kind)")
        }
        return object
    }

    func string(_ value: JSONValue?, _ key: String) throws -> String {
        guard case .string(let string)? = value else {
            throw malformed(key, "should be a string, found \(value?.kind ?? "nothing")")
        }
        return string
    }

    func bool(_ value: JSONValue?, _ key: String, default fallback: Bool) throws -> Bool {
        switch value {
        case nil, .null?: return fallback
        case .bool(let flag)?: return flag
        case let other?: throw malformed(key, "should be true or false, found \(other.kind)")
        }
    }

    /// An id: a whole number in 0..<2^24 (far above any real vocabulary, small enough to index).
    func id(_ value: JSONValue?, _ key: String) throws -> Int {
        guard case .number(let number)? = value, let id = number.integer(as: Int.self),
              id >= 0, id < 1 << 24 else {
            throw malformed(key, "should be a token id in 0..<16777216, found \(value?.description ?? "nothing")")
        }
        return id
    }

    func type(_ object: JSONObject, _ key: String) throws -> String {
        try string(object["type"], key + ".type")
    }

    func bytePairModel(_ model: JSONObject) throws
        -> ([String: Int], [(left: String, right: String)], Bool, String?) {
        let type = try model["type"].map { try string($0, "model.type") } ?? "BPE"
        guard type == "BPE" else {
            throw unsupported("model.type", .string(type), supported: "BPE")
        }
        if let dropout = model["dropout"], !dropout.isNull {
            throw unsupported("model.dropout", dropout, supported: "null (dropout makes encoding random)")
        }
        if try bool(model["byte_fallback"], "model.byte_fallback", default: false) {
            throw unsupported("model.byte_fallback", .bool(true), supported: "false (byte-level BPE needs no fallback)")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let value = model[key], !value.isNull, value != .string("") {
                throw unsupported("model." + key, value, supported: "null or \"\"")
            }
        }
        var vocabulary: [String: Int] = [:]
        var seenIds: Set<Int> = []
        for (token, value) in try object(model["vocab"] ?? .null, "model.vocab") {
            let id = try id(value, "model.vocab[\(JSONValue.string(token))]")
            guard seenIds.insert(id).inserted else { throw malformed("model.vocab", "gives id \(id) to two tokens") }
            vocabulary[token] = id
        }
        let merges = try self.merges(model["merges"] ?? .null, vocabulary: vocabulary)
        let unknown = try model["unk_token"].flatMap { $0.isNull ? nil : try string($0, "model.unk_token") }
        if let unknown, vocabulary[unknown] == nil {
            throw malformed("model.unk_token", "names \(JSONValue.string(unknown)), which is not in model.vocab")
        }
        return (vocabulary, merges, try bool(model["ignore_merges"], "model.ignore_merges", default: false), unknown)
    }

    /// `merges`: "left right" strings (tokenizers before 0.20) or [left, right] pairs; both
    /// halves and their concatenation must be in the vocabulary.
    func merges(_ value: JSONValue, vocabulary: [String: Int]) throws -> [(left: String, right: String)] {
        guard case .array(let items) = value else { throw malformed("model.merges", "should be an array, found \(value.kind)") }
        return try items.enumerated().map { index, item in
            let key = "model.merges[\(index)]"
            let pair: [String]
            switch item {
            case .string(let text): pair = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            case .array(let halves): pair = try halves.map { try string($0, key) }
            default: throw malformed(key, "should be \"left right\" or [left, right], found \(item.kind)")
            }
            guard pair.count == 2 else { throw malformed(key, "should hold two tokens, found \(item)") }
            for token in pair + [pair[0] + pair[1]] where vocabulary[token] == nil {
                throw malformed(key, "uses \(JSONValue.string(token)), which is not in model.vocab")
            }
            return (pair[0], pair[1])
        }
    }

    func addedTokens(_ value: JSONValue) throws -> [AddedToken] {
        guard case .array(let items) = value else { throw malformed("added_tokens", "should be an array, found \(value.kind)") }
        return try items.enumerated().map { index, item in
            let key = "added_tokens[\(index)]"
            let token = try object(item, key)
            for flag in ["single_word", "lstrip", "rstrip"] where try bool(token[flag], "\(key).\(flag)", default: false) {
                throw unsupported("\(key).\(flag)", .bool(true), supported: "false")
            }
            let content = try string(token["content"], key + ".content")
            guard !content.isEmpty else { throw malformed(key + ".content", "is empty") }
            let special = try bool(token["special"], key + ".special", default: false)
            return AddedToken(content: content, id: try id(token["id"], key + ".id"), special: special,
                              normalized: try bool(token["normalized"], key + ".normalized", default: !special))
        }
    }

    /// Whether the normalizer is NFC (null and an empty Sequence are no normalizer).
    func normalizer(_ value: JSONValue, _ key: String) throws -> Bool {
        if value.isNull { return false }
        let normalizer = try object(value, key)
        switch try type(normalizer, key) {
        case "NFC": return true
        case "Sequence":
            guard case .array(let items)? = normalizer["normalizers"] else { throw malformed(key + ".normalizers", "should be an array") }
            if items.isEmpty { return false }
            if items.count == 1 { return try self.normalizer(items[0], key + ".normalizers[0]") }
            throw unsupported(key + ".normalizers", value, supported: "NFC alone")
        default:
            throw unsupported(key + ".type", normalizer["type"]!, supported: "NFC or null")
        }
    }

    /// `ByteLevel` (GPT-2's regex) or `Sequence[Split(regex, Isolated), ByteLevel(use_regex: false)]`.
    func preTokenizer(_ value: JSONValue) throws -> (SplitPattern, Bool) {
        let supported = "ByteLevel, or a Sequence of Split (\(SplitPattern.supportedNames)) and ByteLevel"
        let key = "pre_tokenizer"
        if value.isNull { throw unsupported(key, value, supported: supported) }
        let preTokenizer = try object(value, key)
        switch try type(preTokenizer, key) {
        case "ByteLevel":
            guard try bool(preTokenizer["use_regex"], key + ".use_regex", default: true) else {
                throw unsupported(key + ".use_regex", .bool(false), supported: "true when ByteLevel stands alone")
            }
            return (.gpt2, try bool(preTokenizer["add_prefix_space"], key + ".add_prefix_space", default: true))
        case "Sequence":
            guard case .array(let steps)? = preTokenizer["pretokenizers"], steps.count == 2 else {
                throw unsupported(key + ".pretokenizers", preTokenizer["pretokenizers"] ?? .null, supported: supported)
            }
            let pattern = try split(object(steps[0], key + ".pretokenizers[0]"), key + ".pretokenizers[0]")
            let byteLevel = try object(steps[1], key + ".pretokenizers[1]")
            let byteLevelKey = key + ".pretokenizers[1]"
            guard try type(byteLevel, byteLevelKey) == "ByteLevel" else {
                throw unsupported(byteLevelKey + ".type", byteLevel["type"]!, supported: "ByteLevel")
            }
            for flag in ["use_regex", "add_prefix_space"] where try bool(byteLevel[flag], "\(byteLevelKey).\(flag)", default: true) {
                throw unsupported("\(byteLevelKey).\(flag)", .bool(true), supported: "false after a Split")
            }
            return (pattern, false)
        default:
            throw unsupported(key + ".type", preTokenizer["type"]!, supported: supported)
        }
    }

    func split(_ split: JSONObject, _ key: String) throws -> SplitPattern {
        guard try type(split, key) == "Split" else { throw unsupported(key + ".type", split["type"]!, supported: "Split") }
        let pattern = try object(split["pattern"] ?? .null, key + ".pattern")
        let regex = try string(pattern["Regex"], key + ".pattern.Regex")
        guard let known = SplitPattern(regex: regex) else {
            throw unsupported(key + ".pattern.Regex", .string(regex), supported: SplitPattern.supportedNames)
        }
        if let behavior = split["behavior"], behavior != .string("Isolated") {
            throw unsupported(key + ".behavior", behavior, supported: "\"Isolated\"")
        }
        if try bool(split["invert"], key + ".invert", default: false) {
            throw unsupported(key + ".invert", .bool(true), supported: "false")
        }
        return known
    }

    /// Post-processors only add special tokens (dpft's templates add BOS/EOS themselves) or
    /// adjust offsets; returns the special token a template puts first, if any.
    func postProcessor(_ value: JSONValue, _ key: String) throws -> String? {
        if value.isNull { return nil }
        let processor = try object(value, key)
        switch try type(processor, key) {
        case "ByteLevel":
            return nil
        case "TemplateProcessing":
            guard case .array(let single)? = processor["single"], case .object(let first)? = single.first,
                  case .object(let special)? = first["SpecialToken"] else { return nil }
            return try string(special["id"], key + ".single[0].SpecialToken.id")
        case "Sequence":
            guard case .array(let items)? = processor["processors"] else { throw malformed(key + ".processors", "should be an array") }
            return try items.enumerated().compactMap { try postProcessor($1, "\(key).processors[\($0)]") }.first
        default:
            throw unsupported(key + ".type", processor["type"]!, supported: "ByteLevel, TemplateProcessing, a Sequence of them, or null")
        }
    }

    func decoder(_ value: JSONValue) throws {
        let key = "decoder"
        guard case .object(let decoder) = value, decoder["type"] == .string("ByteLevel") else {
            throw unsupported(value.isNull ? key : key + ".type", value.isNull ? value : (try object(value, key))["type"] ?? .null,
                              supported: "ByteLevel")
        }
    }
}
