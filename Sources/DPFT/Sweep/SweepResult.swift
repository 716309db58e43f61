import Foundation

/// One finished run of a sweep: its setting and what it measured. Written to the run's
/// `sweep-result.json` (the finished marker) and to the sweep's results.csv / results.jsonl.
public struct SweepResult: Sendable, Equatable {
    /// The run's directory name under `runs/`.
    public var name: String
    /// The setting's overrides (without the seed), and the setting as one label.
    public var setting: [SweepSpec.Override]
    public var seed: UInt64?
    /// The run's grouping strategy with its options (e.g. `per-block`, `uniform {"groups":2}`);
    /// nil for a non-private run.
    public var grouping: String?
    public var steps: Int
    public var evalLoss: Double?
    public var evalPerplexity: Double?
    public var exactMatch: Double?
    /// ε spent by this run alone.
    public var epsilon: Double?
    /// Median seconds of one training step.
    public var secondsPerStep: Double?
    public var peakBookBytes: Int?
    /// The largest peak resident set of the run's processes (`wait4`'s `ru_maxrss`), bytes.
    public var peakResidentBytes: Int
    /// Processes it took (more than 1 after a kill or failure).
    public var attempts: Int
    /// Wall-clock seconds of all attempts together.
    public var wallSeconds: Double

    public var label: String { setting.isEmpty ? "base" : setting.map(\.display).joined(separator: ", ") }

    /// The result as one JSON object (a line of results.jsonl).
    public var json: JSONValue {
        func number(_ value: Double?) -> JSONValue {  // a non-finite value (a diverged loss) as null
            value.flatMap { $0.isFinite ? .number(JSONNumber($0)) : nil } ?? .null
        }
        func integer(_ value: Int?) -> JSONValue { value.map { .number(JSONNumber($0)) } ?? .null }
        let members: [(String, JSONValue)] = [
            ("name", .string(name)), ("setting", .object(JSONObject(setting.map { (key: $0.key, value: $0.value) }))),
            ("seed", seed.map { .number(JSONNumber($0)) } ?? .null), ("grouping", grouping.map(JSONValue.string) ?? .null),
            ("steps", .number(JSONNumber(steps))), ("eval_loss", number(evalLoss)),
            ("eval_perplexity", number(evalPerplexity)), ("exact_match", number(exactMatch)),
            ("epsilon", number(epsilon)), ("seconds_per_step", number(secondsPerStep)),
            ("peak_book_bytes", integer(peakBookBytes)), ("peak_rss_bytes", integer(peakResidentBytes)),
            ("attempts", integer(attempts)), ("wall_seconds", number(wallSeconds)),
        ]
        return .object(JSONObject(members.map { (key: $0.0, value: $0.1) }))
    }

    /// Reads a result written by `json`; `source` names the file for errors.
    public init(json reader: JSONReader) throws {
        func double(_ key: String) throws -> Double? { try reader.optionalMember(key)?.double() }
        func integer(_ key: String) throws -> Int? { try reader.optionalMember(key)?.integer() }
        name = try reader.member("name").string()
        setting = try reader.member("setting").object().map { SweepSpec.Override(key: $0.key, value: $0.value.value) }
        seed = try reader.optionalMember("seed")?.integer(UInt64.self)
        grouping = try reader.optionalMember("grouping")?.string()
        steps = try reader.member("steps").integer()
        evalLoss = try double("eval_loss")
        evalPerplexity = try double("eval_perplexity")
        exactMatch = try double("exact_match")
        epsilon = try double("epsilon")
        secondsPerStep = try double("seconds_per_step")
        peakBookBytes = try integer("peak_book_bytes")
        peakResidentBytes = try reader.member("peak_rss_bytes").integer()
        attempts = try reader.member("attempts").integer()
        wallSeconds = try reader.member("wall_seconds").double()
    }

    /// The result of the finished run in `directory`: metrics.jsonl for the measurements,
    /// recipe.json for the grouping, the attempts for peak RSS and time.
    init(run: SweepRun, directory: URL, attempts: [SweepAttempt]) throws {
        let metrics = try RunMetrics(directory: directory)
        name = run.name
        setting = run.setting
        seed = run.seed
        grouping = Self.grouping(recipeIn: directory)
        steps = metrics.lastStep
        evalLoss = metrics.finalEvaluation?.loss
        evalPerplexity = metrics.finalEvaluation?.perplexity
        exactMatch = metrics.finalEvaluation?.accuracy
        epsilon = metrics.epsilon.last?.value
        secondsPerStep = metrics.medianSecondsPerStep
        peakBookBytes = metrics.peakBookBytes
        peakResidentBytes = attempts.map(\.peakResidentBytes).max() ?? 0
        self.attempts = attempts.count
        wallSeconds = attempts.map(\.seconds).reduce(0, +)
    }

    /// `privacy.grouping` of the run's recipe.json, with its options when it has any.
    static func grouping(recipeIn directory: URL) -> String? {
        let url = directory.appendingPathComponent("recipe.json")
        guard let data = try? Data(contentsOf: url), let root = try? JSONReader(parsing: data, source: url.path),
              let privacy = root["privacy"], let name = try? privacy["grouping"]?.string() else { return nil }
        if let options = privacy["grouping_options"]?.value, case .object(let members) = options, !members.isEmpty {
            return "\(name) \(options.sortedByKey().text(.compact))"
        }
        return name
    }
}

/// One process a sweep ran for a run: how it started and ended, its peak RSS and time.
/// Appended to the run's `sweep-attempts.jsonl`.
struct SweepAttempt: Sendable, Equatable {
    /// `fresh`, `resume` or `overwrite`.
    var start: String
    var outcome: String
    var peakResidentBytes: Int
    var seconds: Double

    var json: JSONValue {
        .object(["start": .string(start), "outcome": .string(outcome),
                 "peak_rss_bytes": .number(JSONNumber(peakResidentBytes)), "seconds": .number(JSONNumber(seconds))])
    }

    /// The attempts recorded in `directory` (unreadable lines skipped: a kill may cut the last).
    static func all(in directory: URL) -> [SweepAttempt] {
        let url = directory.appendingPathComponent("sweep-attempts.jsonl")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let reader = try? JSONReader(parsing: line.utf8, source: url.path),
                  let start = try? reader.member("start").string(), let outcome = try? reader.member("outcome").string(),
                  let peak = try? reader.member("peak_rss_bytes").integer(), let seconds = try? reader.member("seconds").double()
            else { return nil }
            return SweepAttempt(start: start, outcome: outcome, peakResidentBytes: peak, seconds: seconds)
        }
    }

    /// Appends this attempt to `directory`'s `sweep-attempts.jsonl`.
    func append(in directory: URL) throws {
        let url = directory.appendingPathComponent("sweep-attempts.jsonl")
        if !FileManager.default.fileExists(atPath: url.path) { _ = FileManager.default.createFile(atPath: url.path, contents: nil) }
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        handle.seekToEndOfFile()
        handle.write(Data((json.text(.compact) + "\n").utf8))
    }
}
