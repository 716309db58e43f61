/// Plain stochastic gradient descent: θ −= learningRate · g over every trainable tensor.
public struct SGD: Sendable {
    public var learningRate: Float

    public init(learningRate: Float) { self.learningRate = learningRate }

    /// Applies one update from `model.gradients` to the matching parameters.
    public func step(_ model: Transformer) {
        let rate = learningRate
        for name in model.trainableNames {
            let parameter = model.parameters[name]!, gradient = model.gradients[name]!
            let p = parameter.pointer, g = gradient.pointer
            for i in 0..<parameter.count { p[i] -= rate * g[i] }
        }
    }
}
