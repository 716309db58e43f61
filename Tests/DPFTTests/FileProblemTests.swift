import Foundation
import Testing
@testable import DPFT

/// Foundation's file errors read "The operation could not be completed. (NSCocoaErrorDomain
/// error 512.)"; dpft's messages name the path and say why in words (issue 12, item 14).
@Suite struct FileProblemTests {
    /// A directory with a regular file `somefile` in it.
    struct Place {
        let directory: URL
        var file: URL { directory.appendingPathComponent("somefile") }

        init() throws {
            directory = try makeTemporaryDirectory()
            try Data("not a directory\n".utf8).write(to: file)
        }
    }

    /// What Foundation itself throws on Linux, put in words: creating a directory under a
    /// regular file (error 512), reading a directory and a missing file.
    @Test func foundationErrorsBecomeWords() throws {
        let place = try Place()
        defer { try? FileManager.default.removeItem(at: place.directory) }
        let blocked = "not a directory: \(place.file.path) is a regular file"
        let run = place.file.appendingPathComponent("run")
        let creating = #expect(throws: (any Error).self) {
            try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        }
        #expect(FileProblem.reason(for: try #require(creating), path: run.path) == blocked)
        let explained = FileProblem.explained(try #require(creating)) as? FileAccessError
        #expect(explained?.reason == blocked && explained?.description.contains("NSCocoaErrorDomain") == false)
        let existing = #expect(throws: (any Error).self) {
            try FileManager.default.createDirectory(at: place.file, withIntermediateDirectories: true)
        }
        #expect(FileProblem.reason(for: try #require(existing), path: place.file.path) == blocked)

        let missing = place.directory.appendingPathComponent("missing.json")
        let reading = #expect(throws: (any Error).self) { try Data(contentsOf: missing) }
        #expect(FileProblem.reason(for: try #require(reading), path: missing.path) == "no such file or directory")
        #expect(FileProblem.readProblem(at: place.directory.path) == "it is a directory, not a file")
        #expect(FileProblem.readProblem(at: place.file.path) == nil)
        #expect(FileProblem.directoryProblem(at: place.file.path) == "not a directory: \(place.file.path) is a regular file")
        #expect(FileProblem.directoryProblem(at: place.directory.path) == nil)
    }

    /// `dpft init --config DIR` and `--config missing.json` used to say "not a JSON object (the
    /// file does not exist or cannot be read)"; a recipe that is a directory printed Foundation's text.
    @Test func anUnreadableConfigOrRecipeNamesThePathAndTheReason() throws {
        let place = try Place()
        defer { try? FileManager.default.removeItem(at: place.directory) }
        let directory = place.directory.path
        #expect(throws: ConfigError.unreadable(source: directory, reason: "it is a directory, not a file")) {
            try ModelConfig(contentsOf: place.directory)
        }
        let missing = place.directory.appendingPathComponent("config.json")
        #expect(throws: ConfigError.unreadable(source: missing.path, reason: "no such file")) {
            try ModelConfig(contentsOf: missing)
        }
        let under = place.file.appendingPathComponent("config.json")
        #expect(throws: ConfigError.unreadable(source: under.path, reason: "not a directory: \(place.file.path) is a regular file")) {
            try ModelConfig(contentsOf: under)
        }
        #expect(throws: RecipeError.unreadable(file: directory, reason: "it is a directory, not a file")) {
            try Recipe.load(from: place.directory)
        }
    }

    /// `dpft init --output somefile/x.h5` said "directory somefile does not exist"; `dpft
    /// export --output somefile/exp` said "NSCocoaErrorDomain error 512"; `--output somefile`
    /// said "A file with the same name already exists".
    @Test func writingUnderARegularFileSaysItIsNotADirectory() throws {
        let place = try Place()
        defer { try? FileManager.default.removeItem(at: place.directory) }
        let blocked = "not a directory: \(place.file.path) is a regular file"
        let checkpoint = Checkpoint.initialized(config: try CheckpointTests.config(CheckpointTests.tinyGPT2), seed: 1)
        let model = place.file.appendingPathComponent("x.h5")
        #expect(throws: CheckpointError.writeFailed(path: model.path, reason: blocked)) { try checkpoint.write(to: model) }
        let export = place.file.appendingPathComponent("exp")
        #expect(throws: CheckpointError.writeFailed(path: export.path, reason: blocked)) {
            try HuggingFace.export(checkpoint, to: export, format: .safetensors)
        }
        #expect(throws: CheckpointError.writeFailed(path: place.file.path, reason: blocked)) {
            try HuggingFace.export(checkpoint, to: place.file, format: .hdf5)
        }
        let nowhere = place.directory.appendingPathComponent("no/such/x.h5")
        #expect(throws: CheckpointError.writeFailed(path: nowhere.path,
                                                    reason: "the directory \(nowhere.deletingLastPathComponent().path) does not exist")) {
            try checkpoint.write(to: nowhere)
        }
    }

    /// A recipe whose output.directory lies under a regular file said "NSCocoaErrorDomain error 512".
    @Test func aRunDirectoryUnderARegularFileSaysSo() throws {
        let workspace = try RecipeRunnerTests.Workspace()
        defer { try? FileManager.default.removeItem(at: workspace.directory) }
        let file = workspace.directory.appendingPathComponent("somefile")
        try Data("x".utf8).write(to: file)
        let recipe = try workspace.recipe(output: "somefile/run")
        #expect(throws: RunError.cannotCreateDirectory(path: file.appendingPathComponent("run").path,
                                                       reason: "not a directory: \(file.path) is a regular file")) {
            try workspace.run(recipe)
        }
    }
}
