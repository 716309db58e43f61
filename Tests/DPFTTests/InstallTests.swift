import Foundation
import Testing
@testable import DPFT

/// `make install`'s copying logic (tools/install.sh) with the dpft this test run built, into a
/// temporary prefix; then the installed dpft runs built-in and copied recipes from empty
/// directories outside the repository, as a user would.
@Suite(.serialized) struct InstallTests {
    /// Small and fast: two steps of batches of about 4, a few eval examples, no export, and a
    /// given σ with the RDP accountant (calibrating σ by PRV takes half a minute in a debug build).
    static let quick = ["--set", "training.epochs=null", "--set", "training.steps=2", "--set", "training.batch_size=4",
                        "--set", "training.physical_batch_size=4", "--set", "training.eval_examples=4",
                        "--set", "training.generate_examples=2", "--set", "output.export=null",
                        "--set", "privacy.target_epsilon=null", "--set", "privacy.noise_multiplier=1",
                        "--set", "privacy.accountant=rdp"]

    static func install(into prefix: URL) throws {
        let script = ExamplePlugin.repository.appendingPathComponent("tools/install.sh")
        let result = ExamplePlugin.run([script.path, prefix.path, try ExamplePlugin.dpft().path])
        #expect(result.status == 0, "\(result.output)")
    }

    /// The final checkpoint of a run in `directory`, with its ledger.
    static func ledger(ofRunIn directory: URL) throws -> String? {
        try Checkpoint.read(from: directory.appendingPathComponent("final.h5")).privacyLedger
    }

    @Test func anInstalledDpftRunsBuiltInAndCopiedRecipesFromAnywhere() throws {
        let scratch = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let prefix = scratch.appendingPathComponent("prefix")
        try Self.install(into: prefix)
        let dpft = prefix.appendingPathComponent("bin/dpft")
        let share = prefix.appendingPathComponent("share/dpft").path
        for file in ["recipes/lora-layerwise.json", "recipes/data/tickets-train.jsonl", "recipes/rules/attention-vs-rest.json",
                     "recipes/models/llama-tiny.json", "checkpoints/base.h5", "checkpoints/moe-base.h5",
                     "checkpoints/tokenizer.model"] {
            #expect(FileManager.default.fileExists(atPath: share + "/" + file), "\(file)")
        }
        for file in ["share/bash-completion/completions/dpft", "share/zsh/site-functions/_dpft",
                     "share/fish/vendor_completions.d/dpft.fish"] {
            let text = try String(contentsOf: prefix.appendingPathComponent(file), encoding: .utf8)
            #expect(text.contains("recipes"), "\(file)")
        }

        // The first usage line of the README, from an empty directory.
        let work = scratch.appendingPathComponent("work")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let run = ExamplePlugin.run(["recipe", "lora-layerwise.json"] + Self.quick, executable: dpft, directory: work)
        #expect(run.status == 0, "\(run.output)")
        #expect(run.output.hasPrefix("built-in recipe lora-layerwise (\(share)/recipes/lora-layerwise.json)\n"))
        let ledger = try #require(try Self.ledger(ofRunIn: work.appendingPathComponent("runs/lora-layerwise")))
        #expect(ledger.contains("\"epsilon\""))

        // `recipes copy` writes a recipe that runs from another directory.
        let copy = ExamplePlugin.run(["recipes", "copy", "lora-layerwise", "mine/tickets.json"], executable: dpft, directory: work)
        #expect(copy.status == 0, "\(copy.output)")
        let again = ExamplePlugin.run(["recipes", "copy", "lora-layerwise", "mine/tickets.json"], executable: dpft, directory: work)
        #expect(again.status != 0 && again.output.contains("mine/tickets.json exists; give another DEST, or --force"))
        let other = scratch.appendingPathComponent("other")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        let copied = ExamplePlugin.run(["recipe", "../work/mine/tickets.json"] + Self.quick, executable: dpft, directory: other)
        #expect(copied.status == 0, "\(copied.output)")
        #expect(copied.output.hasPrefix("recipe file ../work/mine/tickets.json\n"))
        #expect(try Self.ledger(ofRunIn: other.appendingPathComponent("runs/tickets")) != nil)

        let list = ExamplePlugin.run(["recipes", "list"], executable: dpft, directory: other)
        #expect(list.status == 0 && list.output.contains("lora-layerwise") && list.output.contains("llama (base.h5)"),
                "\(list.output)")

        let script = ExamplePlugin.repository.appendingPathComponent("tools/install.sh")
        #expect(ExamplePlugin.run([script.path, "--uninstall", prefix.path]).status == 0)
        let left = try FileManager.default.subpathsOfDirectory(atPath: prefix.path)
            .filter { !FileManager.default.isDirectory(atPath: prefix.appendingPathComponent($0).path) }
        #expect(left.isEmpty, "left after uninstall: \(left)")
    }
}

extension FileManager {
    func isDirectory(atPath path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
    }
}
