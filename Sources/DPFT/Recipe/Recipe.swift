import Crypto
import Foundation

/// A training recipe (`dpft recipe RECIPE.json [--set key.path=value ...]`): every choice of a
/// run — base model, adapter, data, privacy, training, output — written as data.
///
/// A recipe is a JSON object read strictly: an unknown key is an error that names its full key
/// path and the closest known key; a wrong type or an out-of-range value is an error that names
/// the key path, the value and what is allowed; a key that does not apply to the chosen variant
/// (e.g. `momentum` for Adam) is an error too, so that no setting is silently ignored. Keys left
/// out take the defaults documented on each property; `null` on an optional key or a key with a
/// default means the same as leaving it out. Relative paths stay as written (the runner resolves
/// them against the current directory).
///
/// `resolvedJSON` is the recipe with every default filled in, which the runner prints at start
/// and saves in the run directory; loading it again gives an equal recipe. `hash` identifies it
/// in the privacy ledger.
public struct Recipe: Sendable, Equatable {
    /// The run's name (`"name"`); default: the recipe file's name without extension. No `/`.
    public var name: String
    /// What the recipe is for, in a sentence (`"description"`); default nil. JSON has no
    /// comments, so this is where a built-in recipe explains itself.
    public var description: String?
    /// The base model (`"model"`, required).
    public var model: ModelSection
    /// What is trained (`"adapter"`); default `{"type": "none"}`: full fine-tuning.
    public var adapter: AdapterSection
    /// The training and evaluation data (`"data"`, required).
    public var data: DataSection
    /// Differential privacy (`"privacy"`, required); nil = non-private training, which a recipe
    /// must ask for explicitly with `"privacy": null` so that nobody trains non-privately by
    /// accident.
    public var privacy: PrivacySection?
    /// Length, batches, optimizer and schedule (`"training"`, required: it holds `batch_size`).
    public var training: TrainingSection
    /// Where the run writes (`"output"`); default `{"directory": "runs/<name>"}`.
    public var output: OutputSection
    /// Shared libraries that register grouping strategies (`"plugins"`); default `[]`.
    public var plugins: [String]

    /// A recipe built in code; `output` defaults to `runs/<name>`.
    public init(name: String, description: String? = nil, model: ModelSection, adapter: AdapterSection = .none,
                data: DataSection, privacy: PrivacySection?, training: TrainingSection, output: OutputSection? = nil,
                plugins: [String] = []) {
        self.name = name
        self.description = description
        self.model = model
        self.adapter = adapter
        self.data = data
        self.privacy = privacy
        self.training = training
        self.output = output ?? OutputSection(directory: OutputSection.defaultDirectory(for: name))
        self.plugins = plugins
    }

    // MARK: Loading

    /// Reads the recipe at `url`, applies `overrides` (`key.path=value`, in order) and
    /// validates it. Errors name the file (`url.relativePath`) and, for an error in an
    /// overridden key, the override.
    public static func load(from url: URL, overrides: [String] = []) throws -> Recipe {
        let file = url.relativePath
        let data: Data
        do {
            data = try FileProblem.contents(ofFile: url.path)
        } catch {
            throw RecipeError.unreadable(file: file, reason: error.reason)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw RecipeError.notJSON(file: file, reason: "the file is not UTF-8 text")
        }
        return try parse(json: text, file: file, overrides: overrides)
    }

    /// Parses recipe text as if read from `file`, whose name without extension is the default
    /// `name`; applies `overrides` and validates.
    public static func parse(json text: String, file: String = "recipe.json", overrides: [String] = []) throws -> Recipe {
        let defaultName = URL(fileURLWithPath: file).deletingPathExtension().lastPathComponent
        return try RecipeResolution.recipe(from: text, file: file, defaultName: defaultName, overrides: overrides)
    }

    /// Every key path a recipe may hold (objects and leaves), e.g. `training.optimizer.beta1`.
    /// The contents of `privacy.grouping_options` belong to the grouping strategy and are not
    /// listed.
    public static var knownKeys: [String] { RecipeSchema.allKeyPaths }

