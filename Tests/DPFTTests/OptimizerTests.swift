import Foundation
import Testing
@testable import DPFT

/// tools/make_optimizer_fixtures.py: torch.optim runs over two small tensors, 5 steps.
private struct OptimizerReference: Decodable {
    struct Initial: Decodable {
        var shape: [Int]
        var values: [Float]
    }

    struct Hyperparameters: Decodable {
        var momentum: Double?
        var weightDecay: Double?
        var nesterov: Bool?
        var beta1: Double?
        var beta2: Double?
        var eps: Double?
    }

    struct Case: Decodable {
        var name: String
        var kind: String
        var hyperparameters: Hyperparameters
        var parametersAfterStep: [[String: [Float]]]
        var stateAfterLastStep: [String: [Float]]

        var optimizerKind: Optimizer.Kind {
            let h = hyperparameters
            switch kind {
            case "sgd":
                return .sgd(momentum: h.momentum!, weightDecay: h.weightDecay!, nesterov: h.nesterov!)
            case "adam":
                return .adam(beta1: h.beta1!, beta2: h.beta2!, epsilon: h.eps!, weightDecay: h.weightDecay!)
            default:
                return .adamW(beta1: h.beta1!, beta2: h.beta2!, epsilon: h.eps!, weightDecay: h.weightDecay!)
            }
        }
    }

    var torchVersion: String
    var initial: [String: Initial]
    var gradients: [[String: [Float]]]
    var learningRates: [Float]
    var cases: [Case]

    /// Storage order, as the script lists its tensors.
    static let names = ["layer.weight", "layer.bias"]

    static let shared: OptimizerReference = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let data = try! Data(contentsOf: Fixtures.url("optimizer/optimizers.json"))
        return try! decoder.decode(OptimizerReference.self, from: data)
    }()

    var layout: [(name: String, shape: [Int])] { Self.names.map { ($0, initial[$0]!.shape) } }

    /// Fresh parameter and gradient stores holding the initial values.
    func makeStores() -> (parameters: ParameterStore, gradients: ParameterStore) {
        let parameters = ParameterStore(layout: layout), gradients = ParameterStore(layout: layout)
        for name in Self.names { write(initial[name]!.values, into: parameters[name]!) }
        return (parameters, gradients)
    }

    func loadGradients(step: Int, into gradients: ParameterStore) {
        for name in Self.names { write(self.gradients[step][name]!, into: gradients[name]!) }
    }
}

/// Copies `values` into `tensor` (equal counts).
private func write(_ values: [Float], into tensor: Tensor) {
    precondition(values.count == tensor.count, "\(values.count) values for a tensor of \(tensor.count)")
    _ = tensor.buffer.update(fromContentsOf: values)
}

private let caseNames = OptimizerReference.shared.cases.map(\.name)

private func referenceCase(_ name: String) -> OptimizerReference.Case {
    OptimizerReference.shared.cases.first { $0.name == name }!
}

@Suite("Optimizer against torch.optim")
struct OptimizerReferenceTests {
    /// 5 steps with a changing learning rate; parameters after every step and the final state
    /// agree with PyTorch to 1e-6 relative (floor 1e-6).
    @Test(arguments: caseNames)
    func matchesPyTorch(caseName: String) throws {
        let reference = OptimizerReference.shared, expected = referenceCase(caseName)
        let (parameters, gradients) = reference.makeStores()
        let optimizer = try Optimizer(kind: expected.optimizerKind, gradients: gradients)
        var worst: (error: Float, where: String) = (0, "")
        for step in 0..<reference.gradients.count {
            reference.loadGradients(step: step, into: gradients)
            optimizer.step(parameters: parameters, gradients: gradients, learningRate: reference.learningRates[step])
            #expect(optimizer.stepCount == step + 1)
            for name in OptimizerReference.names {
                let error = maxRelativeDifference(parameters[name]!.values, expected.parametersAfterStep[step][name]!)
                if error > worst.error { worst = (error, "\(name) after step \(step + 1)") }
                #expect(error <= 1e-6, "\(caseName): \(name) after step \(step + 1): max relative error \(error)")
            }
        }
        let state = optimizer.state
        #expect(Set(state.keys) == Set(expected.stateAfterLastStep.keys), "\(caseName): state keys")
        for (key, values) in expected.stateAfterLastStep {
            let error = maxRelativeDifference(state[key]?.values ?? [], values)
            if error > worst.error { worst = (error, key) }
            #expect(error <= 1e-6, "\(caseName): state \(key): max relative error \(error)")
        }
        print("optimizer \(caseName) vs torch \(reference.torchVersion): max relative error \(worst.error) (\(worst.where))")
    }

