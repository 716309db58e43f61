import Foundation
import Testing
@testable import DPFT

/// The test text and the `tokenizers` package's ids, made by tools/make_bpe_fixtures.py.
private enum BPEFixtures {
    static let names = ["gpt2", "qwen2", "llama3"]

    static func tokenizerURL(_ name: String) -> URL { Fixtures.url("bpe/\(name).json") }

    static func texts() throws -> [String] {
        let text = try String(contentsOf: Fixtures.url("bpe/texts.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").enumerated().map { index, line in
            guard case .string(let text) = try JSONParser.parse(String(line), source: "texts.jsonl:\(index + 1)") else {
                throw TokenizerError.malformedTokenizerJSON(source: "texts.jsonl", key: "\(index + 1)", reason: "not a string")
            }
            return text
        }
    }

    static func ids(_ name: String) throws -> [[Int]] {
        let text = try String(contentsOf: Fixtures.url("bpe/\(name).ids"), encoding: .utf8)
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { line in
            line.split(separator: " ").map { Int($0)! }
        }
    }

    /// The fixture's JSON with `edit` applied, as bytes.
    static func edited(_ name: String, _ edit: (inout JSONObject) -> Void) throws -> [UInt8] {
        guard case .object(var root) = try JSONParser.parse(Array(try Data(contentsOf: tokenizerURL(name))), source: name) else {
            fatalError("fixture \(name) is not an object")
        }
        edit(&root)
        return Array(JSONValue.object(root).description.utf8)
    }
}

@Suite("Byte-level BPE (tokenizer.json) against Hugging Face tokenizers")
struct BPETokenizerTests {
    @Test("ids equal the package's on every line of the test text", arguments: BPEFixtures.names)
    func idsMatch(name: String) throws {
        let tokenizer = try Tokenizer(contentsOf: BPEFixtures.tokenizerURL(name))
        #expect(tokenizer.kind == .bytePairJSON)
        let texts = try BPEFixtures.texts(), expected = try BPEFixtures.ids(name)
        try #require(texts.count == expected.count && texts.count >= 2000)
        var mismatches = 0
        for (text, ids) in zip(texts, expected) {
            let found = try tokenizer.encode(text)
            if found != ids {
                mismatches += 1
                if mismatches <= 5 { Issue.record("\(name): \(String(reflecting: text)) → \(found), tokenizers gives \(ids)") }
            }
        }
        #expect(mismatches == 0, "\(name): \(mismatches) of \(texts.count) lines differ")
    }

    @Test("decoding returns the text (NFC-normalized where the tokenizer normalizes)", arguments: BPEFixtures.names)
    func roundTrip(name: String) throws {
        let tokenizer = try Tokenizer(contentsOf: BPEFixtures.tokenizerURL(name))
        for text in try BPEFixtures.texts() {
            let expected = name == "qwen2" ? text.precomposedStringWithCanonicalMapping : text
            // Bytes, not String ==: Swift compares strings up to canonical equivalence.
            let decoded = try tokenizer.decode(tokenizer.encode(text))
            #expect(Array(decoded.utf8) == Array(expected.utf8), "\(name): \(String(reflecting: text))")
        }
    }

    @Test("ByteLevel's add_prefix_space prefixes each stretch between added tokens, as the package does")
    func addPrefixSpace() throws {
        let prefixed = try Tokenizer(modelBytes: BPEFixtures.edited("gpt2") { root in
            guard case .object(var preTokenizer)? = root["pre_tokenizer"] else { return }
            preTokenizer["add_prefix_space"] = true
            root["pre_tokenizer"] = .object(preTokenizer)
        })
        let expected = try BPEFixtures.ids("gpt2-prefix-space")
        let texts = try BPEFixtures.texts().prefix(expected.count)
        try #require(expected.count == 300)
        for (text, ids) in zip(texts, expected) {
            #expect(try prefixed.encode(text) == ids, "\(String(reflecting: text))")
        }
    }

    @Test("ignore_merges looks whole words up before merging")
    func ignoreMerges() throws {
        let withFlag = try Tokenizer(contentsOf: BPEFixtures.tokenizerURL("llama3"))
        let xyzzy = try #require(withFlag.encode(" xyzzy").first)
        #expect(try withFlag.encode(" xyzzy") == [xyzzy])
        #expect(withFlag.piece(for: xyzzy) == "Ġxyzzy")
        let without = try Tokenizer(modelBytes: BPEFixtures.edited("llama3") { root in
            guard case .object(var model)? = root["model"] else { return }
            model["ignore_merges"] = false
            root["model"] = .object(model)
        })
        #expect(try without.encode(" xyzzy").count > 1)
    }

