import Foundation

// n = number of trainable floats (the gradient store's count), S = state slots per float
// (SGD: 0, or 1 with momentum; Adam/AdamW: 2).

/// Errors a user can cause when configuring an optimizer or restoring its state.
public enum OptimizerError: Error, CustomStringConvertible, Equatable {
    /// A hyperparameter outside its valid range.
    case invalidHyperparameter(name: String, value: String, reason: String)
    /// A state tensor the optimizer needs is not in the restored state.
    case missingState(key: String)
    /// A restored state tensor has the wrong shape.
    case stateShapeMismatch(key: String, expected: [Int], found: [Int])
    /// The restored state holds a tensor this optimizer does not keep (another kind, or
    /// another model's tensors).
    case unexpectedState(key: String, optimizer: String)
    /// A restored step count below zero.
    case invalidStepCount(Int)

    public var description: String {
        switch self {
        case .invalidHyperparameter(let name, let value, let reason):
            return "optimizer hyperparameter `\(name)` = \(value) is invalid: \(reason)."
        case .missingState(let key):
            return "optimizer state `\(key)` is missing: the checkpoint was saved by another optimizer "
                + "or for other trainable tensors; resume with the same optimizer and trainable set, "
                + "or start without --resume."
        case .stateShapeMismatch(let key, let expected, let found):
            return "optimizer state `\(key)` has shape \(found) but the trainable tensor has \(expected): "
                + "the checkpoint was saved for another model."
        case .unexpectedState(let key, let optimizer):
            return "optimizer state `\(key)` is not kept by \(optimizer): the checkpoint was saved by "
                + "another optimizer or for other trainable tensors."
        case .invalidStepCount(let step):
            return "optimizer step count \(step) is invalid: it must be 0 or more."
        }
    }
}

/// First-order optimizers with PyTorch's update rules (`torch.optim.SGD`, `Adam`, `AdamW`),
/// applied in place to a model's trainable tensors from its gradient store.
///
/// The state (SGD's momentum buffer, Adam's first and second moments) lives in one allocation
/// that mirrors the gradient store's layout: state slot `s` of the tensor at gradient offset
/// `o` starts at `s · n + o` (n = the gradient store's count). A step allocates nothing.
///
/// Update rules, for each trainable tensor θ with gradient g, learning rate η, step t ≥ 1
/// (the count after this step):
/// - SGD: `g += wd·θ`; with momentum μ: `buf = μ·buf + g` (buf starts at 0, so the first
///   step gives `buf = g`, as PyTorch's lazily created buffer), then `g = buf`, or with
///   Nesterov `g = g + μ·buf`; finally `θ −= η·g`.
/// - Adam: `g += wd·θ` (L2 penalty in the gradient); `m = lerp(m, g, 1−β₁)`,
///   `v = β₂·v + (1−β₂)·g²`; `θ −= η/(1−β₁ᵗ) · m / (√v / √(1−β₂ᵗ) + ε)`.
/// - AdamW: `θ ·= 1 − η·wd` (decoupled decay) first, then the Adam update without the
///   L2 term.
/// Scalar factors are formed in double precision and applied in float, operation by
/// operation as PyTorch's CPU kernels apply them, so results agree to float rounding.
public final class Optimizer {
    /// Which update rule, with its hyperparameters (PyTorch's names and defaults).
    public enum Kind: Sendable, Equatable {
        /// `torch.optim.SGD` (dampening 0).
        case sgd(momentum: Double = 0, weightDecay: Double = 0, nesterov: Bool = false)
        /// `torch.optim.Adam` (amsgrad off); `weightDecay` is an L2 term added to the gradient.
        case adam(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0)
        /// `torch.optim.AdamW` (amsgrad off); `weightDecay` is decoupled (PyTorch's default 0.01).
        case adamW(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0.01)

        /// The name recipes and checkpoints use: "sgd", "adam" or "adamw".
        public var name: String {
            switch self {
            case .sgd: return "sgd"
            case .adam: return "adam"
            case .adamW: return "adamw"
            }
        }

        /// The state tensors kept per trainable tensor, as PyTorch names them in
        /// `optimizer.state[p]`: `momentum_buffer`, or `exp_avg` and `exp_avg_sq`.
        public var stateSlotNames: [String] {
            switch self {
            case .sgd(let momentum, _, _): return momentum != 0 ? ["momentum_buffer"] : []
            case .adam, .adamW: return ["exp_avg", "exp_avg_sq"]
            }
        }

