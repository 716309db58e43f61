import Foundation
import Testing
@testable import DPFT

@Suite struct GroupingRuleFileTests {
    typealias F = GroupingFixtures

    static func ruleFile(_ json: String, source: String = "rules.json") throws -> RuleFile {
        try RuleFile(json: Data(json.utf8), source: source)
    }

    @Test func firstMatchingRuleWins() throws {
        let rules = try Self.ruleFile("""
            {"rules": [
              {"match": "*.q_proj.*", "group": "queries"},
              {"match": "*.self_attn.*", "group": "attention"},
              {"match": "*.q_proj.*", "group": "never"},
              {"match": "*", "group": "rest"}
            ]}
            """)
        let drafts = try rules.groups(for: try F.parameters(F.llama, lora: true))
        #expect(drafts.map(\.name) == ["queries", "attention", "rest"])
        #expect(drafts[0].parameters.count == 6 && drafts[0].parameters.allSatisfy { $0.contains(".q_proj.") })
        #expect(drafts[1].parameters.count == 6 && drafts[1].parameters.allSatisfy { $0.contains(".v_proj.") })
        #expect(drafts[2].parameters.count == 6 && drafts[2].parameters.allSatisfy { $0.contains(".down_proj.") })
        #expect(drafts.allSatisfy { $0.threshold == nil })
    }

    @Test(arguments: [
        // `*` crosses dots.
        ("model.*.q_proj.*", "model.layers.10.self_attn.q_proj.lora_A.weight", true),
        ("*weight", "model.layers.0.mlp.up_proj.weight", true),
        ("*", "lm_head.weight", true),
        ("model.layers.*", "model.norm.weight", false),
        // The whole name must match.
        ("self_attn", "model.layers.0.self_attn.q_proj.weight", false),
        ("model.layers.0.*", "model.layers.0", false),
        // `?` is exactly one character, a dot included.
        ("model.layers.?.mlp.*", "model.layers.3.mlp.up_proj.weight", true),
        ("model.layers.?.mlp.*", "model.layers.13.mlp.up_proj.weight", false),
        ("model?layers.0.mlp.up_proj.weight", "model.layers.0.mlp.up_proj.weight", true),
        // A dot in the pattern is literal.
        ("model.layers.0.mlp.up_proj.weight", "modelXlayers.0.mlp.up_proj.weight", false),
        // Sets and ranges.
        ("model.layers.[0-2].*", "model.layers.2.mlp.up_proj.weight", true),
        ("model.layers.[0-2].*", "model.layers.3.mlp.up_proj.weight", false),
        ("*.[qkv]_proj.*", "model.layers.0.self_attn.k_proj.weight", true),
        ("*.[qkv]_proj.*", "model.layers.0.self_attn.o_proj.weight", false),
        ("*.[!qkv]_proj.*", "model.layers.0.self_attn.o_proj.weight", true),
        ("*.[^qkv]_proj.*", "model.layers.0.self_attn.q_proj.weight", false),
        ("a[]]b", "a]b", true),
        ("a[-x]b", "a-b", true),
        // Escapes.
        ("a\\*b", "a*b", true),
        ("a\\*b", "axb", false),
        // Backtracking across several stars.
        ("*.lora_?.*", "model.layers.0.self_attn.q_proj.lora_B.weight", true),
        ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
        ("", "", true),
    ])
    func globSemantics(pattern: String, name: String, matches: Bool) throws {
        #expect(try Glob(pattern).matches(name) == matches)
    }

