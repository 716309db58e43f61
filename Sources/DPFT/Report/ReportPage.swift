import Foundation

/// `dpft report`: one self-contained HTML page (inline SVG and CSS, no script, nothing loaded
/// from the network) for a run directory or a sweep directory. The page is well-formed XML
/// (XHTML syntax), so a test or tool can parse it.
///
/// - A run (`metrics.jsonl`): training loss, evaluations, ε, learning rate, seconds per step,
///   and per group the clip rate and median per-example norm, each against the step.
/// - A sweep (`results.jsonl`, `runs/`): the summary over seeds, every run's results, and the
///   trade-off plots — eval loss and exact match against peak book bytes, peak RSS and seconds
///   per step, one series per grouping.
public enum ReportPage {
    /// What a directory is.
    public enum Kind: Sendable, Equatable { case run, sweep }

    /// Whether `directory` holds a run or a sweep.
    public static func kind(of directory: URL) throws -> Kind {
        let manager = FileManager.default
        if manager.fileExists(atPath: directory.appendingPathComponent("metrics.jsonl").path) { return .run }
        if manager.fileExists(atPath: directory.appendingPathComponent("results.jsonl").path)
            || manager.fileExists(atPath: directory.appendingPathComponent("runs").path) { return .sweep }
        throw SweepError.notARunOrSweep(path: directory.path)
    }

    /// The page for the run or sweep in `directory`.
    public static func html(for directory: URL) throws -> String {
        switch try kind(of: directory) {
        case .run: return try runPage(directory)
        case .sweep: return try sweepPage(directory)
        }
    }

    // MARK: - A run

    /// The run's charts, in page order.
    public static func runCharts(_ metrics: RunMetrics) -> [SVGChart] {
        func series(_ name: String, _ points: [RunMetrics.Point]) -> SVGChart.Series {
            SVGChart.Series(name: name, points: points.map { (Double($0.step), $0.value) })
        }
        func byGroup(_ values: [String: [RunMetrics.Point]]) -> [SVGChart.Series] {
            metrics.groupNames.map { series($0, values[$0] ?? []) }
        }
        let evaluations = metrics.evaluations
        var charts = [
            SVGChart(id: "training-loss", title: "Training loss (mean over the logical batch)", xLabel: "step",
                     yLabel: "loss", series: [series("training loss", metrics.loss)]),
            SVGChart(id: "eval-loss", title: "Evaluation loss", xLabel: "step", yLabel: "loss", style: .line,
                     series: [series("eval loss", evaluations.map { .init(step: $0.step, value: $0.loss) })]),
        ]
        let accuracy = evaluations.compactMap { evaluation in evaluation.accuracy.map { RunMetrics.Point(step: evaluation.step, value: $0 * 100) } }
        if !accuracy.isEmpty {
            charts.append(SVGChart(id: "exact-match", title: "Exact match (greedy generation)", xLabel: "step",
                                   yLabel: "%", yIncludes: [0, 100], series: [series("exact match", accuracy)]))
        }
        if !metrics.epsilon.isEmpty {
            charts.append(SVGChart(id: "epsilon", title: "Privacy spent", xLabel: "step", yLabel: "ε",
                                   series: [series("epsilon", metrics.epsilon)]))
        }
        charts.append(SVGChart(id: "learning-rate", title: "Learning rate", xLabel: "step", yLabel: "rate",
                               series: [series("learning rate", metrics.learningRate)]))
        if !metrics.groupNames.isEmpty {
            charts.append(SVGChart(id: "clip-rate", title: "Clip rate by group (norm above threshold)", xLabel: "step",
                                   yLabel: "fraction of the batch", yIncludes: [0, 1], series: byGroup(metrics.clipRate)))
            charts.append(SVGChart(id: "median-norm", title: "Median per-example gradient norm by group", xLabel: "step",
                                   yLabel: "norm", series: byGroup(metrics.medianNorm)))
        }
        charts.append(SVGChart(id: "seconds", title: "Seconds per step", xLabel: "step", yLabel: "s",
                               series: [series("seconds per step", metrics.seconds)]))
        return charts
    }

    private static func runPage(_ directory: URL) throws -> String {
        let metrics = try RunMetrics(directory: directory)
        let name = directory.standardizedFileURL.lastPathComponent
        var facts: [(String, String)] = [("steps", "\(metrics.lastStep)")]
        if let grouping = SweepResult.grouping(recipeIn: directory) { facts.append(("grouping", grouping)) }
        if let final = metrics.finalEvaluation {
            facts.append(("final eval loss", String(format: "%.4f (perplexity %.2f)", final.loss, final.perplexity)))
            if let accuracy = final.accuracy { facts.append(("final exact match", String(format: "%.1f %%", accuracy * 100))) }
        }
        if let epsilon = metrics.epsilon.last { facts.append(("ε spent", String(format: "%.4f at step %d", epsilon.value, epsilon.step))) }
        if let seconds = metrics.medianSecondsPerStep { facts.append(("median seconds per step", String(format: "%.4f", seconds))) }
        if let bytes = metrics.peakBookBytes { facts.append(("peak book bytes", "\(bytes) (\(String(format: "%.2f", Double(bytes) / 1_048_576)) MiB)")) }
        var body = "<h1>Run \(xml(name))</h1>\n<p class=\"path\">\(xml(directory.path))</p>\n"
        body += table(header: ["", ""], rows: facts.map { [$0.0, $0.1] }, headed: false)
        if !metrics.groupNames.isEmpty {
            body += "<p class=\"note\">Clip rates and median norms, like the training loss, are computed on the private training data and are not privatized: they are for tuning and watching a run, not for publication.</p>\n"
        }
        body += runCharts(metrics).map { "<figure>\($0.svg)</figure>\n" }.joined()
        return page(title: "dpft run \(name)", body: body)
    }