    /// Saving after 2 steps and resuming in a fresh optimizer gives, bit for bit, the
    /// parameters of the uninterrupted run; the saved state is a copy the original's later
    /// steps do not change.
    @Test(arguments: caseNames)
    func stateRoundTripResumesExactly(caseName: String) throws {
        let reference = OptimizerReference.shared, kind = referenceCase(caseName).optimizerKind
        let steps = reference.gradients.count, split = 2
        let (parameters, gradients) = reference.makeStores()
        let uninterrupted = try Optimizer(kind: kind, gradients: gradients)
        var saved: (state: [String: Tensor], step: Int, parameters: [String: [Float]])?
        for step in 0..<steps {
            if step == split {
                saved = (uninterrupted.state, uninterrupted.stepCount,
                         Dictionary(uniqueKeysWithValues: OptimizerReference.names.map { ($0, parameters[$0]!.values) }))
            }
            reference.loadGradients(step: step, into: gradients)
            uninterrupted.step(parameters: parameters, gradients: gradients, learningRate: reference.learningRates[step])
        }

        let (resumedParameters, resumedGradients) = reference.makeStores()
        for (name, values) in saved!.parameters { write(values, into: resumedParameters[name]!) }
        let resumed = try Optimizer(kind: kind, gradients: resumedGradients)
        try resumed.load(state: saved!.state, step: saved!.step)
        #expect(resumed.stepCount == split)
        for step in split..<steps {
            reference.loadGradients(step: step, into: resumedGradients)
            resumed.step(parameters: resumedParameters, gradients: resumedGradients,
                         learningRate: reference.learningRates[step])
        }
        for name in OptimizerReference.names {
            #expect(resumedParameters[name]!.values == parameters[name]!.values, "\(caseName): \(name)")
        }
        let finalState = uninterrupted.state, resumedState = resumed.state
        for (key, tensor) in finalState { #expect(resumedState[key]!.values == tensor.values, "\(caseName): \(key)") }
    }
}

@Suite("Optimizer state and layout")
struct OptimizerStateTests {
    private func adamAfterOneStep() throws -> (Optimizer, [String: Tensor]) {
        let reference = OptimizerReference.shared
        let (parameters, gradients) = reference.makeStores()
        let optimizer = try Optimizer(kind: .adam(), gradients: gradients)
        reference.loadGradients(step: 0, into: gradients)
        optimizer.step(parameters: parameters, gradients: gradients, learningRate: 0.01)
        return (optimizer, optimizer.state)
    }