    @Test func regexRulesMatchWholeNames() throws {
        let rules = try Self.ruleFile(#"""
            {"rules": [
              {"regex": "model\\.layers\\.[0-1]\\..*", "group": "early"},
              {"regex": "layers", "group": "never: a regex must match the whole name"},
              {"match": "*", "group": "late"}
            ]}
            """#)
        let drafts = try rules.groups(for: try F.parameters(F.llama, lora: true))
        #expect(drafts.map(\.name) == ["early", "late"])
        #expect(drafts[0].parameters.count == 12)
        #expect(drafts[1].parameters.allSatisfy { $0.hasPrefix("model.layers.2.") })
    }

    @Test func unmatchedParameterIsNamed() throws {
        let rules = try Self.ruleFile(#"{"rules": [{"match": "*.self_attn.*", "group": "attention"}]}"#, source: "my.json")
        #expect(throws: GroupingError.unmatchedParameter(source: "my.json",
                                                         parameter: "model.layers.0.mlp.down_proj.lora_A.weight")) {
            try rules.groups(for: try F.parameters(F.llama, lora: true))
        }
    }

    @Test func thresholdsFromTheFileAreUsed() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("rules.json")
        try #"""
            {"rules": [{"match": "*.self_attn.*", "group": "attention"}, {"match": "*", "group": "rest"}],
             "thresholds": {"attention": 0.3, "rest": 0.4}}
            """#.write(to: url, atomically: true, encoding: .utf8)
        let parameters = try F.parameters(F.llama, lora: true)
        let grouping = try F.resolve("rules", ["file": .string(url.path)], parameters)
        #expect(grouping.strategy == "rules")
        #expect(grouping.allocation == .explicit)
        #expect(grouping.groups.map(\.name) == ["attention", "rest"])
        #expect(grouping.thresholds == [0.3, 0.4])
        #expect(abs(grouping.totalSensitivity - 0.5) < 1e-12)
        // The `thresholds` option overrides the file for the groups it names.
        let overridden = try F.resolve("rules", ["file": .string(url.path), "thresholds": ["rest": 1.2]], parameters)
        #expect(overridden.thresholds == [0.3, 1.2])
        // Choosing another allocation ignores the file's thresholds.
        let uniform = try F.resolve("rules", ["file": .string(url.path), "allocation": "uniform"], parameters,
                                    threshold: 2)
        #expect(uniform.thresholds.allSatisfy { abs($0 - 2 / Double(2).squareRoot()) < 1e-12 })
        // Loading directly gives the same rules.
        #expect(try RuleFile.load(url).thresholds == ["attention": 0.3, "rest": 0.4])
    }

    @Test func partialThresholdsNeedTheRestUnderExplicit() throws {
        let rules = #"""
            {"rules": [{"match": "*.self_attn.*", "group": "attention"}, {"match": "*", "group": "rest"}],
             "thresholds": {"attention": 0.3}}
            """#
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("partial.json")
        try rules.write(to: url, atomically: true, encoding: .utf8)
        #expect(throws: GroupingError.missingThreshold(group: "rest")) {
            try F.resolve("rules", ["file": .string(url.path)], try F.parameters(F.llama, lora: true))
        }
    }

    @Test func aThresholdGroupWithoutMembersIsAnError() throws {
        let rules = try Self.ruleFile(#"""
            {"rules": [{"match": "*.mlp.*", "group": "mlp"}, {"match": "*", "group": "rest"}],
             "thresholds": {"mlp": 1, "rest": 1, "embeddings": 0.5}}
            """#)
        #expect(throws: GroupingError.thresholdGroupWithoutMembers(source: "rules.json", group: "embeddings")) {
            try rules.groups(for: try F.parameters(F.llama, lora: true))
        }
    }

    @Test(arguments: [
        ("{\"rules\": [", nil as Int?, "not valid JSON"),
        ("[1, 2]", nil, "the top level must be an object"),
        ("{\"rules\": [], \"extra\": 1}", nil, "unknown key `extra`"),
        ("{\"thresholds\": {}}", nil, "`rules` is missing"),
        ("{\"rules\": {}}", nil, "`rules` must be an array"),
        ("{\"rules\": []}", nil, "`rules` is empty"),
        ("{\"rules\": [{\"match\": \"*\", \"group\": \"a\"}, \"*\"]}", 1, "a rule must be an object"),
        ("{\"rules\": [{\"match\": \"*\"}]}", 0, "`group` (a string) is missing"),
        ("{\"rules\": [{\"match\": \"*\", \"group\": \"\"}]}", 0, "`group` is empty"),
        ("{\"rules\": [{\"group\": \"a\"}]}", 0, "give `match` (a glob) or `regex`"),
        ("{\"rules\": [{\"match\": \"*\", \"regex\": \".*\", \"group\": \"a\"}]}", 0, "not both"),
        ("{\"rules\": [{\"match\": 3, \"group\": \"a\"}]}", 0, "must be strings"),
        ("{\"rules\": [{\"match\": \"*\", \"group\": \"a\", \"groop\": \"b\"}]}", 0, "unknown key `groop`"),
        ("{\"rules\": [{\"match\": \"*\", \"group\": \"a\"}, {\"match\": \"[ab\", \"group\": \"b\"}]}", 1, "not closed"),
        ("{\"rules\": [{\"match\": \"[z-a]\", \"group\": \"b\"}]}", 0, "reversed"),
        ("{\"rules\": [{\"regex\": \"(unclosed\", \"group\": \"b\"}]}", 0, "regex \"(unclosed\" is malformed"),
        // The fuzzing seed that hung dpft for over 20 s on one tensor name (Swift's Regex backtracks).
        ("{\"rules\": [{\"regex\": \"(.*.*)*x\", \"group\": \"g\"}, {\"match\": \"*\", \"group\": \"rest\"}]}", 0,
         "repeats the group (.*.*), which itself repeats or alternates"),
        ("{\"rules\": [{\"regex\": \"(.{0,60}){0,60}x\", \"group\": \"g\"}]}", 0, "repeats the group (.{0,60})"),
        ("{\"rules\": [{\"match\": \"*\", \"group\": \"a\"}], \"thresholds\": [1]}", nil, "`thresholds` must be an object"),
        ("{\"rules\": [{\"match\": \"*\", \"group\": \"a\"}], \"thresholds\": {\"a\": \"1\"}}", nil, "must be numbers"),
        ("{\"rules\": [{\"match\": \"*\", \"group\": \"a\"}], \"thresholds\": {\"a\": -1}}", nil, "positive and finite"),
    ])
    func badFilesNameTheFileAndTheRule(json: String, rule: Int?, reason: String) throws {
        #expect {
            try Self.ruleFile(json, source: "bad.json")
        } throws: { error in
            guard case GroupingError.ruleFileInvalid(let source, let index, let message) = error else { return false }
            return source == "bad.json" && index == rule && message.contains(reason)
                && "\(error)".hasPrefix("bad.json: " + (rule.map { "rules[\($0)]: " } ?? ""))
        }
    }

    /// Nested repetition is found through escapes, brackets and inner groups; patterns that
    /// repeat a plain group, or repeat inside a group that does not repeat, are kept.
    @Test func nestedRepetitionIsFoundAndOrdinaryPatternsPass() {
        for risky in ["(a+)+", "(a|b)*", "((ab)*c)+", "(x(y*))*", "(a?){2,}", "(.*.*)*x", "(\\.[a-z]+)*"] {
            #expect(RegexNesting.nestedRepetition(in: risky) != nil, "\(risky)")
        }
        for fine in ["model\\.layers\\.[0-9]+\\.mlp\\..*", "(ab)*c", "(a*)?", "(a+){1}", "\\(a*\\)*", "[(*]+(ab)+",
                     "(self_attn|mlp)\\..*", ".*\\.(q|k|v)_proj\\.weight"] {
            #expect(RegexNesting.nestedRepetition(in: fine) == nil, "\(fine)")
        }
    }

    @Test func missingFileIsNamed() throws {
        let parameters = try F.parameters(F.gpt2, lora: false)
        #expect(throws: GroupingError.ruleFileUnreadable(source: "/nonexistent/rules.json",
                                                         reason: "no such file or not readable")) {
            try F.resolve("rules", ["file": "/nonexistent/rules.json"], parameters)
        }
        #expect(throws: GroupingError.missingOption(strategy: "rules", option: "file")) {
            try F.resolve("rules", parameters)
        }
    }

    @Test func badJSONOnDiskNamesTheFile() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("broken.json")
        try "{\"rules\": [ {\"match\": \"*\" ".write(to: url, atomically: true, encoding: .utf8)
        #expect {
            try RuleFile.load(url)
        } throws: { error in
            guard case GroupingError.ruleFileInvalid(let source, nil, let reason) = error else { return false }
            return source == url.path && reason.hasPrefix("not valid JSON") && "\(error)".contains(url.path)
        }
    }

    @Test(arguments: [GroupingFixtures.llama, GroupingFixtures.mixtral])
    func theShippedExampleGroupsLlamaLoRA(model: String) throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("recipes/rules/attention-vs-rest.json")
        let lora = LoRAConfig(rank: 4, alpha: 8, targets: ["q_proj", "k_proj", "v_proj", "o_proj"]
                              + (model == F.llama ? ["gate_proj", "up_proj", "down_proj"] : ["w1"]))
        let parameters = try F.config(model).trainableParameterInfos(lora: lora)
        let grouping = try F.resolve("rules", ["file": .string(url.path)], parameters)
        #expect(grouping.groups.map(\.name) == ["attention", "rest"])
        #expect(grouping.groups[0].parameters.allSatisfy { $0.contains(".self_attn.") })
        #expect(grouping.groups[1].parameters.allSatisfy { !$0.contains(".self_attn.") })
        #expect(abs(grouping.totalSensitivity - 1) < 1e-12)
        // Full fine-tuning: embeddings, norms and head fall into "rest".
        let full = try F.resolve("rules", ["file": .string(url.path)], try F.parameters(model, lora: false))
        #expect(full.groups[0].name == "rest" && full.groups[0].parameters.first == "model.embed_tokens.weight")
    }
}
