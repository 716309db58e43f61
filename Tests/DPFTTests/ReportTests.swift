import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing
@testable import DPFT

/// `dpft report` (issue 17): the page for a run and for a sweep parses as XML, has no script
/// and loads nothing, and holds every series the run's metrics.jsonl (or the sweep's
/// results) has — each with as many points as the file has values.
@Suite(.serialized) struct ReportTests {
    /// What an XML parse of a page found: per chart (`data-chart`), its series (`data-series`)
    /// with their point counts; table rows; and any script, link or external reference.
    final class PageReader: NSObject, XMLParserDelegate {
        var charts: [String: [(name: String, points: Int)]] = [:]
        var tableRows = 0
        var external: [String] = []
        private var chart: String?

        func parser(_ parser: XMLParser, didStartElement element: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            if element == "script" || element == "link" || element == "img" || element == "iframe" { external.append(element) }
            for (name, value) in attributes where name == "href" || name == "src" { external.append(value) }
            if element == "tr" { tableRows += 1 }
            if element == "svg" { chart = attributes["data-chart"]; charts[chart ?? "?"] = [] }
            if element == "g", let series = attributes["data-series"], let chart { charts[chart]!.append((series, 0)) }
            if element == "polyline", let chart, let points = attributes["points"] {
                charts[chart]![charts[chart]!.count - 1].points = points.split(separator: " ").count
            }
            if element == "circle", let chart { charts[chart]![charts[chart]!.count - 1].points += 1 }
        }

        func parser(_ parser: XMLParser, didEndElement element: String, namespaceURI: String?, qualifiedName: String?) {
            if element == "svg" { chart = nil }
        }

        /// Parses `html`; fails the test when it is not well-formed XML.
        static func read(_ html: String) throws -> PageReader {
            let reader = PageReader()
            let parser = XMLParser(data: Data(html.utf8))
            parser.delegate = reader
            let parsed = parser.parse()
            try #require(parsed, "not well-formed: \(String(describing: parser.parserError)) at line \(parser.lineNumber)")
            return reader
        }
    }

    /// A six-step private run of the tiny recipe (layer-wise: two groups), evaluated at steps
    /// 2 and 4; its page against its metrics.jsonl read with JSONSerialization and its ledger.
    @Test func aRunPageHoldsEverySeriesOfItsMetrics() throws {
        let workspace = try RecipeRunnerTests.Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let recipe = try workspace.recipe(#", "eval_every": 2"#, privacy: #"{"noise_multiplier": 1.1, "grouping": "layer-wise", "accountant": "rdp"}"#)
        let summary = try workspace.run(recipe)
        let run = workspace.directory.appendingPathComponent("run")
        let page = try PageReader.read(try ReportPage.html(for: run))
        #expect(page.external.isEmpty, "the page refers to \(page.external)")

        let lines = try RunnerTrustTests.metricsLines(run)
        func count(_ key: String) -> Int { lines.filter { $0["loss"] != nil && $0[key] != nil }.count }
        let evaluations = lines.filter { $0["eval"] != nil }.count
        let groups = try PrivacyLedger(json: try #require(try Checkpoint.read(from: URL(fileURLWithPath: summary.finalCheckpoint)).privacyLedger)).groups.map(\.name)
        #expect(groups.count == 2 && evaluations == 4, "base, steps 2 and 4, final")
        let expected: [String: [(String, Int)]] = [
            "training-loss": [("training loss", count("loss"))],
            "eval-loss": [("eval loss", evaluations)],
            "exact-match": [("exact match", evaluations)],
            "epsilon": [("epsilon", count("epsilon"))],
            "learning-rate": [("learning rate", count("learning_rate"))],
            "clip-rate": groups.sorted().map { ($0, count("clip_rate")) },
            "median-norm": groups.sorted().map { ($0, count("median_norm")) },
            "seconds": [("seconds per step", count("seconds"))],
        ]
        #expect(Set(page.charts.keys) == Set(expected.keys))
        for (chart, series) in expected {
            let found = page.charts[chart] ?? []
            #expect(found.map(\.name).sorted() == series.map(\.0), "\(chart)")
            for (name, points) in series {
                #expect(found.first { $0.name == name }?.points == points, "\(chart) \(name): \(found)")
            }
        }
        #expect(count("loss") == 6 && count("clip_rate") == 6 && count("epsilon") == 6)
    }

    /// A sweep directory's page: one series per grouping in each trade-off plot, a point per
    /// run that has both values, the summary and every run in tables.
    @Test func aSweepPageHoldsATradeOffSeriesPerGrouping() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("runs"), withIntermediateDirectories: true)
        var results: [SweepResult] = []
        for (index, grouping) in ["all-layer", "all-layer", "per-block <&>", "layer-wise", "layer-wise", "layer-wise"].enumerated() {
            var result = SweepResult.blank(name: "run-\(index)")
            result.setting = [SweepSpec.Override(key: "privacy.grouping", value: .string(grouping))]
            result.grouping = grouping
            result.evalLoss = 2 + Double(index) / 10
            result.exactMatch = index == 3 ? nil : Double(index) / 10
            result.peakBookBytes = grouping == "layer-wise" ? 0 : (index + 1) << 20
            result.peakResidentBytes = (100 + index) << 20
            result.secondsPerStep = 0.5
            results.append(result)
        }
        try Data(results.map { $0.json.text(.compact) + "\n" }.joined().utf8).write(to: directory.appendingPathComponent("results.jsonl"))
        let html = try ReportPage.html(for: directory)
        let page = try PageReader.read(html)
        #expect(page.external.isEmpty)
        let groupings = ["all-layer", "per-block <&>", "layer-wise"]
        for chart in ["loss-vs-book", "loss-vs-rss", "loss-vs-time"] {
            #expect(page.charts[chart]?.map(\.name) == groupings, "\(chart)")
            #expect(page.charts[chart]?.map(\.points) == [2, 1, 3], "\(chart)")
        }
        #expect(page.charts["exact-vs-book"]?.map(\.points) == [2, 1, 2], "run-3 has no exact match")
        #expect(page.tableRows == (1 + 3) + (1 + 6), "summary: header and 3 settings; every run: header and 6")
        #expect(html.contains("per-block &lt;&amp;&gt;") && html.contains("by that run alone"))
    }

    @Test func aDirectoryThatIsNeitherIsANamedError() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(throws: SweepError.notARunOrSweep(path: directory.path)) { try ReportPage.html(for: directory) }
    }

    /// Ticks fall on 1, 2 or 5 × 10^k and cover the values.
    @Test func axisTicksAreNiceAndCoverTheValues() {
        let axis = Axis(values: [0.013, 0.087])
        #expect(axis.ticks.count >= 3 && axis.low <= 0.013 && axis.high >= 0.087)
        #expect(abs(axis.ticks[1] - axis.ticks[0] - 0.02) < 1e-12)
        #expect(Axis(values: [5, 5]).ticks.contains(5), "one value gets a range around it")
    }
}
