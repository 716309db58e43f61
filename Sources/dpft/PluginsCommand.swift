import ArgumentParser
import DPFT
import Foundation

struct PluginsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins",
        abstract: "List grouping strategies and preview the groups one makes on a checkpoint.",
        discussion: """
            A grouping strategy partitions the trainable tensors into clipping groups, each with \
            its own threshold R_k (DESIGN.md §3, §4). Every strategy also takes the options \
            `allocation` ("uniform": R/√K, "sqrt-size": R·√(n_k/Σn), "explicit") and \
            `thresholds` ({group: R_k}).
            """,
        subcommands: [List.self, Show.self])

    enum TrainableArgument: String, CaseIterable, ExpressibleByArgument {
        case all, adapters
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the grouping strategies with their options and defaults.")

        @Flag(help: "Print JSON instead of text.")
        var json = false

        @OptionGroup var plugins: PluginOptions

        func run() throws {
            let registry = try plugins.registry()
            if json {
                let listing = Listing(
                    strategies: registry.entries.map { entry in
                        Listing.Strategy(name: entry.strategy.name, summary: entry.strategy.summary,
                                         origin: entry.origin.description,
                                         options: entry.strategy.options.map(Listing.Option.init))
                    },
                    commonOptions: ThresholdAllocation.commonOptions.map(Listing.Option.init))
                print(try PluginsCommand.jsonText(listing))
                return
            }
            func describe(_ option: GroupingOptionSpec) -> String {
                let requirement = option.isRequired ? "required" : option.defaultValue.map { "default \($0)" } ?? "optional"
                return "      \(option.name): \(option.type) (\(requirement)) — \(option.description)"
            }
            let width = registry.names.map(\.count).max() ?? 0
            for entry in registry.entries {
                let strategy = entry.strategy
                let origin = entry.origin == .builtIn ? "" : " [\(entry.origin)]"
                print("  \(strategy.name.padding(toLength: width, withPad: " ", startingAt: 0))  \(strategy.summary)\(origin)")
                for option in strategy.options { print(describe(option)) }
            }
            print("\nOptions of every strategy:")
            for option in ThresholdAllocation.commonOptions { print(describe(option)) }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the groups, thresholds and member tensors a strategy makes for a checkpoint.",
            discussion: """
                Example: dpft plugins show lora-only --checkpoint model.h5 --lora-rank 8 \
                --lora-targets q_proj,v_proj --options '{"per": "block", "allocation": "sqrt-size"}'
                """)

        @Argument(help: "The strategy name (see `dpft plugins list`).")
        var name: String

        @Option(help: "The dpft checkpoint (HDF5) whose tensors are grouped.")
        var checkpoint: String

        @Option(help: "The strategy's options as a JSON object, e.g. '{\"per\": \"block\"}'.")
        var options: String = "{}"

        @Option(help: "Total clipping threshold R split among the groups.")
        var threshold: Double = 1.0

        @Option(help: "Which tensors are trained: all or adapters (default: adapters when there are LoRA adapters, else all).")
        var trainable: TrainableArgument?

        @Option(help: "Preview with fresh LoRA adapters of this rank (for a checkpoint without adapters).")
        var loraRank: Int?

        @Option(help: "Comma-separated module names the preview adapters target, e.g. q_proj,v_proj.")
        var loraTargets: String?

        @Flag(help: "Print JSON instead of text.")
        var json = false

        @OptionGroup var plugins: PluginOptions

        func run() throws {
            let registry = try plugins.registry()
            let model = try Checkpoint.read(from: URL(fileURLWithPath: checkpoint))
            var lora = try model.loraConfig()
            switch (loraRank, loraTargets) {
            case (nil, nil): break
            case (let rank?, let targets?):
                guard lora == nil else {
                    throw ValidationError("\(checkpoint) already has LoRA adapters (rank \(lora!.rank), targets \(lora!.targets.joined(separator: ","))); drop --lora-rank and --lora-targets")
                }
                let names = targets.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                lora = LoRAConfig(rank: rank, alpha: Double(rank), targets: names)
            default:
                throw ValidationError("--lora-rank and --lora-targets go together (available targets: \(model.config.adaptableModuleNames.joined(separator: ",")))")
            }
            if trainable == .adapters && lora == nil {
                throw ValidationError("--trainable adapters needs LoRA adapters: the checkpoint has none; add --lora-rank and --lora-targets")
            }
            let selection: TrainableSelection? = trainable.map { $0 == .all ? .all : .adapters }
            let parameters = try model.config.trainableParameterInfos(lora: lora, trainable: selection)
            let grouping = try registry.resolve(
                strategy: name, options: try GroupingOptions(json: options), parameters: parameters, threshold: threshold)

            let infoByName = Dictionary(uniqueKeysWithValues: parameters.map { ($0.name, $0) })
            let sizes = grouping.groups.map { $0.parameters.reduce(0) { $0 + infoByName[$1]!.count } }
            if json {
                let preview = Preview(
                    strategy: grouping.strategy, totalSensitivity: grouping.totalSensitivity,
                    groups: zip(grouping.groups, sizes).map {
                        Preview.Group(name: $0.name, threshold: $0.threshold, parameters: $0.parameters, size: $1)
                    })
                print(try PluginsCommand.jsonText(preview))
                return
            }
            let total = sizes.reduce(0, +)
            print("strategy \(grouping.strategy), allocation \(grouping.allocation.rawValue): \(grouping.groups.count) groups, "
                  + "\(parameters.count) trainable tensors, \(total) parameters")
            let source = grouping.allocation == .explicit ? "explicit thresholds" : "R = \(format(threshold))"
            print("total sensitivity √(Σ R_k²) = \(format(grouping.totalSensitivity)) (\(source))")
            for (group, size) in zip(grouping.groups, sizes) {
                print("\n\(group.name)  R_k = \(format(group.threshold))  \(group.parameters.count) tensors, \(size) parameters")
                for parameter in group.parameters {
                    let info = infoByName[parameter]!
                    let tied = info.isTiedHead ? "  (also the LM head)" : ""
                    print("    \(parameter)  [\(info.shape.map(String.init).joined(separator: ", "))]  \(info.count)\(tied)")
                }
            }
        }

        private func format(_ value: Double) -> String { String(format: "%.6g", value) }
    }

    /// `plugins list --json`.
    struct Listing: Encodable {
        struct Option: Encodable {
            var name: String
            var type: String
            var defaultValue: GroupingOptionValue?
            var required: Bool
            var description: String

            init(_ spec: GroupingOptionSpec) {
                name = spec.name
                type = spec.type.description
                defaultValue = spec.defaultValue
                required = spec.isRequired
                description = spec.description
            }

            enum CodingKeys: String, CodingKey { case name, type, defaultValue = "default", required, description }

            func encode(to encoder: Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(name, forKey: .name)
                try container.encode(type, forKey: .type)
                try container.encode(defaultValue ?? .null, forKey: .defaultValue)  // null, not absent
                try container.encode(required, forKey: .required)
                try container.encode(description, forKey: .description)
            }
        }
        struct Strategy: Encodable {
            var name: String
            var summary: String
            var origin: String
            var options: [Option]
        }
        var strategies: [Strategy]
        var commonOptions: [Option]

        enum CodingKeys: String, CodingKey { case strategies, commonOptions = "common_options" }
    }

    /// `plugins show --json`.
    struct Preview: Encodable {
        struct Group: Encodable {
            var name: String
            var threshold: Double
            var parameters: [String]
            /// Scalars in the group.
            var size: Int
        }
        var strategy: String
        var totalSensitivity: Double
        var groups: [Group]

        enum CodingKeys: String, CodingKey { case strategy, totalSensitivity = "total_sensitivity", groups }
    }

    static func jsonText(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}
