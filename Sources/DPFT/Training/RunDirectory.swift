import Foundation

/// A run's output directory: `recipe.json` (the resolved recipe), `metrics.jsonl`,
/// `step-N.h5` checkpoints (the newest `output.keep_checkpoints`), `final.h5`, the optional
/// `export/` folder, and `.lock`, by which one run at a time holds the directory.
struct RunDirectory {
    /// How a run takes the directory: as a new run (refused if it holds another run's
    /// files), replacing the run there, or continuing it from the checkpoint of step `step`.
    enum Start: Equatable {
        case fresh
        case overwrite
        case resume(step: Int)
    }

    let url: URL
    let metrics: MetricsWriter
    /// Held until the run ends (or dies): no second run writes here meanwhile.
    let lock: RunDirectoryLock
    /// Step checkpoints kept (the newest); 0 keeps all.
    let keepCheckpoints: Int
    /// For a LoRA run, the frozen base that step checkpoints refer to instead of copying it.
    let frozenBase: Checkpoint.BaseReference?

    /// Creates the directory, takes its lock and checks it against `start` before writing
    /// anything; then removes what killed writes left, writes `recipe.json`, and starts
    /// `metrics.jsonl` anew (fresh, overwrite) or keeps its lines up to the resumed step (a run
    /// killed after logging steps past its last checkpoint redoes them) and appends.
    init(recipe: Recipe, start: Start, frozenBase: Checkpoint.BaseReference?) throws {
        url = URL(fileURLWithPath: recipe.output.directory)
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw RunError.cannotCreateDirectory(path: url.path, reason: FileProblem.reason(for: error, path: url.path))
        }
        lock = try RunDirectoryLock(directory: url)
        keepCheckpoints = recipe.output.keepCheckpoints
        self.frozenBase = frozenBase
        try Self.prepare(url, for: start)
        try writeAtomically(to: url.appendingPathComponent("recipe.json")) { try Data(recipe.resolvedJSON.utf8).write(to: $0) }
        let metricsURL = url.appendingPathComponent("metrics.jsonl")
        if case .resume(let step) = start {
            try Self.truncateMetrics(at: metricsURL, after: step)
        } else {
            try? FileManager.default.removeItem(at: metricsURL)
        }
        metrics = try MetricsWriter(url: metricsURL)
    }

    /// Under the lock: refuses a fresh run into another run's files and a resume whose
    /// checkpoint is no longer the newest; clears the old run for `overwrite`; removes the
    /// temporary files of writes a kill interrupted (no writer is at work: the lock is held).
    private static func prepare(_ url: URL, for start: Start) throws {
        switch start {
        case .fresh:
            let existing = runFiles(in: url)
            guard existing.isEmpty else {
                throw RunError.directoryHoldsRun(directory: url.path, files: existing.map(\.lastPathComponent))
            }
        case .overwrite:
            for file in runFiles(in: url) { try FileManager.default.removeItem(at: file) }
        case .resume(let step):
            let newest = checkpoints(in: url).last?.step
            guard newest == step else {
                throw RunError.runDirectoryChanged(directory: url.path, resumedStep: step, newestStep: newest)
            }
        }
        try AtomicWriteTemporary.removeStale(in: url)
        try AtomicWriteTemporary.removeStale(in: url.appendingPathComponent("export"))
    }

    /// The files a run writes that are present in `directory`: `recipe.json`, `metrics.jsonl`,
    /// `step-N.h5`, `final.h5` and `export/`, sorted by name. Other files are not a run's and
    /// are left alone, by `--overwrite` too.
    static func runFiles(in directory: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        let fixed: Set<String> = ["recipe.json", "metrics.jsonl", "final.h5", "export"]
        let stepNames = Set(checkpoints(in: directory).map(\.url.lastPathComponent))
        return names.filter { fixed.contains($0) || stepNames.contains($0) }.sorted()
            .map { directory.appendingPathComponent($0) }
    }

    /// Rewrites metrics.jsonl (atomically) without the lines of steps after `step`, so that
    /// every step appears once after a resume. Also dropped: a final evaluation's line at
    /// `step` (a run killed after it resumes at its last step and evaluates again) and a last
    /// line cut off by the kill. Other lines that are not a JSON object with an integer "step"
    /// are kept as they are.
    static func truncateMetrics(at url: URL, after step: Int) throws {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last?.isEmpty == true { lines.removeLast() } else if !lines.isEmpty { lines.removeLast() }
        let kept = lines.filter { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let lineStep = object["step"] as? Int else { return !line.isEmpty }
            let isFinalEvaluation = lineStep == step && step > 0 && object["loss"] == nil
            return lineStep <= step && !isFinalEvaluation
        }
        let rewritten = kept.map { $0 + "\n" }.joined()
        try writeAtomically(to: url) { try Data(rewritten.utf8).write(to: $0) }
    }

    /// Checkpoints `step-N.h5` in `directory`, by step.
    static func checkpoints(in directory: URL) -> [(step: Int, url: URL)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.compactMap { name -> (Int, URL)? in
            guard name.hasPrefix("step-"), name.hasSuffix(".h5"),
                  let step = Int(name.dropFirst(5).dropLast(3)) else { return nil }
            return (step, directory.appendingPathComponent(name))
        }.sorted { $0.0 < $1.0 }
    }

    /// Writes `step-N.h5` atomically: the model (on `base`; a LoRA run's refers to its frozen
    /// base instead of copying it), optimizer state, resume state and, for a private run, the
    /// privacy ledger. Then removes the step checkpoints older than the newest `keepCheckpoints`
    /// (only once the new one is complete, so a kill never leaves fewer than one).
    func saveCheckpoint(model: Transformer, base: Checkpoint, optimizer: Optimizer, state: RunState,
                        ledger: PrivacyLedger?) throws -> URL {
        var checkpoint = model.checkpoint(base: base, weights: frozenBase == nil)
        checkpoint.frozenBase = frozenBase
        checkpoint.optimizerState = optimizer.state
        checkpoint.trainingState = try state.json()
        if let ledger { checkpoint.privacyLedger = ledger.json }
        let target = url.appendingPathComponent("step-\(state.step).h5")
        try checkpoint.write(to: target)
        if keepCheckpoints > 0 {
            for old in Self.checkpoints(in: url).dropLast(keepCheckpoints) {
                try FileManager.default.removeItem(at: old.url)
            }
        }
        return target
    }

    /// Where `publishFinal` writes `final.h5` in the run directory `directory`.
    static func finalURL(in directory: String) -> URL {
        URL(fileURLWithPath: directory).appendingPathComponent("final.h5")
    }

    /// `final.h5`: the last checkpoint written, or else the newest step checkpoint (a run
    /// resumed at its last step writes none), standing alone — a step checkpoint's reference
    /// to its frozen base is resolved into full weights. Written atomically; kept as it was
    /// when there is no checkpoint at all.
    func publishFinal(lastCheckpoint: URL?) throws -> URL {
        let finalURL = Self.finalURL(in: url.path)
        guard let source = lastCheckpoint ?? Self.checkpoints(in: url).last?.url else { return finalURL }
        if frozenBase == nil {
            try writeAtomically(to: finalURL) { try FileManager.default.copyItem(at: source, to: $0) }
        } else {
            try Checkpoint.read(from: source).write(to: finalURL)  // read resolves the base
        }
        return finalURL
    }

    /// Exports `final.h5` to `export/` as the recipe's `output.export` says.
    func export(_ export: Recipe.OutputSection.ExportSection, finalCheckpoint: URL) throws -> URL {
        var checkpoint = try Checkpoint.read(from: finalCheckpoint)
        if export.mergeLoRA { try checkpoint.mergeAdapters() }
        let target = url.appendingPathComponent("export")
        try HuggingFace.export(checkpoint, to: target, format: export.format)
        return target
    }
}

/// Appends JSON lines (sorted keys) to metrics.jsonl.
final class MetricsWriter {
    private let handle: FileHandle

    init(url: URL) throws {
        if !FileManager.default.fileExists(atPath: url.path) {
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        guard let handle = FileHandle(forWritingAtPath: url.path) else {
            throw CheckpointError.writeFailed(path: url.path, reason: "cannot open for appending")
        }
        handle.seekToEndOfFile()
        self.handle = handle
    }

    func write(_ object: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        handle.write(data + Data("\n".utf8))
    }

    deinit { try? handle.close() }
}
