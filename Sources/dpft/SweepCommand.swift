import ArgumentParser
import DPFT
import Foundation

struct SweepCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sweep",
        abstract: "Run a grid (or list) of recipe settings × seeds into one directory, with a results table.",
        discussion: """
            SWEEP.json names a base recipe ("recipe": a file relative to SWEEP.json, or a built-in \
            name), overrides for every run ("set"), the settings ("grid": key → list of values, \
            every combination; or "settings": a list of override objects) and "seeds" (written to \
            "seed_keys", default ["training.seed"]). Keys are those of `dpft recipe --set`. Every \
            run's recipe is checked before the first starts. Each run is its own `dpft recipe` \
            process in SWEEP_DIR/runs/NAME (its output in dpft.log there), so that its peak RSS is \
            its own and a killed run ends only itself. Run the same command again after an \
            interruption: finished runs are skipped, an interrupted one resumes from its last \
            checkpoint. Writes results.csv and results.jsonl and prints mean ± std over seeds. \
            Each run's ε is its own: choosing among runs by results on private data spends \
            privacy too. Stop a sweep with Ctrl-C (it stops the current run too); a signal to \
            the sweep's pid alone (kill, kill -9) leaves its current run going until it ends.
            """)

    @Argument(help: "The sweep file (JSON).")
    var sweep: String

    @Option(name: .customLong("output"), help: "The sweep directory (default: SWEEP file's name without .json, in the current directory).")
    var output: String?

    func run() throws {
        let file = URL(fileURLWithPath: sweep)
        let spec = try SweepSpec(contentsOf: file, assets: Assets.located())
        let directory = URL(fileURLWithPath: output ?? file.deletingPathExtension().lastPathComponent)
        guard let executable = Assets.currentExecutable else {
            throw ValidationError("cannot find the dpft executable (/proc/self/exe) to start the runs with")
        }
        let runner = SweepRunner(spec: spec, directory: directory.standardizedFileURL, executable: executable) { line in
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
        try runner.run()
        print("results: \(directory.path)/results.csv, \(directory.path)/results.jsonl (page: dpft report \(directory.path))")
    }
}