        /// Throws `OptimizerError.invalidHyperparameter` for a value PyTorch would reject.
        public func validate() throws {
            func check(_ name: String, _ value: Double, _ valid: Bool, _ reason: String) throws {
                if !valid || !value.isFinite {
                    throw OptimizerError.invalidHyperparameter(name: name, value: "\(value)", reason: reason)
                }
            }
            switch self {
            case .sgd(let momentum, let weightDecay, let nesterov):
                try check("momentum", momentum, momentum >= 0, "it must be 0 or more")
                try check("weight_decay", weightDecay, weightDecay >= 0, "it must be 0 or more")
                if nesterov && momentum == 0 {
                    throw OptimizerError.invalidHyperparameter(name: "nesterov", value: "true",
                                                               reason: "Nesterov momentum needs momentum > 0")
                }
            case .adam(let beta1, let beta2, let epsilon, let weightDecay),
                 .adamW(let beta1, let beta2, let epsilon, let weightDecay):
                try check("beta1", beta1, beta1 >= 0 && beta1 < 1, "it must be in [0, 1)")
                try check("beta2", beta2, beta2 >= 0 && beta2 < 1, "it must be in [0, 1)")
                try check("epsilon", epsilon, epsilon >= 0, "it must be 0 or more")
                try check("weight_decay", weightDecay, weightDecay >= 0, "it must be 0 or more")
            }
        }
    }

    /// The update rule.
    public let kind: Kind
    /// Trainable tensor names, in gradient-store order.
    public let names: [String]
    /// Shapes of the trainable tensors, by name.
    public let shapes: [String: [Int]]
    /// Number of updates applied (PyTorch's `state["step"]`); the next step uses `stepCount + 1`
    /// in Adam's bias corrections.
    public private(set) var stepCount: Int = 0

    private let offsets: [String: Int]       // offset of each tensor in the gradient store
    private let trainableCount: Int          // n
    private let stateStorage: TensorStorage  // [S, n]
    private let slotCount: Int               // S

    // The last model bound by `step`, and its contiguous runs (cached so a step allocates nothing).
    private weak var boundParameters: ParameterStore?
    private weak var boundGradients: ParameterStore?
    private var runs: [Run] = []

    /// A stretch of floats contiguous in both the parameter store and the gradient store.
    private struct Run {
        var parameterOffset: Int
        var gradientOffset: Int // = the offset inside each state slot
        var count: Int
    }

    /// An optimizer for tensors laid out as `gradients` (names, shapes, order); state starts at zero.
    public init(kind: Kind, gradients: ParameterStore) throws {
        try kind.validate()
        self.kind = kind
        names = gradients.names
        var shapes: [String: [Int]] = [:], offsets: [String: Int] = [:]
        for name in gradients.names {
            let tensor = gradients[name]!
            shapes[name] = tensor.shape
            offsets[name] = tensor.offset
        }
        self.shapes = shapes
        self.offsets = offsets
        trainableCount = gradients.count
        slotCount = kind.stateSlotNames.count
        stateStorage = TensorStorage(count: slotCount * gradients.count)
    }

    /// An optimizer for `model`'s trainable tensors.
    public convenience init(kind: Kind, model: Transformer) throws {
        try self.init(kind: kind, gradients: model.gradients)
    }

    /// Applies one update to every trainable tensor of `model` from `model.gradients`.
    public func step(model: Transformer, learningRate: Float) {
        step(parameters: model.parameters, gradients: model.gradients, learningRate: learningRate)
    }

    /// Applies one update to the tensors of `parameters` named in `gradients`, in place.
    ///
    /// `gradients` must have the layout this optimizer was made for, and `parameters` must
    /// hold every one of its tensors with the same shape (a programming error otherwise).
    public func step(parameters: ParameterStore, gradients: ParameterStore, learningRate: Float) {
        bind(parameters: parameters, gradients: gradients)
        stepCount += 1
        let parameterBase = parameters.storage.base, gradientBase = gradients.storage.base
        let state = stateStorage.base, n = trainableCount
        let update = Update(kind: kind, learningRate: learningRate, step: stepCount)
        for run in runs {
            let p = parameterBase + run.parameterOffset, g = gradientBase + run.gradientOffset
            let first = state + run.gradientOffset, second = state + n + run.gradientOffset
            Parallel.forEachChunk(run.count, minimumPerChunk: 1 << 15) { range in
                update.apply(parameters: p, gradients: g, first: first, second: second, range: range)
            }
        }
    }