    @Test func stateNamesFollowPyTorch() throws {
        let (_, gradients) = OptimizerReference.shared.makeStores()
        #expect(try Optimizer(kind: .sgd(), gradients: gradients).state.isEmpty)
        #expect(Set(try Optimizer(kind: .sgd(momentum: 0.9), gradients: gradients).state.keys)
                == ["momentum_buffer/layer.weight", "momentum_buffer/layer.bias"])
        let adam = try Optimizer(kind: .adamW(), gradients: gradients).state
        #expect(Set(adam.keys) == ["exp_avg/layer.weight", "exp_avg_sq/layer.weight",
                                   "exp_avg/layer.bias", "exp_avg_sq/layer.bias"])
        #expect(adam["exp_avg_sq/layer.weight"]!.shape == [3, 4])
    }

    @Test func loadRejectsMissingMisShapedAndForeignEntriesAndChangesNothing() throws {
        let (optimizer, state) = try adamAfterOneStep()
        let before = optimizer.state

        var missing = state
        missing["exp_avg_sq/layer.bias"] = nil
        #expect(throws: OptimizerError.missingState(key: "exp_avg_sq/layer.bias")) {
            try optimizer.load(state: missing, step: 7)
        }
        var misShaped = state
        misShaped["exp_avg/layer.weight"] = Tensor(zeros: [4, 3])
        #expect(throws: OptimizerError.stateShapeMismatch(key: "exp_avg/layer.weight", expected: [3, 4], found: [4, 3])) {
            try optimizer.load(state: misShaped, step: 7)
        }
        var foreign = state
        foreign["momentum_buffer/layer.bias"] = Tensor(zeros: [5])
        #expect(throws: OptimizerError.unexpectedState(key: "momentum_buffer/layer.bias", optimizer: "adam")) {
            try optimizer.load(state: foreign, step: 7)
        }
        #expect(throws: OptimizerError.invalidStepCount(-1)) { try optimizer.load(state: state, step: -1) }

        #expect(optimizer.stepCount == 1)
        for (key, tensor) in before { #expect(optimizer.state[key]!.values == tensor.values, "\(key) changed") }

        // An SGD-with-momentum optimizer refuses Adam's state, naming what it lacks.
        let (_, gradients) = OptimizerReference.shared.makeStores()
        let sgd = try Optimizer(kind: .sgd(momentum: 0.9), gradients: gradients)
        #expect(throws: OptimizerError.missingState(key: "momentum_buffer/layer.weight")) {
            try sgd.load(state: state, step: 1)
        }
        #expect(OptimizerError.missingState(key: "exp_avg/x").description.contains("exp_avg/x"))
    }

    @Test func invalidHyperparametersAreNamed() throws {
        let (_, gradients) = OptimizerReference.shared.makeStores()
        #expect(throws: OptimizerError.invalidHyperparameter(name: "beta2", value: "1.0", reason: "it must be in [0, 1)")) {
            try Optimizer(kind: .adam(beta2: 1), gradients: gradients)
        }
        #expect(throws: OptimizerError.invalidHyperparameter(name: "momentum", value: "-0.5", reason: "it must be 0 or more")) {
            try Optimizer(kind: .sgd(momentum: -0.5), gradients: gradients)
        }
        #expect(throws: OptimizerError.self) { try Optimizer(kind: .sgd(nesterov: true), gradients: gradients) }
        #expect(throws: OptimizerError.self) { try Optimizer(kind: .adamW(weightDecay: .nan), gradients: gradients) }
        #expect(Optimizer.Kind.adamW().name == "adamw")
    }
}

/// The update rules written out element by element, in PyTorch's order of operations and
/// rounding (`fma` where ATen's kernels fuse): the oracle for the optimizer's chunked,
/// multi-tensor loops.
private func referenceUpdate(kind: Optimizer.Kind, step t: Int, learningRate eta: Float,
                             parameter p: inout [Float], gradient g: [Float], first: inout [Float], second: inout [Float]) {
    func fma(_ a: Float, _ b: Float, _ c: Float) -> Float { Float(Double(a) * Double(b) + Double(c)) }
    switch kind {
    case .sgd(let momentum, let weightDecay, let nesterov):
        for i in p.indices {
            var d = fma(Float(weightDecay), p[i], g[i])
            if momentum != 0 {
                first[i] = first[i] * Float(momentum) + d
                d = nesterov ? fma(first[i], Float(momentum), d) : first[i]
            }
            p[i] = fma(d, -eta, p[i])
        }
    case .adam(let beta1, let beta2, let epsilon, let weightDecay),
         .adamW(let beta1, let beta2, let epsilon, let weightDecay):
        let decoupled: Bool = { if case .adamW = kind { return true } else { return false } }()
        let stepSize = Float(-(Double(eta) / (1 - pow(beta1, Double(t)))))
        let root = Float(pow(1 - pow(beta2, Double(t)), 0.5))
        for i in p.indices {
            if decoupled { p[i] *= Float(1 - Double(eta) * weightDecay) }
            let d = decoupled ? g[i] : fma(Float(weightDecay), p[i], g[i])
            first[i] = fma(Float(1 - beta1), d - first[i], first[i])
            second[i] = fma(Float(1 - beta2) * d, d, second[i] * Float(beta2))
            p[i] = p[i] + (stepSize * first[i]) / (second[i].squareRoot() / root + Float(epsilon))
        }
    }
}

@Suite("Optimizer on a model")
struct OptimizerModelTests {
    static let gpt2 = #"{"model_type":"gpt2","vocab_size":50,"n_positions":16,"n_embd":8,"n_layer":2,"n_head":2}"#

