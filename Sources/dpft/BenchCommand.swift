import ArgumentParser
import DPFT
import Foundation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Micro-benchmarks of the kernels dpft relies on.",
        subcommands: [Gemm.self, Step.self, Noise.self])

    struct Gemm: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "sgemm GFLOP/s for square sizes, with the OpenBLAS core in use.",
            discussion: """
                Unless --no-baseline is given, the same sizes are also measured in a child \
                process forced onto OpenBLAS's generic `Prescott` kernels, so the gain from \
                dpft's automatic core selection is visible in one run.
                """)

        @Option(name: .long, parsing: .upToNextOption, help: "Matrix sizes to time.")
        var sizes: [Int] = [512, 1024, 2048]

        @Option(help: "Timed repetitions per size (the best is reported).")
        var repeats: Int = 3

        @Flag(help: "Skip the Prescott baseline measurement.")
        var noBaseline = false

        @Flag(help: "Print JSON instead of a table.")
        var json = false

        func run() throws {
            guard sizes.allSatisfy({ $0 > 0 && $0 <= 16384 }) else {
                throw ValidationError("--sizes must be between 1 and 16384")
            }
            let results = try GemmBenchmark.run(sizes: sizes, repeats: repeats)
            let core = BLAS.coreName
            var baseline: [GemmBenchmark.Result]? = nil
            if !noBaseline && core != "Prescott" {
                baseline = try measureBaseline()
            }
            if json {
                var object: [String: Any] = [
                    "core": core, "threads": BLAS.threadCount,
                    "results": results.map { ["size": $0.size, "gflops": $0.gflops] },
                ]
                if let baseline {
                    object["baseline_core"] = "Prescott"
                    object["baseline_results"] = baseline.map { ["size": $0.size, "gflops": $0.gflops] }
                }
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            let source = BLAS.coreTypeChosenByDPFT ? "chosen by dpft from CPU flags"
                : (ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].map { "OPENBLAS_CORETYPE=\($0) set by user" } ?? "OpenBLAS's own detection")
            print("OpenBLAS core: \(core) (\(source)), \(BLAS.threadCount) threads")
            for (index, result) in results.enumerated() {
                var line = "  sgemm \(result.size)×\(result.size): \(String(format: "%7.1f", result.gflops)) GFLOP/s"
                if let baseline, index < baseline.count {
                    line += String(format: "   Prescott: %6.1f GFLOP/s   speed-up %.1f×",
                                   baseline[index].gflops, result.gflops / baseline[index].gflops)
                }
                print(line)
            }
        }

        /// Runs this command again in a child process pinned to the Prescott kernels.
        private func measureBaseline() throws -> [GemmBenchmark.Result] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/proc/self/exe")
            if !FileManager.default.fileExists(atPath: "/proc/self/exe") {
                process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            }
            process.arguments = ["bench", "gemm", "--no-baseline", "--json", "--repeats", String(repeats), "--sizes"] + sizes.map(String.init)
            var environment = ProcessInfo.processInfo.environment
            environment["OPENBLAS_CORETYPE"] = "Prescott"
            process.environment = environment
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            struct Row: Decodable { var size: Int; var gflops: Double }
            struct Raw: Decodable { var core: String; var results: [Row] }
            let raw = try JSONDecoder().decode(Raw.self, from: data)
            return raw.results.map { GemmBenchmark.Result(size: $0.size, seconds: 2 * Double($0.size * $0.size * $0.size) / $0.gflops / 1e9, gflops: $0.gflops) }
        }
    }

    struct Step: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time training steps (the recipe runner's TrainingStep, with SGD) on random tokens.",
            discussion: """
                Non-private unless --private is given. Every step takes all B examples in one \
                micro-batch (a private step samples them at q = 1). The default is DESIGN.md §8's \
                reference GPT: gpt2, d=256, 4 layers, 4 heads, vocab 8192, T=128, B=16.
                """)

        @Option(help: "Model config.json (random weights).")
        var config: String = "recipes/models/gpt2-reference.json"

        @Option(help: "Examples per step (B).")
        var batchSize: Int = 16

        @Option(help: "Tokens per example (T).")
        var sequenceLength: Int = 128

        @Option(help: "Timed steps (after one warm-up step; default 5).")
        var steps: Int?

        @Option(help: "Train LoRA adapters of this rank on all attention and MLP modules instead of every weight.")
        var loraRank: Int?

        @Option(help: "Make the step private with this grouping strategy (e.g. all-layer, layer-wise, per-block): book-keeping clipping, noise σ = 1.")
        var `private`: String?

        @Option(help: "Options of the --private strategy as a JSON object, e.g. '{\"budget\": 65536}'.")
        var groupingOptions: String = "{}"

        @Option(help: "Clip function for --private: abadi or automatic.")
        var clipping: ClippingChoice = .abadi

        @Flag(help: "Recompute each block's activations in the backward pass (training.recompute_activations): less memory, one more forward pass.")
        var recomputeActivations = false

        @Option(help: ArgumentHelp("Processes sharing each step (data-parallel over Open MPI): runs itself under `mpirun -np N`.",
                                   discussion: "Each process then uses --threads threads (default: the cores divided by N)."))
        var ranks: Int = 1

        @Option(help: "Threads for BLAS and dpft's own loops (default: every core, at most 8).")
        var threads: Int?

        @Option(help: ArgumentHelp("Instead of timing one configuration, time this private one against the non-private step, taking turns on one model: GROUPING or GROUPING:automatic (repeatable).",
                                   discussion: "Each round runs one step of every configuration; the ratio reported is the median over rounds of each round's private step over its non-private step.",
                                   valueName: "grouping[:clipping]"))
        var compare: [String] = []

        @Option(help: "Timed rounds of --compare (after one warm-up round; default 5).")
        var rounds: Int?

        @OptionGroup var plugins: PluginOptions

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            guard batchSize > 0, sequenceLength > 0, (steps ?? 1) > 0, ranks > 0, (rounds ?? 1) > 0, (threads ?? 1) > 0 else {
                throw ValidationError("--batch-size, --sequence-length, --steps, --rounds, --ranks and --threads must be positive")
            }
            if !compare.isEmpty { return try runComparison() }
            guard rounds == nil else { throw ValidationError("--rounds counts the rounds of --compare; time one configuration with --steps") }
            let steps = self.steps ?? 5
            let world = try Communicator.world()
            if ranks > 1 && world.size == 1 { return try runUnderMPIRun() }
            applyThreads()
            let modelConfig = try ModelConfig(contentsOf: URL(fileURLWithPath: config))
            let lora = loraRank.map { LoRAConfig(rank: $0, alpha: Double(2 * $0), targets: modelConfig.adaptableModuleNames) }
            let result = try StepBenchmark.run(config: modelConfig, batchSize: batchSize,
                                               sequenceLength: sequenceLength, steps: steps, lora: lora,
                                               grouping: `private`, groupingOptions: try GroupingOptions(json: groupingOptions),
                                               registry: try plugins.registry(), clipping: clipping == .abadi ? .abadi : .automatic(gamma: 0.01),
                                               communicator: world, recomputesActivations: recomputeActivations)
            if world.isRoot { try report(result, modelConfig: modelConfig) }
        }

        private func report(_ result: StepBenchmark.Result, modelConfig: ModelConfig) throws {
            if json {
                let object: [String: Any] = ["seconds_per_step": result.medianSeconds, "tokens_per_second": result.tokensPerSecond,
                                             "steps": result.secondsPerStep, "trainable_parameters": result.trainableParameters,
                                             "model_parameters": modelConfig.parameterCount ?? 0,
                                             "batch_size": batchSize, "sequence_length": sequenceLength, "lora_rank": loraRank as Any,
                                             "private": `private` as Any, "peak_book_bytes": result.peakBookBytes,
                                             "recompute_activations": recomputeActivations,
                                             "ranks": result.ranks, "threads": Parallel.threadCount,
                                             "gradient_bytes_per_step": result.gradientBytesPerStep,
                                             "gradient_seconds_per_step": result.gradientSecondsPerStep,
                                             "noise_seconds": result.noiseSeconds,
                                             "noise_share": result.medianNoiseShare as Any]
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
                return
            }
            let kind = `private`.map { "private \($0) (\(clipping.rawValue))" } ?? "non-private"
            let processes = result.ranks > 1
                ? String(format: ", %d ranks × %d threads, %.1f MiB reduced+broadcast in %.3f s", result.ranks, Parallel.threadCount,
                         Double(result.gradientBytesPerStep) / 1_048_576, result.gradientSecondsPerStep) : ""
            print("dpft \(kind) step (\(modelConfig.modelType.rawValue), B=\(batchSize), T=\(sequenceLength)"
                  + (loraRank.map { ", LoRA r=\($0)" } ?? ", full") + (recomputeActivations ? ", recomputed activations" : "")
                  + ", \(result.trainableParameters) trainable): "
                  + String(format: "%.3f s/step (median of %d), %.0f tokens/s", result.medianSeconds, result.secondsPerStep.count, result.tokensPerSecond)
                  + (`private` != nil ? String(format: ", peak books %.1f MiB", Double(result.peakBookBytes) / 1_048_576) : "")
                  + (result.medianNoiseShare.map { String(format: ", noise %.1f%% of the step", 100 * $0) } ?? "")
                  + processes)
        }

        /// `--compare`: the private variants against the non-private step, in turns on one model.
        private func runComparison() throws {
            guard `private` == nil, ranks == 1, !recomputeActivations, groupingOptions == "{}", steps == nil else {
                throw ValidationError("--compare times its own private configurations in rounds in one process: drop --private, --grouping-options, --ranks, --recompute-activations and --steps (use --rounds)")
            }
            let rounds = self.rounds ?? 5
            let variants = try compare.map(Self.variant)
            applyThreads()
            let modelConfig = try ModelConfig(contentsOf: URL(fileURLWithPath: config))
            let lora = loraRank.map { LoRAConfig(rank: $0, alpha: Double(2 * $0), targets: modelConfig.adaptableModuleNames) }
            let comparison = try StepBenchmark.compare(config: modelConfig, batchSize: batchSize, sequenceLength: sequenceLength,
                                                       rounds: rounds, lora: lora, privateVariants: variants,
                                                       registry: try plugins.registry())
            try report(comparison, names: ["non-private"] + compare, modelConfig: modelConfig)
        }

        private func report(_ comparison: StepBenchmark.Comparison, names: [String], modelConfig: ModelConfig) throws {
            if json {
                let object: [String: Any] = [
                    "variants": names, "seconds": comparison.seconds, "rounds": comparison.seconds.count,
                    "median_seconds": names.indices.map(comparison.medianSeconds),
                    "median_ratios": names.indices.map(comparison.medianRatio),
                    "batch_size": batchSize, "sequence_length": sequenceLength, "lora_rank": loraRank as Any,
                    "threads": Parallel.threadCount]
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
                return
            }
            print("dpft steps in turns (\(modelConfig.modelType.rawValue), B=\(batchSize), T=\(sequenceLength)"
                  + (loraRank.map { ", LoRA r=\($0)" } ?? ", full") + ", \(comparison.seconds.count) rounds after one warm-up round):")
            for (v, name) in names.enumerated() {
                let ratios = comparison.ratios(v)
                print("  " + name.padding(toLength: max(name.count, 22), withPad: " ", startingAt: 0)
                      + String(format: " %7.3f s/step (median)", comparison.medianSeconds(v))
                      + (v == 0 ? "" : String(format: "  ratio %.3f (median; rounds %.3f–%.3f)", comparison.medianRatio(v),
                                              ratios.min()!, ratios.max()!)))
            }
        }

        /// --threads for BLAS and dpft's own loops, when given.
        private func applyThreads() {
            guard let threads else { return }
            Parallel.threadCount = threads
            BLAS.threadCount = threads
        }

        /// "all-layer" or "all-layer:automatic" (γ = 0.01, as --clipping automatic).
        static func variant(_ text: String) throws -> StepBenchmark.Variant {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
            guard parts.count <= 2, !parts[0].isEmpty else {
                throw ValidationError("--compare \(text): expected GROUPING or GROUPING:CLIPPING, e.g. all-layer or all-layer:automatic")
            }
            guard parts.count == 2 else { return .init(grouping: parts[0]) }
            guard let clipping = ClippingChoice(rawValue: parts[1]) else {
                throw ValidationError("--compare \(text): unknown clipping \"\(parts[1])\"; use abadi or automatic")
            }
            return .init(grouping: parts[0], clipping: clipping == .abadi ? .abadi : .automatic(gamma: 0.01))
        }

        /// Runs this command again under `mpirun -np ranks` (root allowed, ranks may outnumber
        /// cores), each process with `threads` threads (default: the cores divided by the ranks).
        private func runUnderMPIRun() throws {
            var arguments = Array(CommandLine.arguments.dropFirst())
            if let index = arguments.firstIndex(of: "--ranks") { arguments.removeSubrange(index...(index + 1)) }
            arguments.removeAll { $0.hasPrefix("--ranks=") }
            if threads == nil {
                arguments += ["--threads", String(max(1, ProcessInfo.processInfo.activeProcessorCount / ranks))]
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["mpirun", "-np", String(ranks), "--oversubscribe", "--bind-to", "none",
                                 "--allow-run-as-root", Bundle.main.executablePath ?? CommandLine.arguments[0]] + arguments
            try process.run()
            process.waitUntilExit()
            if process.terminationStatus != 0 {
                throw ValidationError("mpirun -np \(ranks) failed (exit status \(process.terminationStatus)); is Open MPI installed (`make bench` installs it)?")
            }
        }
    }

    struct Noise: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Time the DP noise (AES-256-CTR keystream, snapped grid Gaussian) of one private step.",
            discussion: """
                Each timed call adds σ = 1 noise to --coordinates zeros on all threads, as a private \
                step does once. The default is the reference GPT's trainable count in full \
                fine-tuning; `make bench` passes the count its private step reports.
                """)

        @Flag(help: "Print JSON.")
        var json = false

        @Option(help: "Coordinates per call.")
        var coordinates: Int = 5_289_472

        @Option(help: "Timed calls after one warm-up call; the median is reported.")
        var repeats: Int = 15

        func validate() throws {
            if coordinates < 1 || repeats < 1 { throw ValidationError("--coordinates and --repeats must be at least 1") }
        }

        func run() throws {
            let result = NoiseBenchmark.run(coordinates: coordinates, repeats: repeats)
            if json {
                let object: [String: Any] = ["noise_seconds": result.medianSeconds, "coordinates": coordinates,
                                             "threads": Parallel.threadCount, "seconds": result.seconds,
                                             "nanoseconds_per_draw": result.medianSeconds / Double(coordinates) * 1e9,
                                             "cpu_nanoseconds_per_draw": result.cpuNanosecondsPerDraw,
                                             "keystream": NoiseSource.keystreamImplementation]
                print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
                return
            }
            print(String(format: "dpft noise: %d coordinates, %.1f ms per call (median of %d, %d threads), %.2f ns per draw, %.2f CPU ns per draw",
                         coordinates, result.medianSeconds * 1e3, repeats, Parallel.threadCount,
                         result.medianSeconds / Double(coordinates) * 1e9, result.cpuNanosecondsPerDraw)
                  + ", keystream \(NoiseSource.keystreamImplementation)")
        }
    }
}
