// The lists grouping strategies take: the trainable tensors, in forward order, with real shapes.

extension Transformer {
    /// The trainable tensors as grouping sees them, in forward order, with their shapes in this
    /// model (LoRA ranks included): the `parameters` argument of `GroupingRegistry.resolve`.
    public var trainableParameterInfos: [ParameterInfo] {
        let trainable = Set(trainableNames)
        return config.parameterInfos(adapters: adapterSpecs).compactMap { info in
            guard trainable.contains(info.name) else { return nil }
            var info = info
            info.shape = parameters[info.name]!.shape
            return info
        }
    }
}

extension ModelConfig {
    /// The trainable tensors as grouping sees them, without building a model: what
    /// `Transformer(checkpoint:lora:trainable:...)` would train for this LoRA configuration and
    /// selection, in forward order, LoRA shapes `[r, in]` and `[out, r]`.
    ///
    /// `trainable` defaults as the Transformer's does: `.adapters` with LoRA, `.all` without.
    public func trainableParameterInfos(lora: LoRAConfig?, trainable: TrainableSelection? = nil) throws -> [ParameterInfo] {
        let adapters = try lora.map { try adapterSpecs(for: $0) } ?? []
        let rank = lora?.rank ?? 0
        let infos = parameterInfos(adapters: adapters).map { info -> ParameterInfo in
            var info = info
            switch info.kind {
            case .loraA: info.shape = [rank, info.shape[1]]
            case .loraB: info.shape = [info.shape[0], rank]
            default: break
            }
            return info
        }
        let isAdapter = { (info: ParameterInfo) in info.kind == .loraA || info.kind == .loraB }
        let selected: [ParameterInfo]
        switch trainable ?? (adapters.isEmpty ? .all : .adapters) {
        case .all: selected = infos
        case .adapters: selected = infos.filter(isAdapter)
        case .names(let names):
            let known = Set(infos.map(\.name))
            if let unknown = names.sorted().first(where: { !known.contains($0) }) {
                throw ModelError.unknownTrainableTensor(unknown)
            }
            selected = infos.filter { names.contains($0.name) }
        case .none: return []
        }
        guard !selected.isEmpty else { throw ModelError.noTrainableTensors }
        return selected
    }
}
