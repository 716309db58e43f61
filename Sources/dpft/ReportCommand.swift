import ArgumentParser
import DPFT
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write one self-contained HTML page (inline SVG, no script) for a run or a sweep.",
        discussion: """
            For a run directory (output.directory of `dpft recipe`): training loss, evaluations, \
            ε, learning rate, seconds per step, and per group the clip rate and median \
            per-example norm, against the step. For a sweep directory (`dpft sweep`): the summary \
            over seeds, every run's results, and eval loss / exact match against peak book \
            bytes, peak RSS and seconds per step, one series per grouping.
            """)

    @Argument(help: "A run directory or a sweep directory.")
    var directory: String

    @Option(name: .shortAndLong, help: "The page to write (default: report.html in DIRECTORY).")
    var output: String?

    func run() throws {
        let url = URL(fileURLWithPath: directory)
        let html = try ReportPage.html(for: url)
        let target = URL(fileURLWithPath: output ?? url.appendingPathComponent("report.html").path)
        try Data(html.utf8).write(to: target, options: .atomic)
        print("wrote \(target.path) (\(html.utf8.count) bytes)")
    }
}
