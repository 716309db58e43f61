import Foundation

/// Runs a sweep (`dpft sweep`): every run of a `SweepSpec`, one after another, each in its own
/// `dpft recipe` process with the run's overrides and `output.directory=SWEEP_DIR/runs/NAME`.
///
/// **Why a process per run.** `wait4` gives each child's own peak resident set, where the
/// sweep's own `ru_maxrss` would be the high-water mark of every run so far; a run that traps
/// or is killed (the out-of-memory killer, a `kill -9`) ends that process only, and the sweep
/// records it and goes on; and no memory of one run is held into the next.
///
/// **Restart.** A run whose directory holds `sweep-result.json` — written atomically once its
/// process exited 0, that is after its final checkpoint, final evaluation and export — is
/// finished and skipped. Any other run starts again: with `--resume` when it has a step
/// checkpoint (the run continues where it was killed, its ledger counting every step), with
/// `--overwrite` when it holds only files of a run that died before its first checkpoint,
/// else fresh. Each process is logged to the run's `sweep-attempts.jsonl`; its output is
/// appended to the run's `dpft.log`.
///
/// **Results.** `results.jsonl` and `results.csv` in the sweep directory, one row per finished
/// run in sweep order (rewritten atomically after every run), and a summary table over seeds.
public struct SweepRunner {
    public let spec: SweepSpec
    /// The sweep directory: `runs/NAME/` per run, `results.csv`, `results.jsonl`, `sweep.json`.
    public let directory: URL
    /// The dpft executable each run is started with.
    public let executable: URL
    let log: (String) -> Void

    /// `log` receives whole lines (the plan, one line per run, the summary).
    public init(spec: SweepSpec, directory: URL, executable: URL, log: @escaping (String) -> Void) {
        self.spec = spec
        self.directory = directory
        self.executable = executable
        self.log = log
    }

    /// What a sweep did.
    public struct Outcome: Sendable {
        /// Every finished run's result, in sweep order.
        public var results: [SweepResult]
        /// Runs started this time, skipped as finished, and failed.
        public var ran: [String]
        public var skipped: [String]
        public var failed: [String]
    }

