import Foundation

/// The training state saved in checkpoints' `/state` for `--resume` (JSON, sorted keys).
struct RunState: Codable {
    var step: Int
    var totalSteps: Int
    var recipeHash: String
    var noiseMultiplier: Double?
    var history: [MechanismSegment]
    var datasetSize: Int
    var optimizerSteps: Int

    /// The JSON stored in a checkpoint's `/state`.
    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// Where a resumed run continues: the newest `step-N.h5` of the run directory and its state.
struct ResumeState {
    var state: RunState
    var checkpoint: Checkpoint
    var url: URL

    /// The newest checkpoint in `directory`, which must have been written by the recipe with
    /// hash `recipeHash`.
    static func latest(in directory: URL, recipeHash: String) throws -> ResumeState {
        guard let latest = RunDirectory.checkpoints(in: directory).last else {
            throw RunError.nothingToResume(directory: directory.path)
        }
        let checkpoint = try Checkpoint.read(from: latest.url)
        guard let text = checkpoint.trainingState,
              let state = try? JSONDecoder().decode(RunState.self, from: Data(text.utf8)) else {
            throw CheckpointError.missingAttribute(path: latest.url.path, name: "/state json")
        }
        guard state.recipeHash == recipeHash else {
            throw RunError.recipeChanged(directory: directory.path, was: state.recipeHash, now: recipeHash)
        }
        return ResumeState(state: state, checkpoint: checkpoint, url: latest.url)
    }
}
