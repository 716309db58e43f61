import Foundation
import Testing
@testable import DPFT

/// config.json goes through the strict JSON layer and each family's declared keys.
@Suite struct ModelConfigTests {
    @Test func duplicateKeyIsRejectedWithLineAndColumn() throws {
        let text = "{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 32,\n  \"hidden_size\": 64\n}"
        let error = #expect(throws: ConfigError.self) { try ModelConfig(json: Data(text.utf8), source: "dup/config.json") }
        guard case .invalidJSON(let parseError)? = error else {
            Issue.record("expected invalidJSON, got \(String(describing: error))")
            return
        }
        #expect(parseError.kind == .duplicateKey(key: "hidden_size", keyPath: "hidden_size"))
        #expect(parseError.line == 4)
        #expect(error?.description.hasPrefix("dup/config.json:4:\(parseError.column): ") == true, "\(error!)")
    }

    /// Every registered family reads its own defaults and the resolved config reads back equal.
    @Test(arguments: ModelType.allCases)
    func defaultsRoundTrip(type: ModelType) throws {
        let config = try ModelConfig(json: Data(#"{"model_type": "\#(type.rawValue)"}"#.utf8), source: "defaults")
        #expect(config.modelType == type)
        #expect(try ModelConfig(json: Data(config.json.utf8), source: "resolved") == config)
        #expect(config.json.contains("\"architectures\": [\n    \"\(config.family.architecture)\""), "\(config.json)")
    }

    /// The resolved values are written into config.json: the shared Llama keys and Mixtral's own.
    @Test func resolvedDefaultsAreWritten() throws {
        let config = try ModelConfig(json: Data(#"{"model_type": "mixtral"}"#.utf8), source: "defaults")
        for member in ["\"hidden_size\": 4096", "\"num_key_value_heads\": 8", "\"rope_theta\": 1000000.0",
                       "\"num_local_experts\": 8", "\"num_experts_per_tok\": 2", "\"tie_word_embeddings\": false"] {
            #expect(config.json.contains(member), "\(member) in \(config.json)")
        }
    }

    @Test func wrongTypeNamesTheKeyAndTheValue() throws {
        let error = #expect(throws: ConfigError.self) {
            try ModelConfig(json: Data(#"{"model_type": "qwen2", "rope_parameters": [1]}"#.utf8), source: "c.json")
        }
        #expect(error?.description == "c.json: `rope_parameters` = [1] is invalid: expected an object.")
    }
}

/// `dpft init` on a config whose parameters cannot fit aborted in the allocator; the size is
/// now checked before anything is allocated (issue 12 item 12).
@Suite struct ModelSizeTests {
    static let huge = #"{"model_type":"gpt2","vocab_size":16777216,"n_embd":16777216,"n_layer":2,"n_head":1,"n_positions":128}"#

    @Test func aModelLargerThanMemoryIsRefusedBeforeAllocating() throws {
        let config = try ModelConfig(json: Data(Self.huge.utf8), source: "huge.json")
        #expect(try #require(config.parameterCount) > 1 << 48)
        let error = #expect(throws: ConfigError.self) { try config.checkParametersFitInMemory(source: "huge.json") }
        guard case .modelTooLarge(let source, _, _, _)? = error else { Issue.record("\(String(describing: error))"); return }
        #expect(source == "huge.json")
        #expect(error?.description.contains("GiB") == true && error?.description.contains("vocab_size") == true)
    }

    @Test func aSmallModelFitsAndTheLimitIsTheMachinesMemory() throws {
        let config = try ModelConfig(json: Data(#"{"model_type":"gpt2","vocab_size":256,"n_embd":64,"n_layer":2,"n_head":2,"n_positions":128}"#.utf8),
                                     source: "small.json")
        try config.checkParametersFitInMemory(source: "small.json")
        let bytes = UInt64(try #require(config.parameterCount)) * 4
        try config.checkParametersFitInMemory(source: "small.json", availableBytes: bytes)
        #expect(throws: ConfigError.self) { try config.checkParametersFitInMemory(source: "small.json", availableBytes: bytes - 1) }
    }
}
