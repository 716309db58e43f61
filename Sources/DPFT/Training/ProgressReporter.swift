import Foundation

/// Training progress: a one-line bar redrawn in place on a terminal (step, loss, ε, tokens/s,
/// ETA), plain lines every few seconds when the output is a file or pipe.
final class ProgressReporter {
    private let interactive: Bool
    private let log: (String) -> Void
    private var total = 0
    private var startStep = 0
    private var startTime = Date()
    private var lastLine = Date.distantPast
    private var tokens = 0
    private var drawn = false

    init(interactive: Bool, log: @escaping (String) -> Void) {
        self.interactive = interactive
        self.log = log
    }

    func start(total: Int, from step: Int) {
        self.total = total
        startStep = step
        startTime = Date()
        tokens = 0
    }

    /// A whole line, clearing the bar first.
    func note(_ text: String) {
        if drawn {
            FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8))
            drawn = false
        }
        log(text)
    }

    /// `epsilon` is the latest ε computed and the step it belongs to (named when not `step`).
    func update(step: Int, loss: Double, epsilon: (step: Int, epsilon: Double)?, tokens batchTokens: Int) {
        tokens += batchTokens
        let elapsed = Date().timeIntervalSince(startTime)
        let done = step - startStep
        let rate = elapsed > 0 ? Double(tokens) / elapsed : 0
        let remaining = done > 0 ? elapsed / Double(done) * Double(total - step) : 0
        var text = "step \(step)/\(total)  loss \(loss.isFinite ? String(format: "%.4f", loss) : "—")"
        if let epsilon {
            text += String(format: "  ε %.3f", epsilon.epsilon) + (epsilon.step == step ? "" : " (step \(epsilon.step))")
        }
        text += String(format: "  %.0f tok/s  ETA %@", rate, Self.duration(remaining))
        if interactive {
            let width = 20, filled = total > 0 ? width * step / total : width
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            FileHandle.standardOutput.write(Data("\r\u{1B}[K[\(bar)] \(text)".utf8))
            drawn = true
        } else if Date().timeIntervalSince(lastLine) >= 5 || step == total {
            log(text)
            lastLine = Date()
        }
    }

    func finish() {
        if drawn {
            FileHandle.standardOutput.write(Data("\n".utf8))
            drawn = false
        }
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s % 3600 / 60) : String(format: "%dm%02ds", s / 60, s % 60)
    }
}
