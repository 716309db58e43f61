import Foundation

/// A sweep's results over seeds: per setting the mean ± sample standard deviation (n − 1) of
/// each measurement, as a text table for the terminal; and the results as CSV.
public struct SweepSummary: Sendable {
    /// One setting's runs, summarised.
    public struct Row: Sendable {
        public var label: String
        public var grouping: String?
        public var runs: Int
        /// Mean and sample standard deviation (nil for fewer than two values) per measurement.
        public var evalLoss, evalPerplexity, exactMatch, epsilon, secondsPerStep, peakBookBytes, peakResidentBytes: Statistic?
    }

    /// Mean and standard deviation of the values a setting's runs have.
    public struct Statistic: Sendable, Equatable {
        public var mean: Double
        public var standardDeviation: Double?

        init?(_ values: [Double]) {
            guard !values.isEmpty else { return nil }
            mean = values.reduce(0, +) / Double(values.count)
            let mean = mean
            standardDeviation = values.count < 2 ? nil
                : (values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count - 1)).squareRoot()
        }
    }

    public let rows: [Row]

    /// What every sweep says under its table: each ε is one run's, and choosing among runs
    /// by their results on private data spends privacy too.
    public static let privacyNote = """
        Each ε above is the privacy spent by that run alone. Tuning on private data spends privacy too: \
        choosing a setting by these results used every run's data, so the chosen model's honest ε is that of \
        all the runs composed (at most their sum), unless the tuning ran on public or separate data.
        """

    /// Groups `results` by setting, in order of first appearance.
    public init(results: [SweepResult]) {
        var order: [String] = []
        var bySetting: [String: [SweepResult]] = [:]
        for result in results {
            if bySetting[result.label] == nil { order.append(result.label) }
            bySetting[result.label, default: []].append(result)
        }
        rows = order.map { label in
            let runs = bySetting[label]!
            func statistic(_ value: (SweepResult) -> Double?) -> Statistic? { Statistic(runs.compactMap(value)) }
            return Row(label: label, grouping: runs[0].grouping, runs: runs.count,
                       evalLoss: statistic(\.evalLoss), evalPerplexity: statistic(\.evalPerplexity),
                       exactMatch: statistic { $0.exactMatch.map { $0 * 100 } }, epsilon: statistic(\.epsilon),
                       secondsPerStep: statistic(\.secondsPerStep),
                       peakBookBytes: statistic { $0.peakBookBytes.map { Double($0) / 1_048_576 } },
                       peakResidentBytes: statistic { Double($0.peakResidentBytes) / 1_048_576 })
        }
    }

    static let columns = ["setting", "runs", "eval loss", "perplexity", "exact match %", "ε", "s/step", "book MiB", "RSS MiB"]

    /// The table's cells: the setting, the number of runs, then `mean ± std` per measurement.
    public var cells: [[String]] {
        rows.map { row in
            [row.label, "\(row.runs)", Self.format(row.evalLoss, "%.4f"), Self.format(row.evalPerplexity, "%.2f"),
             Self.format(row.exactMatch, "%.1f"), Self.format(row.epsilon, "%.3f"), Self.format(row.secondsPerStep, "%.3f"),
             Self.format(row.peakBookBytes, "%.2f"), Self.format(row.peakResidentBytes, "%.0f")]
        }
    }

    /// `mean ± std`, the mean alone for one run, `—` for none.
    public static func format(_ statistic: Statistic?, _ format: String) -> String {
        guard let statistic else { return "—" }
        let mean = String(format: format, statistic.mean)
        return statistic.standardDeviation.map { "\(mean) ± \(String(format: format, $0))" } ?? mean
    }

    /// The summary as an aligned text table, the privacy note below it.
    public var table: String {
        let all = [Self.columns] + cells
        let widths = Self.columns.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        let lines = all.map { cells in
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
        }
        return "mean ± standard deviation over seeds, per setting:\n" + lines.joined(separator: "\n") + "\n" + Self.privacyNote
    }

    /// One run's result in a line: `eval loss 2.3011, exact match 25.0%, ε 1.234, 0.012 s/step`.
    static func line(_ result: SweepResult) -> String {
        var parts: [String] = []
        if let loss = result.evalLoss { parts.append(String(format: "eval loss %.4f", loss)) }
        if let accuracy = result.exactMatch { parts.append(String(format: "exact match %.1f%%", accuracy * 100)) }
        if let epsilon = result.epsilon { parts.append(String(format: "ε %.3f", epsilon)) }
        if let seconds = result.secondsPerStep { parts.append(String(format: "%.3f s/step", seconds)) }
        parts.append(String(format: "peak RSS %.0f MiB", Double(result.peakResidentBytes) / 1_048_576))
        return parts.joined(separator: ", ")
    }

    /// results.csv: one row per run; a column per setting key (`keys`, first appearance order).
    public static func csv(_ results: [SweepResult], keys: [String]) -> String {
        var seen = Set<String>()
        let settingKeys = keys.filter { seen.insert($0).inserted }
        let header = ["name", "seed"] + settingKeys + ["grouping", "steps", "eval_loss", "eval_perplexity", "exact_match",
                                                      "epsilon", "seconds_per_step", "peak_book_bytes", "peak_rss_bytes",
                                                      "attempts", "wall_seconds"]
        func text(_ value: Double?) -> String { value.map { "\($0)" } ?? "" }
        let lines = results.map { result -> [String] in
            let setting = Dictionary(result.setting.map { ($0.key, $0.value) }, uniquingKeysWith: { $1 })
            let values = settingKeys.map { key -> String in
                guard let value = setting[key] else { return "" }
                if case .string(let string) = value { return string }
                return value.text(.compact)
            }
            return [result.name, result.seed.map { "\($0)" } ?? ""] + values
                + [result.grouping ?? "", "\(result.steps)", text(result.evalLoss), text(result.evalPerplexity),
                   text(result.exactMatch), text(result.epsilon), text(result.secondsPerStep),
                   result.peakBookBytes.map { "\($0)" } ?? "", "\(result.peakResidentBytes)", "\(result.attempts)",
                   text(result.wallSeconds)]
        }
        return ([header] + lines).map { $0.map(csvField).joined(separator: ",") + "\n" }.joined()
    }

    /// A CSV field, quoted (RFC 4180) when it holds a comma, quote or line break.
    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