    /// One line per key, from the key table (Recipe/RecipeKeys.swift): its path, what it
    /// takes, its default (or "required") and what it means.
    public static var keyReference: String { RecipeKeys.reference }

    // MARK: Resolved form

    /// The recipe with every default filled in: pretty JSON, keys sorted, two-space indent, no
    /// trailing newline. Optional settings that are unset appear as `null`; of two
    /// alternatives (`epochs`/`steps`, `target_epsilon`/`noise_multiplier`) only the one in use
    /// appears, and keys that do not apply to the chosen variant are left out.
    public var resolvedJSON: String {
        RecipeResolution.resolvedJSON(of: self).text(Self.resolvedStyle)
    }

    /// How `resolvedJSON` and `hashedJSON` are written: one style, so that a recipe without
    /// the keys outside the hash hashes its resolved text exactly.
    private static let resolvedStyle = JSONStyle.pretty(indent: 2, inlineArrayWidth: 72)

    /// SHA-256 of `hashedJSON` (UTF-8), as 64 lowercase hex digits: what the ledger publishes
    /// and what `--resume` compares.
    public var hash: String {
        SHA256.hash(data: Data(hashedJSON.utf8)).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }

    /// `resolvedJSON` with a set `privacy.noise_seed` replaced by 0 and the keys of
    /// `keysOutsideTheHash` left out. The ledger publishes the hash, and a hash over a guessable
    /// seed would give the seed away to anyone trying seeds, so it depends only on whether the
    /// run is seeded, not on the seed. A `--resume` with another seed is therefore not caught:
    /// nothing the run writes could catch it without recording something derived from the seed.
    var hashedJSON: String {
        var masked = self
        if masked.privacy?.noiseSeed != nil { masked.privacy!.noiseSeed = 0 }
        return RecipeResolution.resolvedJSON(of: masked, leavingOut: Self.keysOutsideTheHash).text(Self.resolvedStyle)
    }

    /// Keys that change how a run uses memory and time but never what it computes:
    /// `training.recompute_activations` gives bit-identical gradients, so a run may resume with
    /// it switched (say, after running out of memory), and recipes hash as they did before the
    /// key existed.
    static let keysOutsideTheHash: Set = ["training.recompute_activations"]
}

// MARK: - Sections

extension Recipe {
    /// `"model"`: the base checkpoint and its tokenizer.
    public struct ModelSection: Sendable, Equatable {
        /// `"checkpoint"` (required): a dpft HDF5 checkpoint (`dpft init` / `dpft import`).
        public var checkpoint: String
        /// `"tokenizer"`: a SentencePiece `.model` or a Hugging Face `tokenizer.json`; default nil = the one stored in the checkpoint.
        public var tokenizer: String?

        public init(checkpoint: String, tokenizer: String? = nil) {
            self.checkpoint = checkpoint
            self.tokenizer = tokenizer
        }
    }

    /// `"adapter"`: which tensors are trained. JSON: `{"type": "none"}` (default),
    /// `{"type": "lora", "rank": 8, "alpha": 16, "targets": ["q_proj", "v_proj"]}` (all three
    /// required) or `{"type": "patterns", "trainable": ["*.ln_*", "lm_head.*"]}`.
    public enum AdapterSection: Sendable, Equatable {
        /// Full fine-tuning: every tensor is trained.
        case none
        /// LoRA on the linear modules whose last name component is one of the targets
        /// (rank ≥ 1, alpha > 0, targets non-empty); only the LoRA tensors are trained.
        case lora(LoRAConfig)
        /// Only the tensors whose HF names match one of these glob patterns (`*` any run of
        /// characters, dots included; `?` one character) are trained; non-empty.
        case patterns([String])

        /// The JSON `"type"`.
        public var type: String {
            switch self {
            case .none: return "none"
            case .lora: return "lora"
            case .patterns: return "patterns"
            }
        }
    }

    /// `"data"`: JSON Lines files of examples (DESIGN.md §7) and how they become tokens.
    public struct DataSection: Sendable, Equatable {
        /// The shape of a data file's lines.
        public enum Format: String, Sendable, CaseIterable {
            /// Decided per line from its keys.
            case auto
            /// `{"instruction", "input"?, "output"}`.
            case alpaca
            /// `{"messages": [{"role", "content"}, …]}`.
            case chat
            /// `{"text"}`: every token is trained on.
            case text
            /// `{"input_ids", "labels"?}`: pre-tokenized.
            case tokens
        }