    /// Checks every run's recipe, then runs those not finished. Throws `SweepError.runsFailed`
    /// after the last run when some did not finish (the results of the others are written).
    @discardableResult
    public func run() throws -> Outcome {
        let runs = try spec.runs
        try check(runs)
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("runs"), withIntermediateDirectories: true)
        let lock = try RunDirectoryLock(directory: directory)  // one sweep at a time in a directory
        defer { withExtendedLifetime(lock) {} }
        try writeAtomically(to: directory.appendingPathComponent("sweep.json")) { try Data(plan(runs).text(.pretty()).utf8).write(to: $0) }
        log("sweep \(spec.file.path): \(runs.count) runs (\(spec.settings.count) settings × \(max(spec.seeds.count, 1)) seeds) of \(spec.recipe.builtInName.map { "built-in recipe \($0)" } ?? "recipe file \(spec.recipe.file.standardizedFileURL.path)") into \(directory.path)")
        var outcome = Outcome(results: [], ran: [], skipped: [], failed: [])
        for (index, run) in runs.enumerated() {
            let prefix = "[\(index + 1)/\(runs.count)] \(run.name)"
            if FileManager.default.fileExists(atPath: marker(run).path) {
                outcome.skipped.append(run.name)
                log("\(prefix): finished before, skipped")
            } else if try runOnce(run, prefix: prefix) {
                outcome.ran.append(run.name)
            } else {
                outcome.failed.append(run.name)
            }
            outcome.results = try writeResults(runs)
        }
        log(SweepSummary(results: outcome.results).table)
        guard outcome.failed.isEmpty else { throw SweepError.runsFailed(names: outcome.failed, sweepDirectory: directory.path) }
        return outcome
    }

    /// Loads every run's recipe (in this process, nothing written) so that a bad key or value
    /// fails before the first run starts, naming the setting; and refuses a finished run whose
    /// recipe.json is not the recipe the sweep file now makes (the file changed since).
    private func check(_ runs: [SweepRun]) throws {
        for run in runs {
            let recipe: Recipe
            do {
                recipe = try spec.recipe.loadCheckingInputs(overrides: arguments(run))
            } catch {
                throw SweepError.settingFails(file: spec.file.path, label: run.label, reason: "\(error)")
            }
            let recorded = runDirectory(run).appendingPathComponent("recipe.json")
            if FileManager.default.fileExists(atPath: marker(run).path),
               (try? String(contentsOf: recorded, encoding: .utf8)) != recipe.resolvedJSON {
                throw SweepError.finishedRunDiffers(file: spec.file.path, directory: runDirectory(run).path)
            }
        }
    }

    func runDirectory(_ run: SweepRun) -> URL { directory.appendingPathComponent("runs/\(run.name)") }
    func marker(_ run: SweepRun) -> URL { runDirectory(run).appendingPathComponent("sweep-result.json") }

    /// The `--set` arguments of `run`, its output directory last.
    func arguments(_ run: SweepRun) -> [String] {
        run.overrides.map(\.setArgument) + [SweepSpec.Override(key: "output.directory", value: .string(runDirectory(run).path)).setArgument]
    }

    /// One process for `run`, started as its directory requires; true when it finished.
    private func runOnce(_ run: SweepRun, prefix: String) throws -> Bool {
        let runDirectory = runDirectory(run)
        try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        let start = RunDirectory.checkpoints(in: runDirectory).isEmpty
            ? (RunDirectory.runFiles(in: runDirectory).isEmpty ? "fresh" : "overwrite") : "resume"
        do {
            try RunDirectoryLock.checkNotHeld(directory: runDirectory)
        } catch RunError.directoryLocked(let path, let holder) {
            log("\(prefix): \(SweepError.runStillRunning(directory: path, holder: holder ?? "holder not recorded"))")
            return false
        }
        log("\(prefix): \(start == "fresh" ? "running" : start == "resume" ? "resuming from its last checkpoint" : "starting again (it died before its first checkpoint)")")
        var commandLine = ["recipe", spec.recipe.file.path] + arguments(run).flatMap { ["--set", $0] }
        if start != "fresh" { commandLine.append("--\(start)") }
        let outcome = try ChildRun.run(executable, commandLine, log: runDirectory.appendingPathComponent("dpft.log"))
        let attempt = SweepAttempt(start: start, outcome: outcome.description, peakResidentBytes: outcome.peakResidentBytes,
                                   seconds: outcome.seconds)
        try attempt.append(in: runDirectory)
        guard outcome.succeeded else {
            log("\(prefix): \(outcome.description) after \(String(format: "%.1f", outcome.seconds)) s; see \(runDirectory.path)/dpft.log")
            return false
        }
        let result = try SweepResult(run: run, directory: runDirectory, attempts: SweepAttempt.all(in: runDirectory))
        try writeAtomically(to: marker(run)) { try Data(result.json.text(.pretty()).utf8).write(to: $0) }
        log("\(prefix): done in \(String(format: "%.1f", outcome.seconds)) s — \(SweepSummary.line(result))")
        return true
    }

    /// The finished runs' results, in sweep order, written to results.jsonl and results.csv.
    private func writeResults(_ runs: [SweepRun]) throws -> [SweepResult] {
        let results = try runs.compactMap { run -> SweepResult? in
            let url = marker(run)
            guard let data = try? Data(contentsOf: url) else { return nil }
            do {
                return try SweepResult(json: try JSONReader(parsing: data, source: url.path))
            } catch {
                throw SweepError.badMarker(file: url.path, reason: "\(error)")
            }
        }
        let lines = results.map { $0.json.text(.compact) + "\n" }.joined()
        try writeAtomically(to: directory.appendingPathComponent("results.jsonl")) { try Data(lines.utf8).write(to: $0) }
        let csv = SweepSummary.csv(results, keys: spec.settings.flatMap { $0.map(\.key) })
        try writeAtomically(to: directory.appendingPathComponent("results.csv")) { try Data(csv.utf8).write(to: $0) }
        return results
    }

    /// `sweep.json`: the sweep file, the recipe and every run's name and arguments, for the record.
    private func plan(_ runs: [SweepRun]) -> JSONValue {
        .object(["sweep_file": .string(spec.file.path), "recipe": .string(spec.recipe.file.path),
                 "runs": .array(runs.map { run in
                     .object(["name": .string(run.name), "set": .array(arguments(run).map(JSONValue.string))])
                 })])
    }
}
