import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import DPFT

/// Data-parallel training under Open MPI (issue 15): `mpirun -np 2 dpft recipe` on a tiny
/// seeded recipe takes the same logical batches and noise as one process, so its parameters
/// equal the single process's up to the order of float additions and its ledger is the same
/// but for `world_size`; a killed rank ends the job at once and the run resumes. `make test`
/// installs Open MPI; these tests fail (they do not skip) when mpirun is missing.
@Suite(.serialized) struct DataParallelTests {
    static func mpirun() throws -> URL {
        let candidates = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].map(URL.init(fileURLWithPath:))
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw ExamplePlugin.CommandFailure(command: "locating mpirun",
                                               output: "Open MPI is not installed: run `make test` (it installs openmpi-bin)")
        }
        return found
    }

    /// `mpirun -np ranks dpft arguments…` as root is allowed, ranks share the 2 cores.
    static func mpiProcess(ranks: Int, _ arguments: [String], log: URL, marker: String = "") throws -> Process {
        let process = Process()
        process.executableURL = try mpirun()
        process.arguments = ["-np", String(ranks), "--oversubscribe", "--bind-to", "none",
                             "-x", "DPFT_TEST_MARKER=\(marker)", try ExamplePlugin.dpft().path] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
        process.environment = environment
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return process
    }

    /// ‖a − b‖ / ‖b‖ over every tensor of the two maps (which must have the same names).
    static func worstRelativeDifference(_ a: [String: Tensor], _ b: [String: Tensor]) -> Double {
        #expect(Set(a.keys) == Set(b.keys))
        var worst = 0.0
        for (name, x) in a {
            guard let y = b[name] else { continue }
            let difference = zip(x.values, y.values).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            let norm = y.values.reduce(0.0) { $0 + Double($1) * Double($1) }
            worst = max(worst, norm > 0 ? (difference / norm).squareRoot() : difference.squareRoot())
        }
        return worst
    }

    static let seeded = #"{"noise_multiplier": 1.1, "accountant": "rdp", "grouping": "layer-wise", "noise_seed": 11}"#

    /// Private LoRA and non-private full fine-tuning: 2 ranks vs 1 process on the same logical
    /// batches (the seed fixes them), 4 steps of batch 8 (each rank runs about 4 examples).
    @Test(arguments: [("private LoRA", seeded, [String]()), ("non-private full", "null", ["adapter=null"])])
    func twoRanksTrainAsOneProcess(label: String, privacy: String, overrides: [String]) throws {
        let workspace = try RecipeRunnerTests.Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let recipe = try workspace.recipe(privacy: privacy, output: "one")
        let sets = (overrides + ["training.steps=4", "training.eval_every=0"]).flatMap { ["--set", $0] }
        let first = ExamplePlugin.run(["recipe", recipe.path] + sets, executable: try ExamplePlugin.dpft())
        #expect(first.status == 0, "\(first.output)")
        // The same output.directory (so the same recipe hash): the first run's moves aside.
        let single = workspace.directory.appendingPathComponent("one-process")
        try FileManager.default.moveItem(at: workspace.directory.appendingPathComponent("one"), to: single)
        let log = workspace.directory.appendingPathComponent("mpi.log")
        let process = try Self.mpiProcess(ranks: 2, ["recipe", recipe.path] + sets, log: log)
        process.waitUntilExit()
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus == 0, "\(label): \(output)")
        #expect(output.contains("data-parallel: 2 processes"), "\(output)")
        #expect(output.components(separatedBy: "final checkpoint:").count == 2, "only rank 0 reports: \(output)")
        let one = try Checkpoint.read(from: single.appendingPathComponent("final.h5"))
        let two = try Checkpoint.read(from: workspace.directory.appendingPathComponent("one/final.h5"))
        let trained = one.adapters.isEmpty ? one.tensors : one.adapters
        #expect(Self.worstRelativeDifference(two.adapters.isEmpty ? two.tensors : two.adapters, trained) <= 1e-5, "\(label)")
        #expect(Self.worstRelativeDifference(two.optimizerState, one.optimizerState) <= 1e-5, "\(label)")
        #expect(!trained.isEmpty && !one.optimizerState.isEmpty)
        guard privacy != "null" else { return }
        // Clip statistics cover the whole batch (every rank's share), as one process's do.
        let linesOne = try RunnerTrustTests.metricsLines(single), linesTwo = try RunnerTrustTests.metricsLines(
            workspace.directory.appendingPathComponent("one"))
        let rates = { (lines: [[String: Any]]) in lines.compactMap { $0["clip_rate"] as? [String: Double] } }
        #expect(rates(linesTwo) == rates(linesOne) && rates(linesOne).count == 4)
        let medians = { (lines: [[String: Any]]) in lines.compactMap { $0["median_norm"] as? [String: Double] } }
        for (a, b) in zip(medians(linesTwo), medians(linesOne)) {
            #expect(a.keys == b.keys && a.allSatisfy { abs($0.value - b[$0.key]!) <= 1e-5 * abs(b[$0.key]!) })
        }
        var ledgerOne = try PrivacyLedger(json: #require(one.privacyLedger))
        let ledgerTwo = try PrivacyLedger(json: #require(two.privacyLedger))
        #expect(ledgerOne.worldSize == 1 && ledgerTwo.worldSize == 2)
        ledgerOne.worldSize = 2
        #expect(ledgerOne == ledgerTwo)
        #expect(ledgerTwo.steps == 4)
    }

    /// The pid of the rank `rank` dpft process started with `marker` (from /proc environ).
    static func rankProcess(marker: String, rank: Int) -> pid_t? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for name in names {
            guard let pid = pid_t(name),
                  let environ = FileManager.default.contents(atPath: "/proc/\(name)/environ") else { continue }
            let variables = Set(environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
            if variables.contains("DPFT_TEST_MARKER=\(marker)"), variables.contains("OMPI_COMM_WORLD_RANK=\(rank)") {
                return pid
            }
        }
        return nil
    }

    /// SIGKILL of rank 1 after the first checkpoint: mpirun exits non-zero within seconds and
    /// names the rank; the newest checkpoint loads; `--resume` on 3 ranks finishes the run.
    @Test func aKilledRankEndsTheJobAndTheRunResumes() throws {
        let workspace = try RecipeRunnerTests.Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let recipe = try workspace.recipe(privacy: Self.seeded)
        let sets = ["--set", "training.steps=40", "--set", "training.eval_every=0", "--set", "output.checkpoint_every=2"]
        let marker = UUID().uuidString
        let log = workspace.directory.appendingPathComponent("mpi.log")
        let process = try Self.mpiProcess(ranks: 2, ["recipe", recipe.path] + sets, log: log, marker: marker)
        let run = workspace.directory.appendingPathComponent("run")
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning, Date() < deadline,
              !FileManager.default.fileExists(atPath: run.appendingPathComponent("step-2.h5").path) {
            usleep(5_000)
        }
        let victim = try #require(Self.rankProcess(marker: marker, rank: 1), "rank 1 not found: \(String(describing: try? String(contentsOf: log, encoding: .utf8)))")
        let killed = Date()
        _ = Glibc.kill(victim, SIGKILL)
        process.waitUntilExit()
        let seconds = Date().timeIntervalSince(killed)
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(process.terminationStatus != 0, "\(output)")
        #expect(seconds < 15, "mpirun took \(seconds) s to end the job")
        #expect(output.contains("rank 1"), "the message names the rank: \(output)")
        let newest = try #require(RunDirectory.checkpoints(in: run).last)
        #expect(newest.step < 40)
        _ = try Checkpoint.read(from: newest.url)
        #expect(CrashSoakTests.temporaries(run).isEmpty, "no half-written file: \(CrashSoakTests.names(run))")
        // Resumed by another number of ranks (3): the batches of step s depend only on the seed and s.
        let resumeLog = workspace.directory.appendingPathComponent("resume.log")
        let resumed = try Self.mpiProcess(ranks: 3, ["recipe", recipe.path, "--resume"] + sets, log: resumeLog)
        resumed.waitUntilExit()
        #expect(resumed.terminationStatus == 0, "\(String(describing: try? String(contentsOf: resumeLog, encoding: .utf8)))")
        let final = try Checkpoint.read(from: run.appendingPathComponent("final.h5"))
        let ledger = try PrivacyLedger(json: #require(final.privacyLedger))
        #expect(ledger.steps == 40 && ledger.worldSize == 3)
    }

    /// Errors under mpirun end the job with a non-zero exit and do not hang. A diverged step is
    /// seen by every rank at once (the loss and gradient are the ranks' sum): rank 0 alone
    /// reports it after writing `privacy-ledger.json`. A bad training line fails every rank's
    /// setup; the first to report it names its rank, the line, and ends the others.
    @Test func errorsEndTheJobWithAClearMessage() throws {
        let workspace = try RecipeRunnerTests.Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let recipe = try workspace.recipe(privacy: Self.seeded)
        let log = workspace.directory.appendingPathComponent("diverged.log")
        let diverging = try Self.mpiProcess(ranks: 2, ["recipe", recipe.path, "--set", "training.optimizer.name=sgd",
                                                       "--set", "training.optimizer.learning_rate=1e30"], log: log)
        diverging.waitUntilExit()
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(diverging.terminationStatus != 0, "\(output)")
        #expect(output.components(separatedBy: "training diverged at step").count == 2, "reported once: \(output)")
        #expect(output.contains("Error (rank 0 of 2)"), "\(output)")
        let ledger = workspace.directory.appendingPathComponent("run/privacy-ledger.json")
        #expect(try PrivacyLedger(json: String(contentsOf: ledger, encoding: .utf8)).worldSize == 2)

        try Data("{\"instruction\": \"x\"\n".utf8).write(to: URL(fileURLWithPath: workspace.train))
        let badLog = workspace.directory.appendingPathComponent("bad.log")
        let bad = try Self.mpiProcess(ranks: 2, ["recipe", recipe.path, "--set", "output.directory=bad"], log: badLog)
        bad.waitUntilExit()
        let badOutput = (try? String(contentsOf: badLog, encoding: .utf8)) ?? ""
        #expect(bad.terminationStatus != 0, "\(badOutput)")
        #expect(badOutput.contains("train.jsonl:1"), "names the file and line: \(badOutput)")
        #expect(badOutput.contains(" of 2): "), "names the rank: \(badOutput)")
    }
}