        /// Which tokens of instruction and chat examples the loss covers.
        public enum TrainOn: String, Sendable, CaseIterable {
            /// The response (assistant) tokens only.
            case response
            /// Every token, prompt included.
            case all
        }

        /// What a line that does not parse or fit the format does.
        public enum MalformedLinePolicy: String, Sendable, CaseIterable {
            /// Skip it, counting skipped lines in the run log.
            case skip
            /// Stop with an error naming file and line.
            case stop
        }

        /// How an instruction example becomes text: `{instruction}`, `{input}` and `{output}`
        /// are replaced by the example's fields. JSON: `"alpaca"` (the built-in) or
        /// `{"prompt": "…{instruction}…{input}…", "prompt_no_input": "…{instruction}…",
        /// "response": "{output}"}` (all three required).
        public struct InstructionTemplate: Sendable, Equatable {
            /// For examples with a non-empty `input`; must contain `{instruction}` and `{input}`.
            public var prompt: String
            /// For examples without `input`; must contain `{instruction}` and not `{input}`.
            public var promptNoInput: String
            /// The trained-on part; must contain `{output}`.
            public var response: String

            public init(prompt: String, promptNoInput: String, response: String) {
                self.prompt = prompt
                self.promptNoInput = promptNoInput
                self.response = response
            }

            /// The Stanford Alpaca template (written `"alpaca"` in a recipe): the data layer's
            /// `InstructionTemplate.alpaca`, so the text lives in one place.
            public static let alpaca = InstructionTemplate(
                prompt: DPFT.InstructionTemplate.alpaca.prompt, promptNoInput: DPFT.InstructionTemplate.alpaca.promptNoInput,
                response: DPFT.InstructionTemplate.alpaca.response)
        }

        /// How a chat message becomes text: `{content}` is replaced by the message's content.
        /// JSON: `{"system": …, "user": …, "assistant": …}`, each optional with the default
        /// below and each containing `{content}`.
        public struct ChatTemplate: Sendable, Equatable {
            /// Default `"<|system|>\n{content}\n"`.
            public var system: String
            /// Default `"<|user|>\n{content}\n"`.
            public var user: String
            /// Default `"<|assistant|>\n{content}\n"`; the trained-on part.
            public var assistant: String

            public init(system: String = "<|system|>\n{content}\n", user: String = "<|user|>\n{content}\n",
                        assistant: String = "<|assistant|>\n{content}\n") {
                self.system = system
                self.user = user
                self.assistant = assistant
            }
        }

        /// The encoder these settings describe (templates, BOS/EOS, label masking), cutting
        /// examples to `min(max_length, maxPositions)`.
        public func exampleEncoder(tokenizer: Tokenizer, maxPositions: Int? = nil) throws -> ExampleEncoder {
            try ExampleEncoder(
                tokenizer: tokenizer,
                instructionTemplate: try DPFT.InstructionTemplate(prompt: template.prompt, promptNoInput: template.promptNoInput,
                                                                  response: template.response),
                chatTemplate: try DPFT.ChatTemplate(formats: ["system": chatTemplate.system, "user": chatTemplate.user,
                                                              "assistant": chatTemplate.assistant]),
                addBOS: addBOS, addEOS: addEOS, trainOn: trainOn == .response ? .response : .all,
                maxLength: min(maxLength, maxPositions ?? maxLength))
        }

        /// `"train"` (required): the training examples (JSON Lines).
        public var train: String
        /// `"eval"`: held-out examples for loss, perplexity and generation; default nil = none.
        public var eval: String?
        /// `"format"`: default `.auto`.
        public var format: Format
        /// `"template"`: default `"alpaca"`.
        public var template: InstructionTemplate
        /// `"chat_template"`: default `ChatTemplate()`.
        public var chatTemplate: ChatTemplate
        /// `"max_length"`: tokens per example, longer ones truncated; default 256, in 8...65536.
        public var maxLength: Int
        /// `"train_on"`: default `.response`.
        public var trainOn: TrainOn
        /// `"on_malformed"`: default `.stop`.
        public var onMalformed: MalformedLinePolicy
        /// `"add_bos"`: prepend the tokenizer's BOS; default true.
        public var addBOS: Bool
        /// `"add_eos"`: append the tokenizer's EOS; default true.
        public var addEOS: Bool

