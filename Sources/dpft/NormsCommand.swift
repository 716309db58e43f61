import ArgumentParser
import DPFT
import Foundation

enum ClippingChoice: String, ExpressibleByArgument, CaseIterable {
    case abadi, automatic
}

enum TrainableChoice: String, ExpressibleByArgument, CaseIterable {
    case all, adapters
}

struct NormsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "norms",
        abstract: "Per-sample gradient norms, clip factors and the clipped sum for the first N examples.",
        discussion: """
            Book-keeping clipping without noise, as a training step would see it. Writes \
            /per_sample_norms [N, K], /clip_factors [N, K], the attribute `groups` (JSON) and \
            /clipped_gradient/<tensor> (dpft shapes: linear weights [out, in]). Prints each \
            group's median and 90th-percentile norm: pick thresholds from them.
            """)

    @Argument(help: "The checkpoint (default with --recipe: the recipe's model).")
    var checkpoint: String?

    @Option(help: "JSON Lines data, any of the four shapes (default with --recipe: its data.train).")
    var data: String?

    @Option(help: "Take model, adapters, data, templates, grouping, clipping, threshold and plugins from this recipe (options given here win).")
    var recipe: String?

    @Option(help: "How many examples, from the start of the file.")
    var examples: Int

    @Option(help: "Grouping strategy (see `dpft plugins list`; default all-layer).")
    var grouping: String?

    @Option(help: "Strategy options as a JSON object, e.g. '{\"allocation\": \"sqrt-size\"}'.")
    var groupingOptions: String?

    @Option(help: "Clip function: abadi (min(1, R/n); the default) or automatic (R/(n + γ)).")
    var clipping: ClippingChoice?

    @Option(help: "γ for automatic clipping (default 0.01).")
    var gamma: Double?

    @Option(help: "Total clipping threshold R, split over groups by the allocation (default 1).")
    var threshold: Double?

    @Option(help: "Train all tensors or only the adapters (default: adapters when the checkpoint has them).")
    var trainable: TrainableChoice?

    @Option(help: "SentencePiece .model or tokenizer.json for {\"text\"} lines (default: the checkpoint's own).")
    var tokenizer: String?

    @Option(help: "Examples per forward/backward pass.")
    var batchSize: Int = 8

    @Option(help: "Output HDF5 file.")
    var output: String

    @OptionGroup var plugins: PluginOptions

    func run() throws {
        guard examples > 0 else { throw ValidationError("--examples must be positive") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive") }
        let loadedRecipe = try recipe.map { try RecipeLocation.find($0, assets: Assets.located()).load() }
        let registry = try plugins.registry(recipePlugins: loadedRecipe?.plugins ?? [])
        guard let checkpoint = checkpoint ?? loadedRecipe?.model.checkpoint else {
            throw ValidationError("give a checkpoint, or --recipe")
        }
        guard let data = data ?? loadedRecipe?.data.train else { throw ValidationError("give --data, or --recipe") }
        let privacy = loadedRecipe?.privacy
        let grouping = grouping ?? (privacy?.rules != nil ? "rules" : privacy?.grouping) ?? "all-layer"
        let options = try groupingOptions.map { try GroupingOptions(json: $0) }
            ?? privacy.map(\.strategy.options) ?? [:]
        let function: ClippingFunction
        switch clipping {
        case .abadi?: function = .abadi
        case .automatic?: function = .automatic(gamma: gamma ?? 0.01)
        case nil: function = privacy?.clipping ?? .abadi
        }
        let threshold = threshold ?? privacy?.threshold ?? 1.0
        var lora: LoRAConfig?
        if case .lora(let config)? = loadedRecipe?.adapter { lora = config }

        let model = try Checkpoint.read(from: URL(fileURLWithPath: checkpoint))
        let tokenizerModel = try loadTokenizer(path: tokenizer ?? loadedRecipe?.model.tokenizer, checkpoint: model,
                                               checkpointPath: checkpoint)
        let loaded = try exampleLoader(recipe: loadedRecipe, tokenizer: tokenizerModel, checkpoint: model)
            .load(path: data, limit: examples)
        let tokenized = loaded.examples
        if loaded.hasDrops { note(loaded.summary(path: data)) }
        if tokenized.count < examples { note("\(data) has only \(tokenized.count) usable examples") }
        let hasAdapters = !model.adapters.isEmpty || lora != nil
        let selection: TrainableSelection = (trainable ?? (hasAdapters ? .adapters : .all)) == .all ? .all : .adapters
        let transformer = try Transformer(checkpoint: model, lora: lora, trainable: selection,
                                          maxBatchSize: min(batchSize, tokenized.count),
                                          maxSequenceLength: tokenized.map(\.ids.count).max()!)
        let resolved = try registry.resolve(
            strategy: grouping, options: options,
            parameters: transformer.trainableParameterInfos, threshold: threshold)
        let report = try PerSampleNormsReport.compute(model: transformer, grouping: resolved, clipping: function,
                                                      examples: tokenized, batchSize: batchSize)
        try report.write(to: URL(fileURLWithPath: output))
        print("\(tokenized.count) examples, \(resolved.groups.count) groups (\(grouping), \(function.name) clipping, "
              + String(format: "total sensitivity %.4g", resolved.totalSensitivity) + ") → \(output)")
        let width = max(5, resolved.groups.map(\.name.count).max() ?? 5)
        print("  " + "group".padding(toLength: width, withPad: " ", startingAt: 0) + "        R_k   median n      p90 n  n > R_k")
        for ((name, median, p90), (k, group)) in zip(report.summary, resolved.groups.enumerated()) {
            let clipped = report.perSampleNorms.filter { $0[k] > group.threshold }.count
            print("  " + name.padding(toLength: width, withPad: " ", startingAt: 0)
                  + String(format: " %10.4g %10.4g %10.4g  %d/%d", group.threshold, median, p90, clipped, tokenized.count))
        }
    }
}
