import Foundation

/// A grouping written as data (DESIGN.md §4): ordered rules from tensor names to group names,
/// the first matching rule wins, plus optional thresholds per group.
///
///     {
///       "description": "optional text",
///       "rules": [
///         {"match": "*.self_attn.*", "group": "attention"},
///         {"regex": "model\\.layers\\.[0-9]+\\.mlp\\..*", "group": "mlp"},
///         {"match": "*", "group": "rest"}
///       ],
///       "thresholds": {"attention": 0.8, "mlp": 0.5, "rest": 0.33}
///     }
///
/// A glob matches the whole name: `*` is any run of characters (dots included), `?` one
/// character, `[abc]`, `[a-z]` and `[!abc]` (or `[^abc]`) one character from (not from) a set,
/// and `\` makes the next character literal. A regex must also match the whole name. Every
/// trainable tensor must match some rule, and every group in `thresholds` must get a tensor.
/// Errors name the file and the rule (`rules[i]`, counted from 0).
public struct RuleFile: Sendable, Equatable {
    /// One rule: tensors whose name matches `pattern` go to `group`.
    public struct Rule: Sendable, Equatable {
        public enum Pattern: Sendable, Equatable {
            case glob(String)
            case regex(String)
        }
        public var pattern: Pattern
        public var group: String

        public init(pattern: Pattern, group: String) {
            self.pattern = pattern
            self.group = group
        }
    }

    /// Where the rules came from, for messages (a path, or a description).
    public var source: String
    public var rules: [Rule]
    /// Explicit R_k by group name.
    public var thresholds: [String: Double]

