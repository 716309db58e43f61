import Foundation

/// What can go wrong with a sweep file, a sweep directory or a report's input.
public enum SweepError: Error, CustomStringConvertible, Equatable {
    case unreadable(file: String, reason: String)
    /// The sweep file is not valid (`problem` names the key path).
    case invalid(file: String, problem: String)
    /// Two runs of the sweep would share one directory.
    case sameRunName(file: String, name: String, first: String, second: String)
    /// Setting `label` makes a recipe that does not load (`reason`, from the recipe checks).
    case settingFails(file: String, label: String, reason: String)
    /// The finished run in `directory` was trained with another recipe than the sweep file makes now.
    case finishedRunDiffers(file: String, directory: String)
    /// A run of an earlier sweep still holds `directory`.
    case runStillRunning(directory: String, holder: String)
    /// Runs that did not finish; the sweep went on with the others.
    case runsFailed(names: [String], sweepDirectory: String)
    /// `path` is neither a run directory (metrics.jsonl) nor a sweep directory (runs/).
    case notARunOrSweep(path: String)
    /// A finished run's marker file does not hold a results row.
    case badMarker(file: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let file, let reason):
            return "\(file): cannot read the sweep file: \(reason)."
        case .invalid(let file, let problem):
            return "\(file): \(problem)."
        case .sameRunName(let file, let name, let first, let second):
            return "\(file): settings \"\(first)\" and \"\(second)\" would both run in runs/\(name); make their values differ in letters or digits."
        case .settingFails(let file, let label, let reason):
            return "\(file): setting \(label): \(reason)"
        case .finishedRunDiffers(let file, let directory):
            return "\(directory) finished with another recipe than \(file) makes now (the sweep file or its recipe changed since); give the sweep another --output directory, or delete that run to run it again."
        case .runStillRunning(let directory, let holder):
            return "\(directory) is still held by a run of an earlier sweep (\(holder)); wait for it to end (or stop it), then run the sweep again."
        case .runsFailed(let names, let sweepDirectory):
            return "\(names.count) run(s) did not finish: \(names.joined(separator: ", ")) (their output is in \(sweepDirectory)/runs/NAME/dpft.log). Run the same `dpft sweep` again: finished runs are skipped, the others resume from their last checkpoint."
        case .notARunOrSweep(let path):
            return "\(path) is neither a run directory (with metrics.jsonl) nor a sweep directory (with runs/); give the output.directory of a `dpft recipe` run or the directory of a `dpft sweep`."
        case .badMarker(let file, let reason):
            return "\(file): not a finished-run record (\(reason)); delete it to run that run again."
        }
    }
}