        public init(train: String, eval: String? = nil, format: Format = .auto, template: InstructionTemplate = .alpaca,
                    chatTemplate: ChatTemplate = ChatTemplate(), maxLength: Int = 256, trainOn: TrainOn = .response,
                    onMalformed: MalformedLinePolicy = .stop, addBOS: Bool = true, addEOS: Bool = true) {
            self.train = train
            self.eval = eval
            self.format = format
            self.template = template
            self.chatTemplate = chatTemplate
            self.maxLength = maxLength
            self.trainOn = trainOn
            self.onMalformed = onMalformed
            self.addBOS = addBOS
            self.addEOS = addEOS
        }
    }

    /// `"privacy"`: DP-SGD with book-keeping clipping (DESIGN.md §3–5).
    public struct PrivacySection: Sendable, Equatable {
        /// How much noise: JSON `"target_epsilon"` or `"noise_multiplier"`, exactly one.
        public enum Noise: Sendable, Equatable {
            /// `"target_epsilon"` > 0: σ is calibrated so that the whole run spends this ε at
            /// `delta`.
            case targetEpsilon(Double)
            /// `"noise_multiplier"` > 0: σ as given (σ = 0 is refused: it spends ε = ∞; a run
            /// without privacy says `"privacy": null`).
            case noiseMultiplier(Double)
        }

        /// How logical batches are drawn.
        public enum Sampling: String, Sendable, CaseIterable {
            /// Each example joins each batch independently with probability q (the accountants
            /// assume this).
            case poisson
        }

        /// Exactly one of `"target_epsilon"` and `"noise_multiplier"`.
        public var noise: Noise
        /// `"delta"`: default 1e-5, in (0, 1).
        public var delta: Double
        /// `"accountant"`: `"prv"` (default) or `"rdp"`.
        public var accountant: Accountant
        /// `"clipping"`: `"automatic"` (default) or `"abadi"`; `"gamma"` (default 0.01, > 0)
        /// is the stability constant of automatic clipping and may only be written with it.
        public var clipping: ClippingFunction
        /// `"threshold"`: total clipping threshold R; default 1.0, > 0.
        public var threshold: Double
        /// `"grouping"`: a grouping strategy name (`dpft plugins list`); default `"all-layer"`.
        /// `"rules"` when `rules` is given.
        public var grouping: String
        /// `"grouping_options"`: the strategy's options; default `{}`. Holds `"file"` when
        /// `rules` is given. Checked by the grouping registry, not here.
        public var groupingOptions: GroupingOptions
        /// `"rules"`: a rule file; shorthand for `"grouping": "rules"` with option `"file"`.
        /// Default nil.
        public var rules: String?
        /// `"noise_seed"`: an integer in 0...2^64−1 makes the noise reproducible (and the
        /// ledger records that it was seeded); default nil = secure randomness from the OS.
        public var noiseSeed: UInt64?
        /// `"sampling"`: `"poisson"` (the only value, and the default).
        public var sampling: Sampling

        public init(noise: Noise, delta: Double = 1e-5, accountant: Accountant = .prv,
                    clipping: ClippingFunction = .automatic(gamma: 0.01), threshold: Double = 1.0,
                    grouping: String = "all-layer", groupingOptions: GroupingOptions = [:], rules: String? = nil,
                    noiseSeed: UInt64? = nil, sampling: Sampling = .poisson) {
            self.noise = noise
            self.delta = delta
            self.accountant = accountant
            self.clipping = clipping
            self.threshold = threshold
            self.grouping = grouping
            self.groupingOptions = groupingOptions
            self.rules = rules
            self.noiseSeed = noiseSeed
            self.sampling = sampling
        }

