/// Named tensors that are views into one contiguous allocation (llm.c's layout): the model's
/// parameters live in one store, their gradients in another.
public final class ParameterStore: @unchecked Sendable {
    /// The single buffer holding every tensor.
    public let storage: TensorStorage
    /// Tensor names in storage order.
    public let names: [String]
    private let views: [String: Tensor]

    /// Allocates one zeroed buffer for `layout` (name, shape) pairs, in that order.
    public init(layout: [(name: String, shape: [Int])]) {
        let total = layout.reduce(0) { $0 + $1.shape.reduce(1, *) }
        storage = TensorStorage(count: total)
        var views: [String: Tensor] = [:]
        var offset = 0
        for (name, shape) in layout {
            precondition(views[name] == nil, "duplicate parameter name \(name)")
            views[name] = Tensor(storage: storage, offset: offset, shape: shape)
            offset += shape.reduce(1, *)
        }
        names = layout.map(\.name)
        self.views = views
    }

    /// The view for `name`, or nil when the store has no such tensor.
    public subscript(name: String) -> Tensor? { views[name] }

    /// Total number of floats.
    public var count: Int { storage.count }

    /// Sets every element to zero.
    public func zero() { storage.base.update(repeating: 0, count: storage.count) }
}
