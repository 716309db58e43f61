import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import DPFT

/// Crash soak (issue 12): the dpft executable trains a tiny seeded recipe and is killed with
/// SIGKILL at three moments — mid-training, inside a step checkpoint's atomic write, and while
/// publishing the final checkpoint — and resumed with --resume each time. The result must be
/// the uninterrupted run's: the same ε, bitwise the same parameters, each step logged once,
/// no temporary file left, every checkpoint loadable.
@Suite(.serialized) struct CrashSoakTests {
    /// One dpft process, its output in a log file.
    final class Run {
        let process = Process()
        let log: URL

        init(_ arguments: [String], log: URL) throws {
            self.log = log
            FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            process.executableURL = try ExamplePlugin.dpft()
            process.arguments = arguments
            process.standardOutput = handle
            process.standardError = handle
            try process.run()
        }

        /// Polls `condition` (busy, for moments that last milliseconds) while the process runs;
        /// true when it held before the process ended or `seconds` passed.
        func wait(upTo seconds: Double = 120, until condition: () -> Bool) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline {
                if condition() { return true }
            }
            return false
        }

        /// SIGKILL, then whether it was the kill that ended the process.
        func kill() -> Bool {
            _ = Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL
        }

        func finish() -> (status: Int32, output: String) {
            process.waitUntilExit()
            return (process.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
        }
    }

    static func names(_ directory: URL) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
    }

    static func temporaries(_ directory: URL) -> [String] {
        names(directory).filter { $0.contains(".tmp-") }
    }

    /// "step" for a step's line, "step eval" for an evaluation's line, in file order.
    static func metricSteps(_ run: URL) throws -> [String] {
        let text = try String(contentsOf: run.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            return "\(try #require(object["step"] as? Int))\(object["loss"] != nil ? "" : " eval")"
        }
    }

    @Test(.timeLimit(.minutes(5)))
    func killedRunsResumeToTheUninterruptedResult() throws {
        let workspace = try RecipeRunnerTests.Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let seeded = #"{"noise_multiplier": 1.1, "accountant": "rdp", "grouping": "layer-wise", "noise_seed": 11}"#
        let settings = ["--set", "training.steps=16", "--set", "output.checkpoint_every=1"]
        let wholeRecipe = try workspace.recipe(privacy: seeded, output: "whole")
        let recipe = try workspace.recipe(privacy: seeded, output: "soak")
        let whole = try Run(["recipe", wholeRecipe.path] + settings, log: workspace.directory.appendingPathComponent("whole.log")).finish()
        try #require(whole.status == 0, "\(whole.output)")
        let run = workspace.directory.appendingPathComponent("soak")
        var attempt = 0
        func start(resume: Bool) throws -> Run {
            attempt += 1
            return try Run(["recipe", recipe.path] + settings + (resume ? ["--resume"] : []),
                           log: workspace.directory.appendingPathComponent("soak-\(attempt).log"))
        }

        // 1. mid-training, once step 5 is logged
        let first = try start(resume: false)
        #expect(first.wait { ((try? Self.metricSteps(run)) ?? []).contains("5") })
        #expect(first.kill(), "killed mid-training")

        // 2. inside a step checkpoint's write: kill as soon as its temporary file appears; a
        // try counts when the kill came before the rename (the temporary file is left)
        var leftBehind: [String] = []
        var tries = 0
        while leftBehind.isEmpty && tries < 10 {
            tries += 1
            let resumed = try start(resume: true)
            let seen = resumed.wait { Self.temporaries(run).contains { $0.hasPrefix(".step-") } }
            #expect(resumed.kill() && seen, "\(resumed.finish().output)")
            leftBehind = Self.temporaries(run)
        }
        #expect(!leftBehind.isEmpty, "no kill landed inside a checkpoint write in 10 tries")
        FileHandle.standardError.write(Data("crash soak: killed inside a checkpoint write on try \(tries) (left \(leftBehind))\n".utf8))

        // 3. while publishing the last checkpoint as final.h5 (or evaluating after it)
        let late = try start(resume: true)
        #expect(late.wait { Self.names(run).contains { $0 == "final.h5" || $0.hasPrefix(".final.h5.tmp-") } })
        #expect(late.kill(), "killed while publishing final.h5")

        let last = try start(resume: true).finish()
        try #require(last.status == 0, "\(last.output)")

        let wholeRun = workspace.directory.appendingPathComponent("whole")
        let expected = try Checkpoint.read(from: wholeRun.appendingPathComponent("final.h5"))
        let final = try Checkpoint.read(from: run.appendingPathComponent("final.h5"))
        let expectedLedger = try PrivacyLedger(json: try #require(expected.privacyLedger))
        let ledger = try PrivacyLedger(json: try #require(final.privacyLedger))
        #expect(ledger.epsilon == expectedLedger.epsilon && ledger.steps == 16 && ledger.history == expectedLedger.history)
        for (name, tensor) in expected.tensors.merging(expected.adapters, uniquingKeysWith: { a, _ in a }) {
            let other = final.tensors[name] ?? final.adapters[name]
            #expect(other?.values == tensor.values, "\(name) differs from the uninterrupted run")
        }
        #expect(try Self.metricSteps(run) == Self.metricSteps(wholeRun))
        #expect(try Self.metricSteps(run).filter { !$0.hasSuffix("eval") } == (1...16).map(String.init))
        #expect(Self.temporaries(run).isEmpty, "\(Self.temporaries(run))")
        #expect(RunDirectory.checkpoints(in: run).map(\.step) == [15, 16])
        for name in Self.names(run) where name.hasSuffix(".h5") {
            #expect(throws: Never.self, "\(name) loads") { _ = try Checkpoint.read(from: run.appendingPathComponent(name)) }
        }
    }
}