    // MARK: - A sweep

    /// The sweep's results, in sweep order, from its results.jsonl.
    public static func sweepResults(_ directory: URL) throws -> [SweepResult] {
        let url = directory.appendingPathComponent("results.jsonl")
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return try text.split(separator: "\n").enumerated().map { index, line in
            do {
                return try SweepResult(json: try JSONReader(parsing: line.utf8, source: url.path))
            } catch {
                throw SweepError.badMarker(file: "\(url.path) line \(index + 1)", reason: "\(error)")
            }
        }
    }

    /// The trade-off plots: one series per grouping, one point per run.
    public static func sweepCharts(_ results: [SweepResult]) -> [SVGChart] {
        var order: [String] = []
        for result in results where !order.contains(result.grouping ?? "non-private") { order.append(result.grouping ?? "non-private") }
        func chart(_ id: String, _ title: String, _ xLabel: String, _ yLabel: String,
                   x: (SweepResult) -> Double?, y: (SweepResult) -> Double?, yIncludes: [Double] = []) -> SVGChart {
            let series = order.map { grouping in
                SVGChart.Series(name: grouping, points: results.filter { ($0.grouping ?? "non-private") == grouping }
                    .compactMap { result in x(result).flatMap { xValue in y(result).map { (xValue, $0) } } })
            }
            return SVGChart(id: id, title: title, xLabel: xLabel, yLabel: yLabel, style: .points, xIncludes: [0],
                            yIncludes: yIncludes, series: series)
        }
        let book = { (result: SweepResult) in result.peakBookBytes.map { Double($0) / 1_048_576 } }
        let rss = { (result: SweepResult) in Double(result.peakResidentBytes) / 1_048_576 }
        let exact = { (result: SweepResult) in result.exactMatch.map { $0 * 100 } }
        return [
            chart("loss-vs-book", "Eval loss against peak book bytes", "peak book MiB", "eval loss", x: book, y: \.evalLoss),
            chart("exact-vs-book", "Exact match against peak book bytes", "peak book MiB", "exact match %", x: book, y: exact,
                  yIncludes: [0, 100]),
            chart("loss-vs-rss", "Eval loss against peak RSS", "peak RSS MiB", "eval loss", x: rss, y: \.evalLoss),
            chart("loss-vs-time", "Eval loss against seconds per step", "seconds per step", "eval loss",
                  x: \.secondsPerStep, y: \.evalLoss),
        ]
    }

    private static func sweepPage(_ directory: URL) throws -> String {
        let results = try sweepResults(directory)
        let name = directory.standardizedFileURL.lastPathComponent
        let summary = SweepSummary(results: results)
        var body = "<h1>Sweep \(xml(name))</h1>\n<p class=\"path\">\(xml(directory.path))</p>\n"
        body += "<h2>Mean ± standard deviation over seeds</h2>\n"
        body += table(header: SweepSummary.columns, rows: summary.cells)
        body += "<p class=\"note\">\(xml(SweepSummary.privacyNote))</p>\n<h2>Trade-offs</h2>\n"
        body += sweepCharts(results).map { "<figure>\($0.svg)</figure>\n" }.joined()
        body += "<h2>Every run</h2>\n"
        let rows = results.map { result -> [String] in
            func number(_ value: Double?, _ format: String) -> String { value.map { String(format: format, $0) } ?? "—" }
            return [result.name, result.grouping ?? "—", "\(result.steps)", number(result.evalLoss, "%.4f"),
                    number(result.exactMatch.map { $0 * 100 }, "%.1f"), number(result.epsilon, "%.3f"),
                    number(result.secondsPerStep, "%.4f"), result.peakBookBytes.map { "\($0)" } ?? "—",
                    "\(result.peakResidentBytes)", "\(result.attempts)"]
        }
        body += table(header: ["run", "grouping", "steps", "eval loss", "exact match %", "ε", "s/step", "peak book bytes",
                               "peak RSS bytes", "attempts"], rows: rows)
        return page(title: "dpft sweep \(name)", body: body)
    }

    // MARK: - HTML

    static func table(header: [String], rows: [[String]], headed: Bool = true) -> String {
        var out = "<table>\n"
        if headed { out += "<tr>" + header.map { "<th>\(xml($0))</th>" }.joined() + "</tr>\n" }
        for row in rows { out += "<tr>" + row.map { "<td>\(xml($0))</td>" }.joined() + "</tr>\n" }
        return out + "</table>\n"
    }

    static let style = """
        body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1540px; }
        table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
        th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
        th { background: #f3f3f3; }
        figure { display: inline-block; margin: 0.5em 1.5em 0.5em 0; vertical-align: top; }
        .path, .note { color: #555; font-size: 0.9em; }
        svg .frame { fill: none; stroke: #888; }
        svg .grid { stroke: #e6e6e6; }
        svg text { font-family: sans-serif; font-size: 11px; fill: #333; }
        svg .chart-title { font-size: 13px; font-weight: bold; }
        svg .axis-label { font-size: 12px; }
        """

    static func page(title: String, body: String) -> String {
        """
        <!DOCTYPE html>
        <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
        <head>
        <meta charset="utf-8"/>
        <title>\(xml(title))</title>
        <style>
        \(style)
        </style>
        </head>
        <body>
        \(body)<p class="note">Written by dpft \(DPFTVersion.current) (dpft report).</p>
        </body>
        </html>

        """
    }
}
