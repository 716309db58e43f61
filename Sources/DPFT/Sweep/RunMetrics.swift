import Foundation

/// What a run directory's `metrics.jsonl` says, as series against the step: read for the
/// results of `dpft sweep` and the charts of `dpft report`.
///
/// A step's line has `loss`, `learning_rate`, `seconds`, and when private `epsilon` (at
/// checkpoints and where the accountant was asked), `clip_rate` and `median_norm` by group and
/// `peak_book_bytes`; it may carry an `eval` object. A line without `loss` is an evaluation
/// alone (step 0: the base model; the last step: the final evaluation). Lines that are not a
/// JSON object with an integer `step` (a line cut off by a kill) are skipped.
public struct RunMetrics: Sendable {
    /// One value at one step.
    public struct Point: Sendable, Equatable {
        public var step: Int
        public var value: Double
    }

    /// One evaluation: loss, perplexity and, when generated, exact-match accuracy.
    public struct Evaluation: Sendable, Equatable {
        public var step: Int
        public var loss: Double
        public var perplexity: Double
        public var accuracy: Double?
    }

    public var loss: [Point] = []
    public var learningRate: [Point] = []
    public var epsilon: [Point] = []
    /// Seconds each step took (the step alone: no evaluation, accounting or checkpoint).
    public var seconds: [Point] = []
    public var evaluations: [Evaluation] = []
    /// Group names in the order first seen (the grouping's order, as lines sort keys: by name).
    public var groupNames: [String] = []
    public var clipRate: [String: [Point]] = [:]
    public var medianNorm: [String: [Point]] = [:]
    /// The largest `peak_book_bytes` logged; nil for a non-private run.
    public var peakBookBytes: Int?

    /// Reads `metrics.jsonl` in `directory`.
    public init(directory: URL) throws {
        let url = directory.appendingPathComponent("metrics.jsonl")
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw SweepError.unreadable(file: url.path, reason: FileProblem.reason(for: error, path: url.path))
        }
        for line in text.split(separator: "\n") {
            guard case .object(let object)? = try? JSONParser.parse(line.utf8, source: url.path),
                  let step = object["step"]?.number?.wholeNumber else { continue }
            read(object, step: step)
        }
    }

    private mutating func read(_ object: JSONObject, step: Int) {
        if let evaluation = object["eval"], case .object(let members) = evaluation,
           let loss = members["loss"]?.number?.double, let perplexity = members["perplexity"]?.number?.double {
            evaluations.append(Evaluation(step: step, loss: loss, perplexity: perplexity,
                                          accuracy: members["accuracy"]?.number?.double))
        }
        guard let lossValue = object["loss"] else { return }
        if let value = lossValue.number?.double { loss.append(Point(step: step, value: value)) }
        if let value = object["learning_rate"]?.number?.double { learningRate.append(Point(step: step, value: value)) }
        if let value = object["epsilon"]?.number?.double { epsilon.append(Point(step: step, value: value)) }
        if let value = object["seconds"]?.number?.double { seconds.append(Point(step: step, value: value)) }
        if let value = object["peak_book_bytes"]?.number?.wholeNumber { peakBookBytes = max(peakBookBytes ?? 0, value) }
        Self.readGroups(object["clip_rate"], step: step, names: &groupNames, into: &clipRate)
        Self.readGroups(object["median_norm"], step: step, names: &groupNames, into: &medianNorm)
        lastStep = step
    }

    private static func readGroups(_ value: JSONValue?, step: Int, names: inout [String],
                                   into series: inout [String: [Point]]) {
        guard case .object(let members)? = value else { return }
        for (group, member) in members {
            guard let number = member.number?.double else { continue }
            if !names.contains(group) { names.append(group) }
            series[group, default: []].append(Point(step: step, value: number))
        }
    }

    /// The last step logged (0 before the first).
    public private(set) var lastStep = 0

    /// The evaluation after the last step (the final one), if the run made one.
    public var finalEvaluation: Evaluation? {
        evaluations.last { $0.step == lastStep && lastStep > 0 }
    }

    /// The median seconds of a step (robust to the first step's warm-up and to a busy
    /// machine's outliers); nil when no step was timed.
    public var medianSecondsPerStep: Double? {
        guard !seconds.isEmpty else { return nil }
        let sorted = seconds.map(\.value).sorted(), middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}

extension JSONValue {
    /// The number, when this is one.
    var number: JSONNumber? {
        if case .number(let number) = self { return number }
        return nil
    }
}
