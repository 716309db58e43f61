import ArgumentParser
import DPFT
import Foundation

/// The command-line spelling of `Accountant` (kept here so that the library does not depend on
/// ArgumentParser).
enum AccountantArgument: String, CaseIterable, ExpressibleByArgument {
    case rdp, prv

    var accountant: Accountant {
        switch self {
        case .rdp: return .rdp
        case .prv: return .prv
        }
    }
}

/// How the run samples its batches: either q and T directly, or batch size, data set size and
/// epochs (q = B/N, T = ⌈E·N/B⌉).
struct SamplingOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Sample rate q: the probability that an example is in a step's batch (expected batch size / data set size).")
    var sampleRate: Double?

    @Option(parsing: .unconditional, help: "Number of training steps T.")
    var steps: Int?

    @Option(parsing: .unconditional, help: "Expected batch size B (with --dataset-size and --epochs, instead of --sample-rate/--steps).")
    var batchSize: Int?

    @Option(parsing: .unconditional, help: "Number of examples N in the private data set.")
    var datasetSize: Int?

    @Option(parsing: .unconditional, help: "Number of passes E over the data set (may be fractional); T = ⌈E·N/B⌉.")
    var epochs: Double?

    /// Exactly one spelling, complete. (Values are checked by the library, which names them.)
    func validate() throws {
        let direct = sampleRate != nil || steps != nil
        let derived = batchSize != nil || datasetSize != nil || epochs != nil
        if direct && derived {
            throw ValidationError("give either --sample-rate and --steps, or --batch-size, --dataset-size and --epochs, not both.")
        }
        if derived && (batchSize == nil || datasetSize == nil || epochs == nil) {
            throw ValidationError("--batch-size, --dataset-size and --epochs must be given together.")
        }
        if !derived && (sampleRate == nil || steps == nil) {
            throw ValidationError("give --sample-rate and --steps (or --batch-size, --dataset-size and --epochs).")
        }
    }

    /// (q, T) from whichever spelling was given.
    func resolve() throws -> (sampleRate: Double, steps: Int) {
        if let batchSize, let datasetSize, let epochs {
            let segment = try MechanismSegment(noiseMultiplier: 1, batchSize: batchSize,
                                               datasetSize: datasetSize, epochs: epochs)
            return (segment.sampleRate, segment.steps)
        }
        guard let sampleRate, let steps else {
            throw ValidationError("give --sample-rate and --steps (or --batch-size, --dataset-size and --epochs).")
        }
        return (sampleRate, steps)
    }
}

/// A number for JSON: an infinite ε (no guarantee at this δ) is written as null.
private func jsonNumber(_ value: Double) -> Any { value.isFinite ? value : NSNull() }