    /// Steps a model whose trainable tensors are every other tensor (several runs in the
    /// stores) or all of them (one run), and checks every trainable tensor against the
    /// element-by-element oracle, to the bit, and that frozen tensors do not move.
    @Test(arguments: [false, true])
    func stepsTrainableTensorsOnlyAndExactly(everyTensor: Bool) throws {
        let checkpoint = Checkpoint.initialized(config: try ModelConfig(json: Data(Self.gpt2.utf8), source: "test"), seed: 3)
        let allNames = try Transformer(checkpoint: checkpoint, trainable: TrainableSelection.none,
                                       maxBatchSize: 1, maxSequenceLength: 4).parameters.names
        let chosen = everyTensor ? Set(allNames) : Set(allNames.enumerated().filter { $0.offset % 2 == 0 }.map(\.element))
        let model = try Transformer(checkpoint: checkpoint, trainable: .names(chosen), maxBatchSize: 1, maxSequenceLength: 4)
        let before = Dictionary(uniqueKeysWithValues: allNames.map { ($0, model.parameters[$0]!.values) })

        for kind: Optimizer.Kind in [.sgd(momentum: 0.9, weightDecay: 0.01, nesterov: true),
                                     .adam(weightDecay: 0.1), .adamW(weightDecay: 0.1)] {
            for name in allNames { write(before[name]!, into: model.parameters[name]!) }
            let optimizer = try Optimizer(kind: kind, model: model)
            var expected = Dictionary(uniqueKeysWithValues: model.trainableNames.map { ($0, before[$0]!) })
            var first = expected.mapValues { [Float](repeating: 0, count: $0.count) }, second = first
            for step in 1...3 {
                let rate = Float(0.01) / Float(step)
                for (n, name) in model.trainableNames.enumerated() {
                    let gradient = model.gradients[name]!
                    for i in 0..<gradient.count { gradient.pointer[i] = sin(Float(i * 7 + n * 13 + step)) }
                    referenceUpdate(kind: kind, step: step, learningRate: rate, parameter: &expected[name]!,
                                    gradient: gradient.values, first: &first[name]!, second: &second[name]!)
                }
                optimizer.step(model: model, learningRate: rate)
            }
            for name in allNames {
                let values = model.parameters[name]!.values
                if let expected = expected[name] {
                    #expect(values == expected, "\(kind.name): trainable \(name)")
                    #expect(values != before[name]!, "\(kind.name): \(name) did not move")
                } else {
                    #expect(values == before[name]!, "\(kind.name): frozen \(name) moved")
                }
            }
        }
    }

    /// A tensor large enough to be split across threads gives the oracle's values to the bit.
    @Test func largeTensorsSplitAcrossThreadsMatchTheOracle() throws {
        let layout: [(name: String, shape: [Int])] = [("big", [300, 500]), ("small", [7])]
        let parameters = ParameterStore(layout: layout), gradients = ParameterStore(layout: layout)
        for (name, _) in layout {
            let p = parameters[name]!, g = gradients[name]!
            for i in 0..<p.count {
                p.pointer[i] = cos(Float(i) * 0.37)
                g.pointer[i] = sin(Float(i) * 1.91) * Float(1 + i % 5)
            }
        }
        let kind = Optimizer.Kind.adamW(beta1: 0.8, beta2: 0.99, weightDecay: 0.2)
        let optimizer = try Optimizer(kind: kind, gradients: gradients)
        var expected = Dictionary(uniqueKeysWithValues: layout.map { ($0.name, parameters[$0.name]!.values) })
        var first = expected.mapValues { [Float](repeating: 0, count: $0.count) }, second = first
        for step in 1...4 {
            for (name, _) in layout {
                referenceUpdate(kind: kind, step: step, learningRate: 0.003, parameter: &expected[name]!,
                                gradient: gradients[name]!.values, first: &first[name]!, second: &second[name]!)
            }
            optimizer.step(parameters: parameters, gradients: gradients, learningRate: 0.003)
        }
        for (name, _) in layout { #expect(parameters[name]!.values == expected[name]!, "\(name)") }
        #expect(optimizer.state["exp_avg_sq/big"]!.values == second["big"]!)
    }
}

/// tools/make_optimizer_fixtures.py: Hugging Face schedulers' learning rates per update.
private struct ScheduleReference: Decodable {
    struct Case: Decodable {
        var name: String
        var kind: String
        var warmupSteps: Int
        var totalSteps: Int
        var minLrRate: Double
        var learningRates: [Double]
    }