    @Test("BOS and EOS come from the template and special tokens, or from tokenizer_config.json")
    func specialTokens() throws {
        let gpt2 = try Tokenizer(contentsOf: BPEFixtures.tokenizerURL("gpt2"))
        #expect(gpt2.bosId == -1)
        #expect(gpt2.eosId == (try gpt2.encode("<|endoftext|>")).first)
        let llama3 = try Tokenizer(contentsOf: BPEFixtures.tokenizerURL("llama3"))
        #expect(llama3.bosId == (try llama3.encode("<|begin_of_text|>")).first)
        #expect(llama3.eosId == (try llama3.encode("<|end_of_text|>")).first)
        let qwen2Bytes = Array(try Data(contentsOf: BPEFixtures.tokenizerURL("qwen2")))
        let config = #"{"bos_token": null, "eos_token": {"content": "<|im_end|>"}, "pad_token": "<|endoftext|>"}"#
        let qwen2 = try Tokenizer(modelBytes: qwen2Bytes, configBytes: Array(config.utf8))
        #expect(qwen2.bosId == -1)
        #expect(qwen2.eosId == (try qwen2.encode("<|im_end|>")).first)
        #expect(qwen2.padId == (try qwen2.encode("<|endoftext|>")).first)
    }

    @Test("added tokens are matched whole, longest first, and never split")
    func addedTokens() throws {
        let qwen2 = try Tokenizer(contentsOf: BPEFixtures.tokenizerURL("qwen2"))
        let start = try #require(qwen2.encode("<|im_start|>").first)
        let ids = try qwen2.encode("a<|im_start|><|im_start|>b")
        #expect(ids.count == 4 && ids[1] == start && ids[2] == start)
        #expect(try qwen2.encode("<|im_start").count > 1)
    }
}

@Suite("tokenizer.json errors name the component")
struct BPETokenizerErrorTests {
    private func message(_ bytes: [UInt8]) -> String {
        do {
            _ = try Tokenizer(modelBytes: bytes, source: "tok.json")
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    private func message(_ edit: (inout JSONObject) -> Void) throws -> String {
        message(try BPEFixtures.edited("gpt2", edit))
    }

    @Test("an unsupported pre-tokenizer, model, normalizer, decoder or regex is refused by name")
    func unsupported() throws {
        #expect(try message { $0["pre_tokenizer"] = ["type": "Whitespace"] }
            .contains(#"tok.json: "pre_tokenizer.type": "Whitespace" is not supported"#))
        #expect(try message { $0["normalizer"] = ["type": "Lowercase"] }
            .contains(#""normalizer.type": "Lowercase" is not supported"#))
        #expect(try message { $0["decoder"] = ["type": "WordPiece"] }
            .contains(#""decoder.type": "WordPiece" is not supported"#))
        #expect(try message { $0["truncation"] = ["max_length": 8] }.contains(#""truncation""#))
        #expect(try message {
            guard case .object(var model)? = $0["model"] else { return }
            model["type"] = "WordPiece"
            $0["model"] = .object(model)
        }.contains(#""model.type": "WordPiece" is not supported"#))
        let split: JSONValue = ["type": "Sequence", "pretokenizers": [
            ["type": "Split", "pattern": ["Regex": "\\w+"], "behavior": "Isolated", "invert": false],
            ["type": "ByteLevel", "add_prefix_space": false, "use_regex": false]]]
        #expect(try message { $0["pre_tokenizer"] = split }
            .contains(#""pre_tokenizer.pretokenizers[0].pattern.Regex": "\\w+" is not supported"#))
        #expect(try message {
            guard case .array(var tokens)? = $0["added_tokens"], case .object(var token) = tokens[0] else { return }
            token["lstrip"] = true
            tokens[0] = .object(token)
            $0["added_tokens"] = .array(tokens)
        }.contains(#""added_tokens[0].lstrip": true is not supported"#))
    }

    @Test("a malformed file says what is wrong and where")
    func malformed() throws {
        #expect(message(Array("{\"model\": ".utf8)).contains("tok.json"))
        #expect(try message { $0["model"] = nil }.contains(#""model" should be an object"#))
        #expect(try message {
            guard case .object(var model)? = $0["model"] else { return }
            model["merges"] = ["Ġ zzzz"]
            $0["model"] = .object(model)
        }.contains(#""model.merges[0]" uses "zzzz", which is not in model.vocab"#))
        #expect(try message {
            guard case .object(var model)? = $0["model"], case .object(var vocab)? = model["vocab"] else { return }
            vocab["!"] = -3
            model["vocab"] = .object(vocab)
            $0["model"] = .object(model)
        }.contains("should be a token id"))
    }
}