/// Prints a JSON object with sorted keys on one line.
private func printJSON(_ object: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

/// Accountant-specific keys: the best RDP order, or the PRV bounds.
private func details(of spent: PrivacySpent) -> [String: Any] {
    var object: [String: Any] = ["warnings": spent.warnings]
    if spent.accountant == .rdp {
        object["rdp_order"] = spent.rdpOrder.map { $0 as Any } ?? NSNull()
    }
    if let lower = spent.epsilonLower { object["epsilon_lower"] = jsonNumber(lower) }
    if let estimate = spent.epsilonEstimate { object["epsilon_estimate"] = jsonNumber(estimate) }
    if spent.accountant == .prv { object["epsilon_upper"] = jsonNumber(spent.epsilon) }
    return object
}

/// A human-readable line about how ε was obtained.
private func explanation(of spent: PrivacySpent) -> String {
    switch spent.accountant {
    case .rdp:
        return spent.rdpOrder.map { "RDP, best order α = \(format($0))" } ?? "RDP"
    case .prv:
        let lower = spent.epsilonLower.map { format($0, rounding: .down) } ?? "?"
        let estimate = spent.epsilonEstimate.map { format($0) } ?? "?"
        return "PRV; the true ε is in [\(lower), \(format(spent.epsilon, rounding: .up))], estimate \(estimate)"
    }
}

/// `value` to 6 significant digits, rounded in the direction that keeps a printed guarantee
/// valid: ε and σ up, lower bounds down.
private func format(_ value: Double, rounding: FloatingPointRoundingRule = .toNearestOrEven) -> String {
    if value == .infinity { return "∞" }
    guard value.isFinite, value != 0 else { return String(format: "%.6g", value) }
    let unit = pow(10, (log10(abs(value))).rounded(.down) - 5)
    return String(format: "%.6g", (value / unit).rounded(rounding) * unit)
}

/// `dpft privacy epsilon|noise` — (ε, δ) of DP-SGD runs and noise calibration (DESIGN.md §5, §7).
struct PrivacyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "privacy",
        abstract: "Privacy accounting for DP-SGD: ε of a run, or the noise multiplier for a target ε.",
        discussion: """
            Both accountants bound the Poisson-subsampled Gaussian mechanism under add-or-remove \
            neighbouring data sets. rdp: Rényi DP (Mironov et al. 2019) with the Balle et al. 2020 \
            conversion, as Opacus and TF Privacy; fast and loose. prv: numerical composition of \
            privacy-loss distributions (Gopi et al. 2021; connect-the-dots, Doroshenko et al. 2022); \
            tight to ~1e-3, the reported ε is a certified upper bound.
            """,
        subcommands: [Epsilon.self, Noise.self])

    struct Epsilon: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "ε spent by T steps of DP-SGD with noise multiplier σ and sample rate q.",
            discussion: """
                JSON keys: epsilon (the guarantee), delta, accountant, noise_multiplier, \
                sample_rate, steps, warnings; rdp_order for rdp; epsilon_lower, epsilon_estimate, \
                epsilon_upper (= epsilon) for prv.
                """)

        @Option(parsing: .unconditional, help: "Noise multiplier σ: noise standard deviation divided by the clipping norm.")
        var noiseMultiplier: Double

        @OptionGroup var sampling: SamplingOptions

        @Option(parsing: .unconditional, help: "δ of the (ε, δ) guarantee, in (0, 1); usually below 1/(data set size).")
        var delta: Double

        @Option(help: "Accountant: rdp or prv.")
        var accountant: AccountantArgument = .rdp

        @Option(parsing: .unconditional, help: "PRV only: spacing of the privacy-loss grid (smaller is tighter and slower).")
        var discretization: Double = 1e-4

        @Flag(help: "Print JSON instead of text.")
        var json = false

        func run() throws {
            let (sampleRate, steps) = try sampling.resolve()
            let segment = MechanismSegment(noiseMultiplier: noiseMultiplier, sampleRate: sampleRate, steps: steps)
            let spent: PrivacySpent
            switch accountant {
            case .rdp: spent = try RDPAccountant().epsilon(history: [segment], delta: delta)
            case .prv: spent = try PRVAccountant(discretization: discretization).epsilon(history: [segment], delta: delta)
            }
            if json {
                var object = details(of: spent)
                object["epsilon"] = jsonNumber(spent.epsilon)
                object["delta"] = delta
                object["accountant"] = spent.accountant.rawValue
                object["noise_multiplier"] = noiseMultiplier
                object["sample_rate"] = sampleRate
                object["steps"] = steps
                try printJSON(object)
                return
            }
            print("ε = \(format(spent.epsilon, rounding: .up)) at δ = \(format(delta)) (\(explanation(of: spent)))")
            print("  σ = \(format(noiseMultiplier)), q = \(format(sampleRate)), \(steps) steps")
            for warning in spent.warnings { print("  warning: \(warning)") }
        }
    }

    struct Noise: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The noise multiplier σ for which T steps at sample rate q spend at most ε.",
            discussion: """
                σ is found by bracketing and regula falsi until the spent ε is within --tolerance \
                below the target; the ε it spends never exceeds the target. JSON keys: \
                noise_multiplier, epsilon (spent), target_epsilon, delta, accountant, sample_rate, \
                steps, warnings (and rdp_order or the prv bounds of the spent ε).
                """)

        @Option(parsing: .unconditional, help: "Target ε of the (ε, δ) guarantee.")
        var epsilon: Double

        @Option(parsing: .unconditional, help: "δ of the (ε, δ) guarantee, in (0, 1); usually below 1/(data set size).")
        var delta: Double

        @OptionGroup var sampling: SamplingOptions

        @Option(help: "Accountant: rdp or prv.")
        var accountant: AccountantArgument = .rdp

        @Option(parsing: .unconditional, help: "How far below the target the spent ε may be.")
        var tolerance: Double = 0.01

        @Flag(help: "Print JSON instead of text.")
        var json = false

        func run() throws {
            let (sampleRate, steps) = try sampling.resolve()
            let calibration = try accountant.accountant.noiseMultiplier(
                targetEpsilon: epsilon, delta: delta, sampleRate: sampleRate, steps: steps, tolerance: tolerance)
            let spent = calibration.spent
            if json {
                var object = details(of: spent)
                object["noise_multiplier"] = calibration.noiseMultiplier
                object["epsilon"] = jsonNumber(spent.epsilon)
                object["target_epsilon"] = epsilon
                object["delta"] = delta
                object["accountant"] = spent.accountant.rawValue
                object["sample_rate"] = sampleRate
                object["steps"] = steps
                try printJSON(object)
                return
            }
            print("σ = \(format(calibration.noiseMultiplier, rounding: .up)) spends ε = \(format(spent.epsilon, rounding: .up)) ≤ \(format(epsilon)) at δ = \(format(delta)) (\(explanation(of: spent)))")
            print("  q = \(format(sampleRate)), \(steps) steps")
            for warning in spent.warnings { print("  warning: \(warning)") }
        }
    }
}