    /// Rules given in code; patterns and thresholds are checked as a file's would be.
    public init(rules: [Rule], thresholds: [String: Double] = [:], source: String = "rule list") throws {
        self.source = source
        self.rules = rules
        self.thresholds = thresholds
        guard !rules.isEmpty else { throw GroupingError.ruleFileInvalid(source: source, rule: nil, reason: "`rules` is empty") }
        for (index, rule) in rules.enumerated() {
            guard !rule.group.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw GroupingError.ruleFileInvalid(source: source, rule: index, reason: "`group` is empty")
            }
            _ = try matcher(for: rule, index: index)
        }
        for (group, threshold) in thresholds.sorted(by: { $0.key < $1.key }) where !(threshold.isFinite && threshold > 0) {
            throw GroupingError.ruleFileInvalid(source: source, rule: nil,
                                                reason: "`thresholds.\(group)` is \(threshold); thresholds must be positive and finite")
        }
    }

    /// Reads a rule file.
    public static func load(_ url: URL) throws -> RuleFile {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw GroupingError.ruleFileUnreadable(source: url.path, reason: "no such file or not readable")
        }
        return try RuleFile(json: data, source: url.path)
    }

    /// Parses rule-file JSON; `source` names it in errors.
    public init(json data: Data, source: String) throws {
        func invalid(_ rule: Int?, _ reason: String) -> GroupingError {
            .ruleFileInvalid(source: source, rule: rule, reason: reason)
        }
        let value: JSONValue
        do {
            value = try JSONParser.parse(data, source: source)
        } catch {
            if case .duplicateKey(_, let keyPath) = error.kind {
                throw invalid(nil, "line \(error.line), column \(error.column): key `\(keyPath)` appears more than once; keep one")
            }
            throw invalid(nil, "not valid JSON (\(error.locatedReason))")
        }
        guard case .object(let top) = value else { throw invalid(nil, "the top level must be an object with `rules`") }
        let topKeys = ["rules", "thresholds", "description"]
        if let unknown = top.keys.sorted().first(where: { !topKeys.contains($0) }) {
            throw invalid(nil, "unknown key `\(unknown)`; allowed: \(topKeys.joined(separator: ", "))")
        }
        guard let rulesValue = top["rules"] else { throw invalid(nil, "`rules` is missing") }
        guard case .array(let ruleValues) = rulesValue else { throw invalid(nil, "`rules` must be an array") }

        var rules: [Rule] = []
        let ruleKeys = ["match", "regex", "group", "description"]
        for (index, ruleValue) in ruleValues.enumerated() {
            guard case .object(let object) = ruleValue else {
                throw invalid(index, "a rule must be an object such as {\"match\": \"*.mlp.*\", \"group\": \"mlp\"}")
            }
            if let unknown = object.keys.sorted().first(where: { !ruleKeys.contains($0) }) {
                throw invalid(index, "unknown key `\(unknown)`; allowed: \(ruleKeys.joined(separator: ", "))")
            }
            guard case .string(let group)? = object["group"] else {
                throw invalid(index, "`group` (a string) is missing")
            }
            let pattern: Rule.Pattern
            switch (object["match"], object["regex"]) {
            case (.string(let glob)?, nil): pattern = .glob(glob)
            case (nil, .string(let regex)?): pattern = .regex(regex)
            case (nil, nil): throw invalid(index, "give `match` (a glob) or `regex`")
            case (.some, .some): throw invalid(index, "give either `match` or `regex`, not both")
            default: throw invalid(index, "`match` and `regex` must be strings")
            }
            rules.append(Rule(pattern: pattern, group: group))
        }

        var thresholds: [String: Double] = [:]
        if let thresholdsValue = top["thresholds"] {
            guard case .object(let object) = thresholdsValue else {
                throw invalid(nil, "`thresholds` must be an object {group: threshold}")
            }
            for (group, entry) in object {
                guard case .number(let threshold) = entry else {
                    throw invalid(nil, "`thresholds.\(group)` is \(entry); thresholds must be numbers")
                }
                thresholds[group] = threshold.double
            }
        }
        try self.init(rules: rules, thresholds: thresholds, source: source)
    }

    /// The groups of `parameters` (in order of first member), with this file's thresholds.
    public func groups(for parameters: [ParameterInfo]) throws -> [GroupDraft] {
        let matchers = try rules.enumerated().map { try matcher(for: $1, index: $0) }
        var drafts: [GroupDraft] = []
        var indexByGroup: [String: Int] = [:]
        for parameter in parameters {
            guard let rule = matchers.firstIndex(where: { $0(parameter.name) }) else {
                throw GroupingError.unmatchedParameter(source: source, parameter: parameter.name)
            }
            let group = rules[rule].group
            if let index = indexByGroup[group] {
                drafts[index].parameters.append(parameter.name)
            } else {
                indexByGroup[group] = drafts.count
                drafts.append(GroupDraft(name: group, parameters: [parameter.name], threshold: thresholds[group]))
            }
        }
        if let empty = thresholds.keys.sorted().first(where: { indexByGroup[$0] == nil }) {
            throw GroupingError.thresholdGroupWithoutMembers(source: source, group: empty)
        }
        return drafts
    }

    /// A whole-name matcher for rule `index`; a malformed pattern is an error naming the rule.
    private func matcher(for rule: Rule, index: Int) throws -> (String) -> Bool {
        switch rule.pattern {
        case .glob(let text):
            do {
                let glob = try Glob(text)
                return { glob.matches($0) }
            } catch let error as Glob.SyntaxError {
                throw GroupingError.ruleFileInvalid(source: source, rule: index,
                                                    reason: "glob \"\(text)\" is malformed: \(error.reason)")
            }
        case .regex(let text):
            if let group = RegexNesting.nestedRepetition(in: text) {
                throw GroupingError.ruleFileInvalid(
                    source: source, rule: index,
                    reason: "regex \"\(text)\" repeats the group \(group), which itself repeats or alternates: "
                        + "matching can take exponential time. Write it without the nested repetition (e.g. .* instead of (.*)*)")
            }
            let regex: Regex<AnyRegexOutput>
            do {
                regex = try Regex(text)
            } catch {
                throw GroupingError.ruleFileInvalid(source: source, rule: index,
                                                    reason: "regex \"\(text)\" is malformed: \(error)")
            }
            return { (try? regex.wholeMatch(in: $0)) != nil }
        }
    }
}

