import Foundation
import Testing
@testable import DPFT

/// Book-keeping against an independent reference: per-example gradients from PyTorch's
/// torch.func (vmap of grad), fixtures from tools/make_per_example_fixtures.py. Bounds:
/// relative 1e-4 for norms and clip factors, scale-relative 1e-4 for clipped sums.
@Suite struct PerExampleReferenceTests {
    struct Fixture {
        let file: HDF5File
        let tensorNames: [String]
        let squaredNorms: Tensor  // [B, P] per tensor

        init(_ name: String) throws {
            file = try HDF5File.openForReading(Fixtures.url("per_example/\(name).h5").path)
            let names = try #require(try file.attribute("tensor_names")?.stringValue)
            tensorNames = try JSONDecoder().decode([String].self, from: Data(names.utf8))
            squaredNorms = try file.readTensor(at: "/per_example_squared_norms")
        }

        func threshold(_ setup: String) throws -> Double {
            switch try file.attribute("threshold", on: "/clipped/\(setup)") {
            case .double(let value)?: return value
            case .integer(let value)?: return Double(value)
            default: throw CheckpointError.missingAttribute(path: file.path, name: "/clipped/\(setup)@threshold")
            }
        }
    }

    static func relative(_ a: Double, _ b: Double) -> Double { abs(a - b) / max(abs(b), 1e-8) }

    /// Runs the engine with `grouping` and checks norms/factors/sums against the fixture.
    func check(_ name: String, setup: String, grouping: Grouping, clipping: ClippingFunction,
               model: Transformer, batch: TokenBatch, fixture: Fixture) throws {
        let engine = try PrivateGradient(model: model, grouping: grouping, clipping: clipping)
        model.zeroGradients()
        try engine.accumulate(batch)
        let referenceFactors = try fixture.file.readTensor(at: "/clipped/\(setup)/clip_factors")
        let K = grouping.groups.count
        for i in 0..<batch.batchSize {
            for k in 0..<K {
                let expected = grouping.groups[k].parameters.map { parameter in
                    Double(fixture.squaredNorms.element([i, fixture.tensorNames.firstIndex(of: parameter)!]))
                }.reduce(0, +).squareRoot()
                #expect(Self.relative(engine.perSampleNorms[i][k], expected) <= 1e-4,
                        "\(name)/\(setup): norm \(i),\(k) \(engine.perSampleNorms[i][k]) vs \(expected)")
                let factor = Double(referenceFactors.pointer[i * K + k])
                #expect(Self.relative(engine.clipFactors[i][k], factor) <= 1e-4, "\(name)/\(setup): factor \(i),\(k)")
            }
        }
        let specs = Dictionary(uniqueKeysWithValues: model.config.parameterSpecs.map { ($0.name, $0) })
        for tensor in model.trainableNames {
            var expected = try fixture.file.readTensor(at: "/clipped/\(setup)/\(tensor)")
            if specs[tensor]?.storedTransposedByHF == true { expected = expected.transposed() }
            let error = ReferenceModelTests.scaleRelative(model.gradients[tensor]!.values, expected.values)
            #expect(error <= 1e-4, "\(name)/\(setup): clipped sum of \(tensor) off by \(error)")
        }
    }

    @Test(arguments: ReferenceModelTests.cases)
    func matchesTorchFunc(name: String) throws {
        let reference = try ReferenceModelTests.Reference(name)
        let fixture = try Fixture(name)
        let batch = reference.batch
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: batch.batchSize,
                                    maxSequenceLength: batch.sequenceLength)
        #expect(Set(fixture.tensorNames) == Set(model.trainableNames))
        let names = model.trainableNames
        let allLayer = try Grouping(strategy: "all-layer", groups: [
            ParameterGroup(name: "all", threshold: try fixture.threshold("all-layer"), parameters: names)], parameters: names)
        try check(name, setup: "all-layer", grouping: allLayer, clipping: .abadi, model: model, batch: batch, fixture: fixture)
        // param-wise in the fixture's tensor order, so clip factor columns line up
        let paramWise = try Grouping(strategy: "param-wise", groups: fixture.tensorNames.map {
            ParameterGroup(name: $0, threshold: try fixture.threshold("param-wise-automatic"), parameters: [$0])
        }, parameters: names)
        try check(name, setup: "param-wise-automatic", grouping: paramWise, clipping: .automatic(gamma: 0.01),
                  model: model, batch: batch, fixture: fixture)
    }

    /// Every built-in strategy's per-group norms equal the torch.func norms composed per group,
    /// and its clip factors equal abadi's factor of those reference norms.
    @Test(arguments: ReferenceModelTests.cases)
    func everyBuiltInStrategyMatchesTorchFuncNorms(name: String) throws {
        let reference = try ReferenceModelTests.Reference(name)
        let fixture = try Fixture(name)
        let batch = reference.batch
        let model = try Transformer(checkpoint: reference.checkpoint, maxBatchSize: batch.batchSize,
                                    maxSequenceLength: batch.sequenceLength)
        let isLoRA = name.hasSuffix("lora")
        var strategies: [(String, GroupingOptions)] = [
            ("all-layer", [:]), ("layer-wise", [:]), ("param-wise", [:]), ("per-block", [:]), ("attn-mlp", [:]),
            ("uniform", ["groups": 2]),
        ]
        if isLoRA { strategies += [("lora-only", [:]), ("lora-only", ["per": "block"])] }
        for (strategy, options) in strategies {
            let grouping = try GroupingRegistry.builtIn.resolve(strategy: strategy, options: options,
                                                                parameters: model.trainableParameterInfos, threshold: 1.0)
            let engine = try PrivateGradient(model: model, grouping: grouping, clipping: .abadi)
            model.zeroGradients()
            try engine.accumulate(batch)
            for i in 0..<batch.batchSize {
                for (k, group) in grouping.groups.enumerated() {
                    let expected = group.parameters.map {
                        Double(fixture.squaredNorms.element([i, fixture.tensorNames.firstIndex(of: $0)!]))
                    }.reduce(0, +).squareRoot()
                    #expect(Self.relative(engine.perSampleNorms[i][k], expected) <= 1e-4,
                            "\(name)/\(strategy) \(options): group \(group.name) example \(i)")
                    // abadi's factor (DESIGN.md §3) from the fixture's norm, not the engine's
                    let factor = min(1, group.threshold / (expected + 1e-6))
                    #expect(Self.relative(engine.clipFactors[i][k], factor) <= 1e-4,
                            "\(name)/\(strategy) \(options): clip factor \(engine.clipFactors[i][k]) vs \(factor)")
                }
            }
        }
    }
}