        /// The target ε, when the recipe gives one.
        public var targetEpsilon: Double? {
            if case .targetEpsilon(let epsilon) = noise { return epsilon }
            return nil
        }

        /// The noise multiplier σ, when the recipe gives it directly.
        public var noiseMultiplier: Double? {
            if case .noiseMultiplier(let sigma) = noise { return sigma }
            return nil
        }

        /// The grouping strategy to resolve and the options it gets: `grouping` with
        /// `groupingOptions`, or, when `rules` is set, `"rules"` with `groupingOptions` plus
        /// `"file": rules` (every other option, such as `allocation`, kept).
        public var strategy: (name: String, options: GroupingOptions) {
            guard let rules else { return (grouping, groupingOptions) }
            var options = groupingOptions
            options["file"] = .string(rules)
            return ("rules", options)
        }
    }

    /// `"training"`: how long, in what batches, with which optimizer and schedule.
    public struct TrainingSection: Sendable, Equatable {
        /// How long to train: JSON `"epochs"` or `"steps"`, at most one; neither = 1 epoch.
        public enum Length: Sendable, Equatable {
            /// `"epochs"` > 0 (fractions allowed): steps = epochs / q, rounded up.
            case epochs(Double)
            /// `"steps"` ≥ 1 logical batches.
            case steps(Int)
        }

        /// `"training.optimizer"`.
        public struct OptimizerSection: Sendable, Equatable {
            /// The update rule.
            public enum Name: String, Sendable, CaseIterable {
                case sgd, adam, adamw
            }

            /// `"name"`: default `.adamw`.
            public var name: Name
            /// `"learning_rate"`: the peak learning rate; default 1e-3, > 0.
            public var learningRate: Double
            /// `"momentum"` (SGD only): default 0, in [0, 1).
            public var momentum: Double
            /// `"beta1"` (Adam/AdamW only): default 0.9, in [0, 1).
            public var beta1: Double
            /// `"beta2"` (Adam/AdamW only): default 0.999, in [0, 1).
            public var beta2: Double
            /// `"epsilon"` (Adam/AdamW only): default 1e-8, > 0.
            public var epsilon: Double
            /// `"weight_decay"`: default 0.01 for AdamW (decoupled), 0 for Adam and SGD (L2); ≥ 0.
            public var weightDecay: Double

            /// `weightDecay` nil takes the default of `name`.
            public init(name: Name = .adamw, learningRate: Double = 1e-3, momentum: Double = 0, beta1: Double = 0.9,
                        beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double? = nil) {
                self.name = name
                self.learningRate = learningRate
                self.momentum = momentum
                self.beta1 = beta1
                self.beta2 = beta2
                self.epsilon = epsilon
                self.weightDecay = weightDecay ?? (name == .adamw ? 0.01 : 0)
            }
        }

        /// `"training.schedule"`: the learning rate per step.
        public struct ScheduleSection: Sendable, Equatable {
            /// The shape after warm-up.
            public enum Name: String, Sendable, CaseIterable {
                case constant, linear, cosine
            }

            /// `"name"`: default `.constant`.
            public var name: Name
            /// `"warmup_steps"`: linear warm-up from 0; default 0, ≥ 0.
            public var warmupSteps: Int
            /// `"min_learning_rate"` (linear/cosine only): the rate at the last step; default 0,
            /// in [0, learning_rate].
            public var minLearningRate: Double

            public init(name: Name = .constant, warmupSteps: Int = 0, minLearningRate: Double = 0) {
                self.name = name
                self.warmupSteps = warmupSteps
                self.minLearningRate = minLearningRate
            }
        }

