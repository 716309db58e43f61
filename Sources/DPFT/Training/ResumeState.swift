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
    /// SHA-256 of the training file's bytes, so that a resume on other data is refused. Nil in
    /// checkpoints written before it was recorded. Derived from the private data: it stays in
    /// the run directory and is never copied into a ledger or an export (README, "What a run
    /// releases").
    var trainDataSHA256: String?

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
    /// SHA-256 of the training file now (equal to the stored one, when one was stored).
    var trainDataSHA256: String

    /// The newest checkpoint in `directory`, which must have been written by the recipe with
    /// hash `recipeHash` on the training file `trainData` as it is now (its bytes' SHA-256).
    static func latest(in directory: URL, recipeHash: String, trainData: URL) throws -> ResumeState {
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
        let trainDataSHA256 = try fileSHA256(trainData)
        if let stored = state.trainDataSHA256, stored != trainDataSHA256 {
            throw RunError.trainDataChanged(directory: directory.path, file: trainData.path, was: stored, now: trainDataSHA256)
        }
        return ResumeState(state: state, checkpoint: checkpoint, url: latest.url, trainDataSHA256: trainDataSHA256)
    }
}
