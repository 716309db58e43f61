import Foundation
import Testing
@testable import DPFT

/// The run directory (issue 12 items 10, 11, 16): one run at a time holds it, a fresh run does
/// not write over another run, a resume continues only on the data and base it started from,
/// what killed writes left is removed, and step checkpoints stay few and small.
@Suite(.serialized) struct RunDirectoryTests {
    typealias Workspace = RecipeRunnerTests.Workspace

    static func runner(_ url: URL, overrides: [String] = [], resume: Bool = false, overwrite: Bool = false) throws -> RecipeRunner {
        RecipeRunner(recipe: try Recipe.load(from: url, overrides: overrides), resume: resume, overwrite: overwrite) { _ in }
    }

    static func names(in directory: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
    }

    /// As if killed after step 3's checkpoint: the later checkpoint and final.h5 removed.
    static func interrupt(_ run: URL) throws {
        try FileManager.default.removeItem(at: run.appendingPathComponent("step-6.h5"))
        try FileManager.default.removeItem(at: run.appendingPathComponent("final.h5"))
    }

    /// Two runs into one directory overwrote each other's files. Now the second fails before
    /// writing, naming the holder; once the holder is gone its `.lock` file blocks nothing.
    @Test func aSecondRunIntoALockedDirectoryFailsNamingTheHolder() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let run = workspace.directory.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        let recipe = try workspace.recipe()
        do {
            let holder = try RunDirectoryLock(directory: run)
            let recorded = try #require(RunDirectoryLock.holder(of: run))
            #expect(recorded.pid == ProcessInfo.processInfo.processIdentifier)
            final class Lines: @unchecked Sendable { var all: [String] = [] }
            let lines = Lines()
            let second = RecipeRunner(recipe: try Recipe.load(from: recipe)) { lines.all.append($0) }
            let error = #expect(throws: RunError.self) { try second.run() }
            #expect(error == .directoryLocked(directory: run.path, holder: recorded.description))
            #expect(lines.all.isEmpty, "refused at once, before the setup stages: \(lines.all)")
            // the run-directory stage refuses too (a holder that came during the setup stages)
            #expect(throws: RunError.directoryLocked(directory: run.path, holder: recorded.description)) {
                try RunDirectory(recipe: try Recipe.load(from: recipe), start: .fresh, frozenBase: nil)
            }
            #expect(error?.description.contains("pid \(recorded.pid) on \(recorded.host), since \(recorded.since)") == true,
                    "\(String(describing: error))")
            #expect(try Self.names(in: run) == [".lock"], "nothing written while locked")
            withExtendedLifetime(holder) {}
        }
        // the holder released the lock (as the kernel does when a holder dies, kill -9 included)
        #expect(try Self.runner(recipe).run().steps == 6)
    }

    /// Re-running a recipe without --resume overwrote final.h5, metrics.jsonl and recipe.json
    /// and left old step checkpoints for a later --resume to mix in. Now it is refused;
    /// --overwrite replaces the run's files and leaves other files alone.
    @Test func aFreshRunIntoAnotherRunIsRefusedUnlessOverwriting() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let run = workspace.directory.appendingPathComponent("run")
        let recipe = try workspace.recipe()
        _ = try Self.runner(recipe).run()
        try Data("mine".utf8).write(to: run.appendingPathComponent("notes.txt"))
        let before = try Data(contentsOf: run.appendingPathComponent("final.h5"))
        let error = #expect(throws: RunError.self) { try Self.runner(recipe, overrides: ["training.steps=3"]).run() }
        #expect(error == .directoryHoldsRun(directory: run.path,
                                            files: ["final.h5", "metrics.jsonl", "recipe.json", "step-3.h5", "step-6.h5"]))
        #expect(error?.description.contains("--resume") == true && error?.description.contains("--overwrite") == true
                && error?.description.contains("output.directory") == true)
        #expect(try Data(contentsOf: run.appendingPathComponent("final.h5")) == before, "the old run is untouched")

        #expect(throws: RunError.resumeAndOverwrite) { try Self.runner(recipe, resume: true, overwrite: true).run() }
        let replaced = try Self.runner(recipe, overrides: ["training.steps=2"], overwrite: true).run()
        #expect(replaced.steps == 2)
        #expect(try Self.names(in: run) == [".lock", "final.h5", "metrics.jsonl", "notes.txt", "recipe.json", "step-2.h5"])
        let ledger = try PrivacyLedger(json: try #require(try Checkpoint.read(from: run.appendingPathComponent("final.h5")).privacyLedger))
        #expect(ledger.steps == 2)
    }

    /// --resume on a training file whose bytes changed mixed two data sets under one ledger.
    /// The resume state records the file's SHA-256; a resume on other bytes is refused.
    @Test func resumeOnDifferentDataIsRefused() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let run = workspace.directory.appendingPathComponent("run")
        let recipe = try workspace.recipe()
        let trainURL = URL(fileURLWithPath: workspace.train)
        let original = try Data(contentsOf: trainURL)
        let was = try fileSHA256(trainURL)
        _ = try Self.runner(recipe).run()
        try Self.interrupt(run)
        let state = try #require(try Checkpoint.read(from: run.appendingPathComponent("step-3.h5")).trainingState)
        #expect(state.contains("\"trainDataSHA256\":\"\(was)\""))
        // the same number of lines, one word changed
        try Data(String(decoding: original, as: UTF8.self).replacingOccurrences(of: "item red", with: "item pink").utf8).write(to: trainURL)
        let now = try fileSHA256(trainURL)
        let error = #expect(throws: RunError.self) { try Self.runner(recipe, resume: true).run() }
        #expect(error == .trainDataChanged(directory: run.path, file: workspace.train, was: was, now: now))
        #expect(error?.description.contains(String(was.prefix(12))) == true && error?.description.contains(String(now.prefix(12))) == true)
        try original.write(to: trainURL)
        #expect(try Self.runner(recipe, resume: true).run().steps == 6)
    }

    /// A kill during an atomic write leaves `.NAME.tmp-PID-RANDOM`; under the lock, a start and a
    /// resume remove every such file (in the directory and export/), and nothing else.
    @Test func staleTemporaryFilesAreRemovedAtStartAndResume() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let run = workspace.directory.appendingPathComponent("run")
        let export = run.appendingPathComponent("export")
        try FileManager.default.createDirectory(at: export, withIntermediateDirectories: true)
        let stale = [run.appendingPathComponent(".step-3.h5.tmp-4242-17"), run.appendingPathComponent(".metrics.jsonl.tmp-4242-9"),
                     export.appendingPathComponent(".model.safetensors.tmp-4242-3")]
        func plant() throws { for url in stale { try Data("half a file".utf8).write(to: url) } }
        try plant()
        try Data("mine".utf8).write(to: run.appendingPathComponent(".hidden"))
        let recipe = try workspace.recipe()
        _ = try Self.runner(recipe, overwrite: true).run()  // export/ counts as a run's folder
        for url in stale { #expect(!FileManager.default.fileExists(atPath: url.path), "\(url.lastPathComponent) removed at start") }
        try Self.interrupt(run)
        try FileManager.default.createDirectory(at: export, withIntermediateDirectories: true)
        try plant()
        _ = try Self.runner(recipe, resume: true).run()
        for url in stale { #expect(!FileManager.default.fileExists(atPath: url.path), "\(url.lastPathComponent) removed at resume") }
        #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent(".hidden").path))
    }

    /// Every step checkpoint was kept (63 in the demo). Now the newest `keep_checkpoints`
    /// (default 2; 0 = all) plus final.h5; a resume from the kept ones still works.
    @Test(arguments: [(nil, [5, 6]), (1, [6]), (0, [1, 2, 3, 4, 5, 6])] as [(Int?, [Int])])
    func onlyTheNewestStepCheckpointsAreKept(keep: Int?, kept: [Int]) throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let run = workspace.directory.appendingPathComponent("run")
        let overrides = ["output.checkpoint_every=1"] + (keep.map { ["output.keep_checkpoints=\($0)"] } ?? [])
        let recipe = try workspace.recipe()
        _ = try Self.runner(recipe, overrides: overrides).run()
        #expect(RunDirectory.checkpoints(in: run).map(\.step) == kept)
        #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent("final.h5").path))
        try FileManager.default.removeItem(at: run.appendingPathComponent("step-6.h5"))
        if kept.count > 1 {
            #expect(try Self.runner(recipe, overrides: overrides, resume: true).run().steps == 6)
            #expect(RunDirectory.checkpoints(in: run).map(\.step) == kept)
        }
    }

    /// A LoRA step checkpoint copied the frozen base. It now refers to the base file (absolute
    /// path and SHA-256) and holds no /tensors; reading it gives the base's tensors; final.h5
    /// stands alone with every tensor.
    @Test func loraStepCheckpointsReferToTheirFrozenBase() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let run = workspace.directory.appendingPathComponent("run")
        _ = try Self.runner(try workspace.recipe()).run()
        let baseURL = URL(fileURLWithPath: workspace.checkpoint)
        let base = try Checkpoint.read(from: baseURL)
        let step = run.appendingPathComponent("step-3.h5")
        #expect(try Checkpoint.frozenBase(of: step) == Checkpoint.BaseReference(path: baseURL.standardizedFileURL.path,
                                                                               sha256: try fileSHA256(baseURL)))
        let file = try HDF5File.openForReading(step.path)
        #expect(!file.isGroup("/tensors"))
        #expect(try file.attribute("format_version") == .integer(2))
        let final = run.appendingPathComponent("final.h5")
        #expect(try Checkpoint.frozenBase(of: final) == nil)
        // the step checkpoint lacks the base's float32 weights that final.h5 holds (256 bytes of
        // slack for the two ledgers' and states' differing digits)
        func size(_ url: URL) throws -> Int { try #require(try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) }
        let weightBytes = 4 * base.tensors.values.map(\.count).reduce(0, +)
        let (stepSize, finalSize) = (try size(step), try size(final))
        #expect(finalSize - stepSize >= weightBytes - 256, "\(stepSize) vs \(finalSize) bytes")
        #expect(try HDF5File.openForReading(final.path).attribute("format_version") == .integer(1), "older builds read final.h5")
        for url in [step, final] {
            let checkpoint = try Checkpoint.read(from: url)
            #expect(checkpoint.tensors.count == base.tensors.count)
            for (name, tensor) in base.tensors { #expect(checkpoint.tensors[name]?.values == tensor.values, "\(name) in \(url.lastPathComponent)") }
            #expect(!checkpoint.adapters.isEmpty)
        }
        // full fine-tuning trains every tensor: its step checkpoints stand alone
        let full = try workspace.recipe(output: "full")
        _ = try Self.runner(full, overrides: ["adapter={\"type\": \"none\"}", "training.steps=3"]).run()
        #expect(try Checkpoint.frozenBase(of: workspace.directory.appendingPathComponent("full/step-3.h5")) == nil)
    }

    /// The base a LoRA run's step checkpoints refer to changed or vanished: the resume is
    /// refused, naming the base, instead of training adapters on other weights.
    @Test func aChangedOrMissingBaseRefusesTheResume() throws {
        let workspace = try Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let run = workspace.directory.appendingPathComponent("run")
        let recipe = try workspace.recipe()
        _ = try Self.runner(recipe).run()
        try Self.interrupt(run)
        let baseURL = URL(fileURLWithPath: workspace.checkpoint)
        let original = try Data(contentsOf: baseURL)
        let was = try fileSHA256(baseURL)
        var other = try Checkpoint.read(from: baseURL)
        other.tensors = Checkpoint.initialized(config: other.config, seed: 6).tensors
        try other.write(to: baseURL)
        let now = try fileSHA256(baseURL)
        let step = run.appendingPathComponent("step-3.h5")
        let changed = CheckpointError.baseChanged(path: step.path, base: baseURL.standardizedFileURL.path, expected: was, found: now)
        #expect(throws: changed) { try Self.runner(recipe, resume: true).run() }
        try FileManager.default.removeItem(at: baseURL)
        #expect(throws: CheckpointError.baseMissing(path: step.path, base: baseURL.standardizedFileURL.path)) {
            try Checkpoint.read(from: step)
        }
        try original.write(to: baseURL)
        #expect(try Self.runner(recipe, resume: true).run().steps == 6)
    }

    /// metrics.jsonl after a kill: a line cut off by the kill, and a final evaluation's line
    /// (the run is resumed at its last step and evaluates again), would otherwise stay.
    @Test func truncatedMetricsDropATornLineAndARepeatedFinalEvaluation() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("metrics.jsonl")
        let lines = [#"{"eval":{"loss":2},"step":0}"#, #"{"loss":1.5,"step":1}"#, #"{"loss":1.25,"step":2}"#,
                     #"{"eval":{"loss":1},"step":2}"#]
        try Data((lines.joined(separator: "\n") + "\n" + #"{"loss":1.1,"st"#).utf8).write(to: url)
        try RunDirectory.truncateMetrics(at: url, after: 2)
        #expect(try String(contentsOf: url, encoding: .utf8) == lines.prefix(3).joined(separator: "\n") + "\n")
        try RunDirectory.truncateMetrics(at: url, after: 1)
        #expect(try String(contentsOf: url, encoding: .utf8) == lines.prefix(2).joined(separator: "\n") + "\n")
    }
}