        /// `"epochs"` or `"steps"`; default `.epochs(1)`.
        public var length: Length
        /// `"batch_size"` (required): the expected logical batch size, ≥ 1; with Poisson
        /// sampling q = batch_size / N.
        public var batchSize: Int
        /// `"physical_batch_size"`: examples per forward/backward pass, ≥ 1; default
        /// min(batch_size, 16).
        public var physicalBatchSize: Int
        /// `"optimizer"`: default `OptimizerSection()`.
        public var optimizer: OptimizerSection
        /// `"schedule"`: default `ScheduleSection()`.
        public var schedule: ScheduleSection
        /// `"seed"`: data order and LoRA initialisation; default 0, in 0...2^64−1. Poisson
        /// sampling and noise use secure randomness unless `privacy.noise_seed` is set.
        public var seed: UInt64
        /// `"eval_every"`: evaluate every this many steps; default 0 = only at the end; ≥ 0.
        public var evalEvery: Int
        /// `"eval_examples"`: at most this many examples of the eval split are used; default
        /// 200, ≥ 0.
        public var evalExamples: Int
        /// `"generate_examples"`: how many eval examples get greedy-generation exact-match
        /// accuracy when the data has reference answers; default 100, ≥ 0.
        public var generateExamples: Int
        /// `"max_new_tokens"`: generation length for that accuracy; default 16, ≥ 1.
        public var maxNewTokens: Int
        /// `"recompute_activations"`: keep only each block's input through the forward pass
        /// and recompute the rest block by block in the backward (`Transformer.recomputesActivations`):
        /// less memory, one more forward pass of compute; default false.
        public var recomputeActivations: Bool

        /// `physicalBatchSize` nil takes min(batchSize, 16).
        public init(length: Length = .epochs(1), batchSize: Int, physicalBatchSize: Int? = nil,
                    optimizer: OptimizerSection = OptimizerSection(), schedule: ScheduleSection = ScheduleSection(),
                    seed: UInt64 = 0, evalEvery: Int = 0, evalExamples: Int = 200, generateExamples: Int = 100,
                    maxNewTokens: Int = 16, recomputeActivations: Bool = false) {
            self.length = length
            self.batchSize = batchSize
            self.physicalBatchSize = physicalBatchSize ?? min(batchSize, 16)
            self.optimizer = optimizer
            self.schedule = schedule
            self.seed = seed
            self.evalEvery = evalEvery
            self.evalExamples = evalExamples
            self.generateExamples = generateExamples
            self.maxNewTokens = maxNewTokens
            self.recomputeActivations = recomputeActivations
        }

        /// The number of epochs, when the length is given in epochs.
        public var epochs: Double? {
            if case .epochs(let epochs) = length { return epochs }
            return nil
        }

        /// The number of steps, when the length is given in steps.
        public var steps: Int? {
            if case .steps(let steps) = length { return steps }
            return nil
        }
    }

    /// `"output"`: the run directory and what is written there.
    public struct OutputSection: Sendable, Equatable {
        /// `"output.export"`: a Hugging Face export of the final model.
        public struct ExportSection: Sendable, Equatable {
            /// `"format"`: default `.safetensors`.
            public var format: ExportFormat
            /// `"merge_lora"`: fold LoRA into the base weights; default true.
            public var mergeLoRA: Bool

            public init(format: ExportFormat = .safetensors, mergeLoRA: Bool = true) {
                self.format = format
                self.mergeLoRA = mergeLoRA
            }
        }

        /// `"directory"`: default `"runs/<name>"`.
        public var directory: String
        /// `"checkpoint_every"`: steps between checkpoints; default 0 = only the final one; ≥ 0.
        public var checkpointEvery: Int
        /// `"keep_checkpoints"`: the newest step checkpoints kept, older ones removed once a
        /// newer one is written; default 2; 0 keeps every one. `final.h5` is always kept.
        public var keepCheckpoints: Int
        /// `"export"`: default nil = no export.
        public var export: ExportSection?

        public init(directory: String, checkpointEvery: Int = 0, keepCheckpoints: Int = 2, export: ExportSection? = nil) {
            self.directory = directory
            self.checkpointEvery = checkpointEvery
            self.keepCheckpoints = keepCheckpoints
            self.export = export
        }

        /// The run directory of a recipe named `name` that does not give one: `runs/<name>`.
        public static func defaultDirectory(for name: String) -> String { "runs/\(name)" }
    }
}

// MARK: - Errors