/// A shell-style glob over whole names: `*` (any run, dots included), `?`, `[...]`, `\`.
struct Glob: Sendable {
    struct SyntaxError: Error { var reason: String }

    enum Token: Sendable, Equatable {
        case literal(Character)
        case anyCharacter
        case anyRun
        case set(ranges: [ClosedRange<Character>], negated: Bool)

        func matches(_ character: Character) -> Bool {
            switch self {
            case .literal(let literal): return literal == character
            case .anyCharacter: return true
            case .anyRun: return false
            case .set(let ranges, let negated): return ranges.contains { $0.contains(character) } != negated
            }
        }
    }

    let tokens: [Token]

    init(_ pattern: String) throws {
        let characters = Array(pattern)
        var tokens: [Token] = []
        var i = 0
        while i < characters.count {
            let character = characters[i]
            i += 1
            switch character {
            case "*":
                if tokens.last != .anyRun { tokens.append(.anyRun) }
            case "?":
                tokens.append(.anyCharacter)
            case "\\":
                guard i < characters.count else { throw SyntaxError(reason: "it ends with a lone `\\`") }
                tokens.append(.literal(characters[i]))
                i += 1
            case "[":
                var negated = false
                if i < characters.count, characters[i] == "!" || characters[i] == "^" {
                    negated = true
                    i += 1
                }
                var ranges: [ClosedRange<Character>] = []
                var first = true
                while i < characters.count, characters[i] != "]" || first {
                    first = false
                    var low = characters[i]
                    if low == "\\", i + 1 < characters.count {
                        i += 1
                        low = characters[i]
                    }
                    i += 1
                    if i + 1 < characters.count, characters[i] == "-", characters[i + 1] != "]" {
                        let high = characters[i + 1]
                        guard low <= high else { throw SyntaxError(reason: "range `\(low)-\(high)` is reversed") }
                        ranges.append(low...high)
                        i += 2
                    } else {
                        ranges.append(low...low)
                    }
                }
                guard i < characters.count else { throw SyntaxError(reason: "a `[` is not closed by `]`") }
                i += 1  // the closing "]"
                tokens.append(.set(ranges: ranges, negated: negated))
            default:
                tokens.append(.literal(character))
            }
        }
        self.tokens = tokens
    }

    /// Whether the whole of `name` matches. Greedy with backtracking to the last `*`, which is
    /// linear in practice and never exponential (every other token matches exactly one character).
    func matches(_ name: String) -> Bool {
        let characters = Array(name)
        var t = 0, c = 0
        var lastRun: (token: Int, character: Int)? = nil
        while c < characters.count {
            if t < tokens.count, tokens[t] == .anyRun {
                lastRun = (t, c)
                t += 1
            } else if t < tokens.count, tokens[t].matches(characters[c]) {
                t += 1
                c += 1
            } else if let run = lastRun {
                lastRun = (run.token, run.character + 1)
                t = run.token + 1
                c = run.character + 1
            } else {
                return false
            }
        }
        while t < tokens.count, tokens[t] == .anyRun { t += 1 }
        return t == tokens.count
    }
}

/// Strategy `rules`: groups from a rule file (see `RuleFile`), with its thresholds.
public struct RuleFileGrouping: GroupingStrategy {
    public init() {}
    public let name = "rules"
    public let summary = "groups from a JSON rule file: ordered glob/regex rules over tensor names, optional thresholds"
    public let options = [
        GroupingOptionSpec(name: "file", type: .path, isRequired: true,
                           description: "the rule file, e.g. recipes/rules/attention-vs-rest.json"),
    ]
    public func groups(for parameters: [ParameterInfo], options: GroupingOptions) throws -> [GroupDraft] {
        guard let path = try options.string("file") else { throw options.missing("file") }
        return try RuleFile.load(URL(fileURLWithPath: path)).groups(for: parameters)
    }
}