    var transformersVersion: String
    var peakLearningRate: Double
    var cases: [Case]

    static let shared: ScheduleReference = {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let data = try! Data(contentsOf: Fixtures.url("optimizer/schedules.json"))
        return try! decoder.decode(ScheduleReference.self, from: data)
    }()
}

@Suite("Learning-rate schedules")
struct LearningRateScheduleTests {
    /// Every update 0…total against transformers' schedulers: bit-exact with min_lr 0,
    /// 1e-12 relative with a minimum (the factor is formed differently).
    @Test(arguments: ScheduleReference.shared.cases.map(\.name))
    func matchesHuggingFace(caseName: String) throws {
        let reference = ScheduleReference.shared
        let expected = reference.cases.first { $0.name == caseName }!
        let peak = reference.peakLearningRate
        let schedule = try LearningRateSchedule(kind: LearningRateSchedule.Kind(rawValue: expected.kind)!,
                                                peakLearningRate: peak,
                                                minimumLearningRate: expected.minLrRate * peak,
                                                warmupSteps: expected.warmupSteps)
        for (step, rate) in expected.learningRates.enumerated() {
            let value = schedule.learningRate(step: step, totalSteps: expected.totalSteps)
            if expected.minLrRate == 0 {
                #expect(value == rate, "\(caseName) step \(step): \(value) vs \(rate)")
            } else {
                #expect(abs(value - rate) <= 1e-12 * rate, "\(caseName) step \(step): \(value) vs \(rate)")
            }
        }
    }

    /// The formulas, written out: warmup from 0, linear decay to a minimum, the plateau after
    /// the end, cosine's midpoint.
    @Test func formulas() throws {
        let linear = try LearningRateSchedule(kind: .linear, peakLearningRate: 1e-3, minimumLearningRate: 1e-4,
                                              warmupSteps: 10)
        #expect(linear.learningRate(step: 0, totalSteps: 110) == 0)
        #expect(abs(linear.learningRate(step: 5, totalSteps: 110) - 5e-4) < 1e-15)
        #expect(linear.learningRate(step: 10, totalSteps: 110) == 1e-3)
        #expect(abs(linear.learningRate(step: 60, totalSteps: 110) - (1e-4 + 0.9e-3 * 0.5)) < 1e-15)
        #expect(abs(linear.learningRate(step: 110, totalSteps: 110) - 1e-4) < 1e-18)
        #expect(abs(linear.learningRate(step: 500, totalSteps: 110) - 1e-4) < 1e-18)

        let cosine = try LearningRateSchedule(kind: .cosine, peakLearningRate: 2.0, minimumLearningRate: 0.5)
        #expect(cosine.learningRate(step: 0, totalSteps: 100) == 2.0)
        #expect(abs(cosine.learningRate(step: 50, totalSteps: 100) - 1.25) < 1e-12)
        #expect(cosine.learningRate(step: 100, totalSteps: 100) == 0.5)
        #expect(cosine.learningRate(step: 150, totalSteps: 100) == 0.5)  // no rise after the end

        let constant = try LearningRateSchedule(kind: .constant, peakLearningRate: 0.1, warmupSteps: 4)
        #expect(constant.learningRate(step: 2, totalSteps: 10) == 0.05)
        #expect(constant.learningRate(step: 40, totalSteps: 10) == 0.1)
    }

    @Test func invalidSettingsAreNamed() {
        #expect(throws: LearningRateScheduleError.self) { try LearningRateSchedule(peakLearningRate: -1) }
        #expect(throws: LearningRateScheduleError.self) {
            try LearningRateSchedule(kind: .cosine, peakLearningRate: 1e-3, minimumLearningRate: 1e-2)
        }
        #expect(throws: LearningRateScheduleError.invalidValue(key: "warmup_steps", value: "-3", reason: "it must be 0 or more")) {
            try LearningRateSchedule(peakLearningRate: 1e-3, warmupSteps: -3)
        }
    }
}