/// A recipe that cannot be used. Every case names the source (the file, with the `--set`
/// override when the fault is in an overridden key) and the key path; the message says what was
/// wrong and what is allowed.
public enum RecipeError: Error, CustomStringConvertible, Equatable {
    /// The file cannot be read.
    case unreadable(file: String, reason: String)
    /// The text is not JSON; `reason` gives line and column.
    case notJSON(file: String, reason: String)
    /// An object names the same key twice (JSON readers differ on which wins); `line` and
    /// `column` are where it appears again.
    case duplicateKey(file: String, keyPath: String, line: Int, column: Int)
    /// A key the schema does not have; `suggestion` is the closest known key path, `known` the
    /// keys allowed beside it.
    case unknownKey(file: String, keyPath: String, suggestion: String?, known: [String])
    /// A required key is absent; `hint` says what to write.
    case missingKey(file: String, keyPath: String, hint: String)
    /// A value of the wrong JSON type (`value` is its JSON text).
    case wrongType(file: String, keyPath: String, value: String, expected: String)
    /// A value of the right type outside the allowed values or range.
    case invalidValue(file: String, keyPath: String, value: String, allowed: String)
    /// Keys of which exactly one (`required`) or at most one may be given.
    case exclusiveKeys(file: String, keyPath: String, keys: [String], required: Bool, found: [String])
    /// A key that does not apply to what the rest of the recipe chose.
    case conflict(file: String, keyPath: String, reason: String)
    /// A `--set` argument that is not `key.path=value`.
    case malformedOverride(override: String, reason: String)

    /// The key path at fault ("" for the whole recipe), nil for file and override errors.
    public var keyPath: String? {
        switch self {
        case .unreadable, .notJSON, .malformedOverride: return nil
        case .duplicateKey(_, let keyPath, _, _), .unknownKey(_, let keyPath, _, _), .missingKey(_, let keyPath, _),
             .wrongType(_, let keyPath, _, _), .invalidValue(_, let keyPath, _, _),
             .exclusiveKeys(_, let keyPath, _, _, _), .conflict(_, let keyPath, _):
            return keyPath
        }
    }

    public var description: String {
        func quoted(_ keys: [String]) -> String { keys.map { "\"\($0)\"" }.joined(separator: " and ") }
        switch self {
        case .unreadable(let file, let reason):
            return "\(file): cannot read the recipe (\(reason))"
        case .notJSON(let file, let reason):
            return "\(file): not valid JSON (\(reason))"
        case .duplicateKey(let file, let keyPath, let line, let column):
            return "\(file):\(line):\(column): key \"\(keyPath)\" appears more than once; keep one"
        case .unknownKey(let file, let keyPath, let suggestion, let known):
            if let suggestion { return "\(file): unknown key \"\(keyPath)\" (did you mean \"\(suggestion)\"?)" }
            let parent = keyPath.split(separator: ".").dropLast().joined(separator: ".")
            let place = parent.isEmpty ? "at the top level" : "in \"\(parent)\""
            return "\(file): unknown key \"\(keyPath)\"; keys allowed \(place): \(known.joined(separator: ", "))"
        case .missingKey(let file, let keyPath, let hint):
            return "\(file): \"\(keyPath)\" is required; \(hint)"
        case .wrongType(let file, let keyPath, let value, let expected):
            if keyPath.isEmpty { return "\(file): the recipe must be \(expected), not \(value)" }
            return "\(file): \"\(keyPath)\" = \(value) must be \(expected)"
        case .invalidValue(let file, let keyPath, let value, let allowed):
            return "\(file): \"\(keyPath)\" = \(value) must be \(allowed)"
        case .exclusiveKeys(let file, let keyPath, let keys, let required, let found):
            let rule = required ? "needs exactly one of" : "takes at most one of"
            let given = found.isEmpty ? "neither is given" : "\(quoted(found)) are both given"
            let advice = found.count > 1 ? "; to switch with --set, set the other to null" : ""
            return "\(file): \"\(keyPath)\" \(rule) \(quoted(keys)) (\(given)\(advice))"
        case .conflict(let file, let keyPath, let reason):
            return "\(file): \"\(keyPath)\" \(reason)"
        case .malformedOverride(let override, let reason):
            return "--set \"\(override)\": \(reason); write key.path=value, e.g. --set training.optimizer.learning_rate=5e-4"
        }
    }
}
