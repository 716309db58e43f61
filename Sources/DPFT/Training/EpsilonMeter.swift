import Foundation

/// The ε a run shows after each step in its progress line and metrics.jsonl: the accountant's
/// ε for exactly the steps taken so far, never an earlier step's value.
///
/// RDP answers in about a millisecond and is asked after every step. PRV takes about 0.1 s, which
/// could double a small model's step time, so it is asked only while the time spent in the
/// accountant stays within `share` of the run's time, and always when `required` (checkpoints,
/// the last step). Steps in between carry no ε in metrics.jsonl, and the progress line names
/// the step its ε belongs to.
struct EpsilonMeter {
    /// The latest ε computed and the step count it belongs to.
    private(set) var latest: (step: Int, epsilon: Double)?
    private let share: Double
    private var accountantSeconds = 0.0
    private let start = Date()

    init(share: Double = 0.05) {
        self.share = share
    }

    /// ε after `step` steps of `budget`, or nil when it is not asked for this step (see above)
    /// or the run is not private.
    mutating func epsilon(after step: Int, budget: PrivacyBudget?, required: Bool) throws -> Double? {
        guard let budget else { return nil }
        let elapsed = Date().timeIntervalSince(start)
        guard required || latest == nil || budget.accountant == .rdp || accountantSeconds <= share * elapsed else {
            return nil
        }
        let asked = Date()
        let epsilon = try budget.spent()?.epsilon
        accountantSeconds += Date().timeIntervalSince(asked)
        if let epsilon { record(epsilon, step: step) }
        return epsilon
    }

    /// Records an ε computed elsewhere (a checkpoint's ledger) for `step`.
    mutating func record(_ epsilon: Double, step: Int) {
        latest = (step, epsilon)
    }
}
