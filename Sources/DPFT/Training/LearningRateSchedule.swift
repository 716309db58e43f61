import Foundation

/// A bad schedule setting (from a recipe); names the key and the value.
public enum LearningRateScheduleError: Error, CustomStringConvertible, Equatable {
    case invalidValue(key: String, value: String, reason: String)

    public var description: String {
        switch self {
        case .invalidValue(let key, let value, let reason):
            return "learning-rate schedule `\(key)` = \(value) is invalid: \(reason)."
        }
    }
}

/// The learning rate for each update: linear warmup from 0 to the peak over `warmupSteps`
/// updates, then constant, linear decay or cosine decay to `minimumLearningRate` at
/// `totalSteps`.
///
/// `step` is the 0-based index of the update (the first update is step 0, so with warmup the
/// first update has learning rate 0), as Hugging Face's schedulers count it (their `LambdaLR`
/// value before the scheduler's `step`-th call). With `minimumLearningRate` = 0 the values are
/// those of `get_constant_schedule_with_warmup`, `get_linear_schedule_with_warmup` and
/// `get_cosine_schedule_with_warmup`; a positive minimum gives
/// `get_cosine_with_min_lr_schedule_with_warmup` (min_lr_rate = minimum/peak) for cosine and
/// `min + (peak − min)·(T − s)/(T − w)` for linear.
///
/// Past `totalSteps` the decayed schedules stay at the minimum (Hugging Face's cosine would
/// rise again).
public struct LearningRateSchedule: Sendable, Equatable {
    /// The decay after warmup.
    public enum Kind: String, Sendable, Equatable, CaseIterable, Codable {
        case constant, linear, cosine
    }

    public var kind: Kind
    /// The learning rate reached at the end of warmup.
    public var peakLearningRate: Double
    /// The learning rate the decay ends at (ignored by `constant`).
    public var minimumLearningRate: Double
    /// Updates over which the rate rises linearly from 0 to the peak.
    public var warmupSteps: Int

    /// Throws `LearningRateScheduleError` for a negative or non-finite rate, a minimum above
    /// the peak, or negative warmup.
    public init(kind: Kind = .constant, peakLearningRate: Double, minimumLearningRate: Double = 0,
                warmupSteps: Int = 0) throws {
        guard peakLearningRate.isFinite, peakLearningRate >= 0 else {
            throw LearningRateScheduleError.invalidValue(key: "lr", value: "\(peakLearningRate)",
                                                         reason: "it must be a finite number ≥ 0")
        }
        guard minimumLearningRate.isFinite, minimumLearningRate >= 0, minimumLearningRate <= peakLearningRate else {
            throw LearningRateScheduleError.invalidValue(key: "min_lr", value: "\(minimumLearningRate)",
                                                         reason: "it must be between 0 and the peak learning rate \(peakLearningRate)")
        }
        guard warmupSteps >= 0 else {
            throw LearningRateScheduleError.invalidValue(key: "warmup_steps", value: "\(warmupSteps)",
                                                         reason: "it must be 0 or more")
        }
        self.kind = kind
        self.peakLearningRate = peakLearningRate
        self.minimumLearningRate = minimumLearningRate
        self.warmupSteps = warmupSteps
    }

    /// The learning rate of update `step` (0-based) in a run of `totalSteps` updates.
    public func learningRate(step: Int, totalSteps: Int) -> Double {
        let peak = peakLearningRate, minimum = minimumLearningRate
        if step < warmupSteps {
            return peak * (Double(step) / Double(max(1, warmupSteps)))
        }
        // Written as Hugging Face writes them, so that with minimum 0 the values agree to the bit.
        let decaySteps = Double(max(1, totalSteps - warmupSteps))
        switch kind {
        case .constant:
            return peak
        case .linear:
            let remaining = max(0, Double(totalSteps - step) / decaySteps)  // 1 → 0
            return minimum + (peak - minimum) * remaining
        case .cosine:
            let progress = min(1, Double(step - warmupSteps) / decaySteps)  // 0 → 1
            return minimum + (peak - minimum) * max(0, 0.5 * (1 + cos(Double.pi * progress)))
        }
    }
}
