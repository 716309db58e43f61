import Foundation
import Testing
@testable import DPFT

/// Every JSON file dpft reads rejects a key written twice (JSON readers differ on which one
/// wins) and says where the second one is: recipes, rule files and safetensors headers
/// (config.json: see the model's tests).
@Suite struct DuplicateKeyTests {
    @Test func aRecipeNamesTheKeyPathLineAndColumn() throws {
        let text = """
            {"model": {"checkpoint": "c.h5"}, "data": {"train": "t.jsonl"}, "privacy": null,
             "training": {
               "batch_size": 8,
               "optimizer": {"name": "sgd",
                             "name": "adam"}}}
            """
        #expect(throws: RecipeError.duplicateKey(file: "dup.json", keyPath: "training.optimizer.name", line: 5, column: 18)) {
            try Recipe.parse(json: text, file: "dup.json")
        }
    }

    @Test func aRecipeOverrideValueIsCheckedToo() {
        #expect {
            try Recipe.parse(json: RecipeTests.minimal, file: "r.json", overrides: [#"privacy.grouping_options={"a": 1, "a": 2}"#])
        } throws: { error in
            guard case RecipeError.malformedOverride(_, let reason) = error else { return false }
            return reason == "the value is not valid JSON (line 1, column 10: key \"a\" appears more than once)"
        }
    }

    @Test func aRuleFileNamesTheKeyLineAndColumn() {
        let text = """
            {"rules": [{"match": "*", "group": "a"}],
             "thresholds": {"a": 1,
                            "a": 2}}
            """
        #expect(throws: GroupingError.ruleFileInvalid(
            source: "dup-rules.json", rule: nil,
            reason: "line 3, column 17: key `thresholds.a` appears more than once; keep one")) {
            try RuleFile(json: Data(text.utf8), source: "dup-rules.json")
        }
        // Inside a rule too: the old reader kept the last `group` silently.
        #expect {
            try RuleFile(json: Data(#"{"rules": [{"match": "*", "group": "a", "group": "b"}]}"#.utf8), source: "r.json")
        } throws: { error in
            "\(error)".contains("line 1, column 41: key `rules[0].group` appears more than once")
        }
    }

    /// A header with tensor `w` twice: the second at line 2, column 1.
    @Test func aSafetensorsHeaderNamesTheTensorLineAndColumn() throws {
        let header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\n"
            + "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}"
        var bytes = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: Array(header.utf8) + [UInt8](repeating: 0, count: 8))
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("dup.safetensors")
        try bytes.write(to: url)
        #expect {
            try SafeTensorsFile.read(url: url)
        } throws: { error in
            guard case SafeTensorsError.duplicateTensorName(url.path, "w", 2?, 1?) = error else { return false }
            return true
        }
        #expect(SafeTensorsError.duplicateTensorName(path: "x", name: "w", line: 2, column: 1).description
                .hasPrefix("x: tensor name \"w\" appears more than once (again at line 2, column 1 of the header)"))
    }
}