    /// The state as named tensors (independent copies): `<slot>/<tensor name>` with slot
    /// `momentum_buffer` (SGD with momentum) or `exp_avg` and `exp_avg_sq` (Adam, AdamW).
    /// Save it with `stepCount`; restore both with `load(state:step:)`.
    public var state: [String: Tensor] {
        var result: [String: Tensor] = [:]
        for (slot, slotName) in kind.stateSlotNames.enumerated() {
            for name in names {
                let view = Tensor(storage: stateStorage, offset: slot * trainableCount + offsets[name]!,
                                  shape: shapes[name]!)
                result["\(slotName)/\(name)"] = view.copy()
            }
        }
        return result
    }

    /// Restores the state and step count saved from `state` and `stepCount`.
    ///
    /// Every key this optimizer keeps must be present with its tensor's shape, and no other
    /// key may be; nothing is changed when an error is thrown.
    public func load(state: [String: Tensor], step: Int) throws {
        guard step >= 0 else { throw OptimizerError.invalidStepCount(step) }
        var expected: Set<String> = []
        for slotName in kind.stateSlotNames {
            for name in names {
                let key = "\(slotName)/\(name)"
                expected.insert(key)
                guard let tensor = state[key] else { throw OptimizerError.missingState(key: key) }
                guard tensor.shape == shapes[name]! else {
                    throw OptimizerError.stateShapeMismatch(key: key, expected: shapes[name]!, found: tensor.shape)
                }
            }
        }
        if let extra = state.keys.sorted().first(where: { !expected.contains($0) }) {
            throw OptimizerError.unexpectedState(key: extra, optimizer: kind.name)
        }
        for (slot, slotName) in kind.stateSlotNames.enumerated() {
            for name in names {
                let source = state["\(slotName)/\(name)"]!
                (stateStorage.base + slot * trainableCount + offsets[name]!).update(from: source.pointer,
                                                                                     count: source.count)
            }
        }
        stepCount = step
    }

    /// Checks the stores against this optimizer's layout and merges tensors that are adjacent
    /// in both stores into runs (full fine-tuning gives a single run).
    private func bind(parameters: ParameterStore, gradients: ParameterStore) {
        if boundParameters === parameters && boundGradients === gradients { return }
        precondition(gradients.names == names && gradients.count == trainableCount,
                     "Optimizer.step: the gradient store does not have the tensors this optimizer was made for")
        var runs: [Run] = []
        for name in names {
            let gradient = gradients[name]!
            precondition(gradient.shape == shapes[name]! && gradient.offset == offsets[name]!,
                         "Optimizer.step: gradient \(name) has shape \(gradient.shape), expected \(shapes[name]!)")
            guard let parameter = parameters[name], parameter.shape == gradient.shape else {
                preconditionFailure("Optimizer.step: the parameter store has no tensor \(name) of shape \(gradient.shape)")
            }
            if let last = runs.last, last.parameterOffset + last.count == parameter.offset,
               last.gradientOffset + last.count == gradient.offset {
                runs[runs.count - 1].count += gradient.count
            } else {
                runs.append(Run(parameterOffset: parameter.offset, gradientOffset: gradient.offset,
                                count: gradient.count))
            }
        }
        self.runs = runs
        boundParameters = parameters
        boundGradients = gradients
    }
}

/// One step's scalar factors and the elementwise update over a range.
///
/// Each line mirrors one PyTorch tensor operation as its CPU kernel rounds it (checked
/// against torch 2.15 bit for bit on the moments): `a.add(b, alpha)` is the fused
/// `fma(b, alpha, a)`, `lerp(start, end, w)` is `fma(w, end − start, start)` (weights below ½),
/// `addcmul(a, b, c, value: s)` is `fma(s·b, c, a)`, `addcdiv` is `a + (s·b)/c`.
///
/// The L2 term `g + wd·θ` is formed even when wd = 0: it equals g for every finite θ and keeps
/// the loops free of branches.
private struct Update {
    enum Rule { case sgd, momentum, nesterov, adam, adamW }
    var rule: Rule
    var learningRate: Float
    var weightDecay: Float
    var momentum: Float = 0
    var oneMinusBeta1: Float = 0       // lerp weight
    var beta2: Float = 0
    var oneMinusBeta2: Float = 0
    var epsilon: Float = 0
    var negativeStepSize: Float = 0    // −η / (1 − β₁ᵗ)
    var biasCorrection2Root: Float = 1 // √(1 − β₂ᵗ)
    var decayFactor: Float = 1         // AdamW: 1 − η·wd

