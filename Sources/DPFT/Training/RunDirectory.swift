import Foundation

/// A run's output directory: `recipe.json` (the resolved recipe), `metrics.jsonl`,
/// `step-N.h5` checkpoints, `final.h5` and the optional `export/` folder.
struct RunDirectory {
    let url: URL
    let metrics: MetricsWriter

    /// Creates the directory and writes `recipe.json`; a fresh run starts `metrics.jsonl`
    /// anew, a run resumed from step `resumedStep` keeps its lines up to that step (a run killed
    /// after logging steps past its last checkpoint redoes them) and appends.
    init(recipe: Recipe, resumedStep: Int?) throws {
        url = URL(fileURLWithPath: recipe.output.directory)
        do {
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        } catch {
            throw RunError.cannotCreateDirectory(path: url.path, reason: FileProblem.reason(for: error, path: url.path))
        }
        try writeAtomically(to: url.appendingPathComponent("recipe.json")) { try Data(recipe.resolvedJSON.utf8).write(to: $0) }
        let metricsURL = url.appendingPathComponent("metrics.jsonl")
        if let resumedStep {
            try Self.truncateMetrics(at: metricsURL, after: resumedStep)
        } else {
            try? FileManager.default.removeItem(at: metricsURL)
        }
        metrics = try MetricsWriter(url: metricsURL)
    }

    /// Rewrites metrics.jsonl (atomically) without the lines of steps after `step`, so that
    /// every step appears once after a resume. Lines that are not a JSON object with an
    /// integer "step" are kept as they are.
    static func truncateMetrics(at url: URL, after step: Int) throws {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return }
        let kept = text.split(separator: "\n", omittingEmptySubsequences: true).filter { line in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let lineStep = object["step"] as? Int else { return true }
            return lineStep <= step
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

    /// Writes `step-N.h5` atomically: the model (on `base`), optimizer state, resume state
    /// and, for a private run, the privacy ledger.
    func saveCheckpoint(model: Transformer, base: Checkpoint, optimizer: Optimizer, state: RunState,
                        ledger: PrivacyLedger?) throws -> URL {
        var checkpoint = model.checkpoint(base: base)
        checkpoint.optimizerState = optimizer.state
        checkpoint.trainingState = try state.json()
        if let ledger { checkpoint.privacyLedger = ledger.json }
        let target = url.appendingPathComponent("step-\(state.step).h5")
        try checkpoint.write(to: target)
        return target
    }

    /// `final.h5`: a copy of the last checkpoint written (kept as it was when none was).
    func publishFinal(lastCheckpoint: URL?) throws -> URL {
        let finalURL = url.appendingPathComponent("final.h5")
        if let lastCheckpoint {
            try? FileManager.default.removeItem(at: finalURL)
            try FileManager.default.copyItem(at: lastCheckpoint, to: finalURL)
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