    init(kind: Optimizer.Kind, learningRate: Float, step: Int) {
        self.learningRate = learningRate
        let eta = Double(learningRate), t = Double(step)
        switch kind {
        case .sgd(let momentum, let weightDecay, let nesterov):
            rule = momentum == 0 ? .sgd : nesterov ? .nesterov : .momentum
            self.weightDecay = Float(weightDecay)
            self.momentum = Float(momentum)
        case .adam(let beta1, let beta2, let epsilon, let weightDecay),
             .adamW(let beta1, let beta2, let epsilon, let weightDecay):
            if case .adamW = kind {
                rule = .adamW
                decayFactor = Float(1 - eta * weightDecay)
                self.weightDecay = 0
            } else {
                rule = .adam
                self.weightDecay = Float(weightDecay)
            }
            oneMinusBeta1 = Float(1 - beta1)
            self.beta2 = Float(beta2)
            oneMinusBeta2 = Float(1 - beta2)
            self.epsilon = Float(epsilon)
            negativeStepSize = Float(-(eta / (1 - pow(beta1, t))))
            biasCorrection2Root = Float(pow(1 - pow(beta2, t), 0.5))
        }
    }

    /// p, g: the run's parameters and gradients; first, second: its state in slots 0 and 1.
    @inline(__always)
    func apply(parameters p: UnsafeMutablePointer<Float>, gradients g: UnsafeMutablePointer<Float>,
               first: UnsafeMutablePointer<Float>, second: UnsafeMutablePointer<Float>, range: Range<Int>) {
        let negativeRate = -learningRate, wd = weightDecay
        switch rule {
        case .sgd:
            for i in range {
                let gradient = fusedMultiplyAdd(wd, p[i], g[i])         // g.add(θ, alpha: wd)
                p[i] = fusedMultiplyAdd(gradient, negativeRate, p[i])   // θ.add_(g, alpha: −η)
            }
        case .momentum:
            let mu = momentum
            for i in range {
                let gradient = fusedMultiplyAdd(wd, p[i], g[i])
                let buffer = first[i] * mu + gradient                   // buf.mul_(μ).add_(g)
                first[i] = buffer
                p[i] = fusedMultiplyAdd(buffer, negativeRate, p[i])
            }
        case .nesterov:
            let mu = momentum
            for i in range {
                let gradient = fusedMultiplyAdd(wd, p[i], g[i])
                let buffer = first[i] * mu + gradient
                first[i] = buffer
                let direction = fusedMultiplyAdd(buffer, mu, gradient)  // g.add(buf, alpha: μ)
                p[i] = fusedMultiplyAdd(direction, negativeRate, p[i])
            }
        case .adam, .adamW:
            let w1 = oneMinusBeta1, b2 = beta2, w2 = oneMinusBeta2, eps = epsilon
            let stepSize = negativeStepSize, root = biasCorrection2Root, decay = decayFactor
            for i in range {
                let theta = p[i] * decay                                // AdamW: θ·(1 − η·wd); Adam: θ·1
                let gradient = fusedMultiplyAdd(wd, theta, g[i])        // Adam's L2 term (AdamW: wd = 0 here)
                let m = fusedMultiplyAdd(w1, gradient - first[i], first[i])    // m.lerp_(g, 1 − β₁)
                let v = fusedMultiplyAdd(w2 * gradient, gradient, second[i] * b2) // v.mul_(β₂).addcmul_(g, g, 1 − β₂)
                first[i] = m
                second[i] = v
                // max(v, 0) = v (NaN stays NaN), but tells LLVM that √ needs no errno call, so
                // the loop vectorises.
                let denominator = max(v, 0).squareRoot() / root + eps
                p[i] = theta + (stepSize * m) / denominator             // θ.addcdiv_(m, √v/√bc₂ + ε, −η/bc₁)
            }
        }
    }
}

/// `a·b + c` rounded once to float, as a fused multiply-add gives it.
///
/// The package is built for baseline x86-64, where `Float.addingProduct` is a library call
/// that stops a loop from vectorising. The product of two floats is exact in double precision,
/// so one double addition and the conversion back give the fused result (barring double
/// rounding of an exact tie, which has not shown up against PyTorch), and these vectorise.
@inline(__always)
private func fusedMultiplyAdd(_ a: Float, _ b: Float, _ c: Float) -> Float {
    Float(Double(a) * Double(b) + Double(c))
}
