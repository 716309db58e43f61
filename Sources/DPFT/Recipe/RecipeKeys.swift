// The recipe key table: every key a recipe may hold, once, in reading order. A row says what
// the key takes, whether it is required, when it applies, what it means, how its value goes
// into a `Recipe` and how the resolved recipe writes it back (RecipeKey.swift). Keys left out
// keep the defaults of the section initialisers in Recipe.swift; `RecipeKeys.reference` shows
// them by writing a default recipe through the same rows.
//
// Order matters: a section's row comes before its keys, and a row may rely on the rows before
// it (`name` sets the default output directory, `batch_size` the default physical batch size,
// `optimizer.name` the default weight decay, `learning_rate` the range of `min_learning_rate`).

enum RecipeKeys {
    /// Every row, sections before their keys.
    static let all: [RecipeKey] = top + model + adapter + data + privacy + training + output + [plugins]

    /// The row for `path`.
    static func row(_ path: String) -> RecipeKey? { all.first { $0.path == path } }

    /// The recipe that rows start from: every default, placeholders where a key is required.
    static func scaffold(name: String) -> Recipe {
        Recipe(name: name, model: .init(checkpoint: ""), data: .init(train: ""), privacy: nil,
               training: .init(batchSize: 1))
    }

    /// The value of `condition`'s discriminator (a sibling of the key in `parent`) in `recipe`.
    static func discriminator(_ condition: RecipeCondition, parent: String, in recipe: Recipe) -> String {
        guard case .string(let value)? = row(jsonKeyPath(parent, condition.discriminator))?.write(recipe) else {
            preconditionFailure("the discriminator \(condition.discriminator) of \(parent) is a choice")
        }
        return value
    }

    static func applies(_ condition: RecipeCondition, parent: String, in recipe: Recipe) -> Bool {
        condition.values.contains(discriminator(condition, parent: parent, in: recipe))
    }

    // MARK: Rows

    private static let top: [RecipeKey] = [
        leaf("name", .string(expected: "a non-empty name without \"/\"", valid: { !$0.isEmpty && !$0.contains("/") }),
             "the run's name; default: the recipe file's name without extension",
             read: { $0.name = $1.string; $0.output.directory = Recipe.OutputSection.defaultDirectory(for: $1.string) },
             write: { .string($0.name) }),
        leaf("description", .string(expected: "a string", valid: { _ in true }),
             "what the recipe is for, in a sentence (JSON has no comments)",
             read: { $0.description = $1.string }, write: { .optional($0.description) }),
    ]

    private static let model: [RecipeKey] = [
        section("model", "the base model", required: "e.g. \"model\": {\"checkpoint\": \"checkpoints/base.h5\"}"),
        leaf("model.checkpoint", .string(expected: "a non-empty path", valid: nonEmpty),
             "a dpft HDF5 checkpoint (dpft init / dpft import)", required: "the base model, e.g. \"checkpoints/gpt2-tiny.h5\"",
             read: { $0.model.checkpoint = $1.string }, write: { .string($0.model.checkpoint) }),
        leaf("model.tokenizer", .string(expected: "a non-empty path or null (the checkpoint's own)", valid: nonEmpty),
             "a SentencePiece .model or a tokenizer.json; null = the one stored in the checkpoint",
             read: { $0.model.tokenizer = $1.string }, write: { .optional($0.model.tokenizer) }),
    ]

    private static let loraOnly = RecipeCondition(discriminator: "type", values: ["lora"], scope: "adapter type \"lora\"")
    private static let patternsOnly = RecipeCondition(discriminator: "type", values: ["patterns"],
                                                      scope: "adapter type \"patterns\"")

    private static let adapter: [RecipeKey] = [
        section("adapter", "what is trained; default {\"type\": \"none\"}: full fine-tuning"),
        leaf("adapter.type", .choice(["none", "lora", "patterns"]), "none, LoRA, or the tensors matching glob patterns",
             required: "one of \"none\", \"lora\", \"patterns\"",
             aliases: ["kind"],
             read: { recipe, value in
                 switch value.string {
                 case "lora": recipe.adapter = .lora(LoRAConfig(rank: 0, alpha: 0, targets: []))
                 case "patterns": recipe.adapter = .patterns([])
                 default: recipe.adapter = .none
                 }
             },
             write: { .string($0.adapter.type) }),
        leaf("adapter.rank", .integer(expected: "an integer ≥ 1", valid: { $0 >= 1 }), "the LoRA rank r",
             required: "the LoRA rank, e.g. 8", when: loraOnly,
             aliases: ["r"],
             read: { $0.adapter.lora?.rank = $1.integer },
             write: { $0.adapter.lora.map { JSONValue.number($0.rank) } }),
        leaf("adapter.alpha", .number("a number > 0", where: { $0 > 0 }), "the LoRA scale numerator (scale = alpha / rank)",
             required: "the LoRA scale numerator (scale = alpha / rank), e.g. 16", when: loraOnly,
             aliases: ["loraalpha"],
             read: { $0.adapter.lora?.alpha = $1.number },
             write: { $0.adapter.lora.map { JSONValue.number($0.alpha) } }),
        leaf("adapter.targets", .strings(expected: "a non-empty list of module names", allowsEmpty: false),
             "the last name components of the linear modules to adapt",
             required: "the linear modules to adapt, e.g. [\"q_proj\", \"v_proj\"]", when: loraOnly,
             aliases: ["targetmodules", "loratargets"],
             read: { $0.adapter.lora?.targets = $1.strings },
             write: { $0.adapter.lora.map { .array($0.targets.map(JSONValue.string)) } }),
        leaf("adapter.trainable", .strings(expected: "a non-empty list of glob patterns", allowsEmpty: false),
             "glob patterns (* any run, ? one character) of the HF tensor names to train",
             required: "glob patterns of the tensors to train, e.g. [\"*.ln_*\", \"lm_head.*\"]", when: patternsOnly,
             read: { $0.adapter = .patterns($1.strings) },
             write: { recipe in
                 guard case .patterns(let patterns) = recipe.adapter else { return nil }
                 return .array(patterns.map(JSONValue.string))
             }),
    ]

    private static let data: [RecipeKey] = [
        section("data", "the training and evaluation data", required: "e.g. \"data\": {\"train\": \"data/train.jsonl\"}"),
        leaf("data.train", .string(expected: "a non-empty path", valid: nonEmpty), "the training examples (JSON Lines)",
             required: "the training examples, a JSON Lines file",
             read: { $0.data.train = $1.string }, write: { .string($0.data.train) }),
        leaf("data.eval", .string(expected: "a non-empty path or null", valid: nonEmpty),
             "held-out examples for loss, perplexity and generation; null = none",
             aliases: ["validation", "valid", "test"],
             read: { $0.data.eval = $1.string }, write: { .optional($0.data.eval) }),
        leaf("data.format", .choice(of: Recipe.DataSection.Format.self), "the shape of a data file's lines",
             read: { $0.data.format = .init(rawValue: $1.string)! }, write: { .string($0.data.format.rawValue) }),
        section("data.template", "how an instruction example becomes text: \"alpaca\" or {prompt, prompt_no_input, response}",
                alternative: .string(expected: "\"alpaca\" or an object {\"prompt\", \"prompt_no_input\", \"response\"}",
                                     valid: { $0 == "alpaca" }),
                read: { recipe, value in if case .string? = value { recipe.data.template = .alpaca } },
                write: { $0.data.template == .alpaca ? .string("alpaca") : [:] }),
        leaf("data.template.prompt", .string(expected: "a string containing {instruction} and {input}",
                                             valid: { $0.contains("{instruction}") && $0.contains("{input}") }),
             "the prompt for examples with a non-empty input",
             required: "the prompt for examples with an input, containing {instruction} and {input}",
             read: { $0.data.template.prompt = $1.string }, write: { .string($0.data.template.prompt) }),
        leaf("data.template.prompt_no_input", .string(expected: "a string containing {instruction} and not {input}",
                                                      valid: { $0.contains("{instruction}") && !$0.contains("{input}") }),
             "the prompt for examples without input",
             required: "the prompt for examples without an input, containing {instruction}",
             read: { $0.data.template.promptNoInput = $1.string }, write: { .string($0.data.template.promptNoInput) }),
        leaf("data.template.response", .string(expected: "a string containing {output}", valid: { $0.contains("{output}") }),
             "the trained-on part", required: "the trained-on text, e.g. \"{output}\"",
             read: { $0.data.template.response = $1.string }, write: { .string($0.data.template.response) }),
        section("data.chat_template", "how a chat message becomes text"),
        leaf("data.chat_template.system", containsContent, "a system message",
             read: { $0.data.chatTemplate.system = $1.string }, write: { .string($0.data.chatTemplate.system) }),
        leaf("data.chat_template.user", containsContent, "a user message",
             read: { $0.data.chatTemplate.user = $1.string }, write: { .string($0.data.chatTemplate.user) }),
        leaf("data.chat_template.assistant", containsContent, "an assistant message (the trained-on part)",
             read: { $0.data.chatTemplate.assistant = $1.string }, write: { .string($0.data.chatTemplate.assistant) }),
        leaf("data.max_length", .integer(expected: "an integer in 8...65536", valid: { (8...65536).contains($0) }),
             "tokens per example; longer ones are truncated",
             aliases: ["maxseqlen", "maxseqlength", "seqlen", "maxlen"],
             read: { $0.data.maxLength = $1.integer }, write: { .number($0.data.maxLength) }),
        leaf("data.train_on", .choice(of: Recipe.DataSection.TrainOn.self), "which tokens the loss covers",
             read: { $0.data.trainOn = .init(rawValue: $1.string)! }, write: { .string($0.data.trainOn.rawValue) }),
        leaf("data.on_malformed", .choice(of: Recipe.DataSection.MalformedLinePolicy.self),
             "what a line that does not parse or fit the format does",
             read: { $0.data.onMalformed = .init(rawValue: $1.string)! },
             write: { .string($0.data.onMalformed.rawValue) }),
        leaf("data.add_bos", .bool, "prepend the tokenizer's BOS",
             read: { $0.data.addBOS = $1.bool }, write: { .bool($0.data.addBOS) }),
        leaf("data.add_eos", .bool, "append the tokenizer's EOS",
             read: { $0.data.addEOS = $1.bool }, write: { .bool($0.data.addEOS) }),
    ]

    private static let automaticOnly = RecipeCondition(discriminator: "clipping", values: ["automatic"],
                                                       scope: "clipping \"automatic\"")

    private static let privacy: [RecipeKey] = [
        section("privacy", "DP-SGD with book-keeping clipping; null = non-private training",
                required: "give a budget, e.g. \"privacy\": {\"target_epsilon\": 8}, or write \"privacy\": null for non-private training",
                nullable: true, alternatives: RecipeAlternatives(keys: ["target_epsilon", "noise_multiplier"], required: true),
                read: { recipe, value in recipe.privacy = value == nil ? nil : .init(noise: .noiseMultiplier(0)) },
                write: { $0.privacy == nil ? .null : [:] }),
        leaf("privacy.target_epsilon", .number("a number > 0", where: { $0 > 0 }),
             "σ is calibrated so that the whole run spends this ε at delta",
             aliases: ["epsilon", "eps", "targeteps"],
             read: { $0.privacy!.noise = .targetEpsilon($1.number) },
             write: { $0.privacy!.targetEpsilon.map { JSONValue.number($0) } }),
        leaf("privacy.noise_multiplier",
             .number("a number > 0 (σ = 0 would spend ε = ∞; write \"privacy\": null to train without privacy)",
                     where: { $0 > 0 }),
             "σ as given (> 0; \"privacy\": null trains without privacy)",
             aliases: ["sigma", "noise"],
             read: { $0.privacy!.noise = .noiseMultiplier($1.number) },
             write: { $0.privacy!.noiseMultiplier.map { JSONValue.number($0) } }),
        leaf("privacy.delta", .number("in (0, 1)", where: { $0 > 0 && $0 < 1 }), "δ of the (ε, δ) guarantee",
             read: { $0.privacy!.delta = $1.number }, write: { .number($0.privacy!.delta) }),
        leaf("privacy.accountant", .choice(of: Accountant.self), "how ε is computed",
             read: { $0.privacy!.accountant = .init(rawValue: $1.string)! },
             write: { .string($0.privacy!.accountant.rawValue) }),
        leaf("privacy.clipping", .choice(["abadi", "automatic"]), "the clipping function",
             read: { recipe, value in
                 if value.string == "abadi" { recipe.privacy!.clipping = .abadi }  // "automatic" is the default
             },
             write: { .string($0.privacy!.clipping == .abadi ? "abadi" : "automatic") }),
        leaf("privacy.gamma", .number("a number > 0", where: { $0 > 0 }), "the stability constant of automatic clipping",
             when: automaticOnly,
             read: { $0.privacy!.clipping = .automatic(gamma: $1.number) },
             write: { recipe in
                 guard case .automatic(let gamma) = recipe.privacy!.clipping else { return nil }
                 return .number(gamma)
             }),
        leaf("privacy.threshold", .number("a number > 0", where: { $0 > 0 }), "the total clipping threshold R",
             aliases: ["maxgradnorm", "clipnorm", "clippingthreshold", "clippingnorm"],
             read: { $0.privacy!.threshold = $1.number }, write: { .number($0.privacy!.threshold) }),
        leaf("privacy.grouping", .string(expected: "a grouping strategy name (see `dpft plugins list`)", valid: nonEmpty),
             "the grouping strategy (dpft plugins list)",
             aliases: ["groups"],
             read: { $0.privacy!.grouping = $1.string }, write: { .string($0.privacy!.grouping) }),
        leaf("privacy.grouping_options", .object(expected: "an object of the strategy's options, e.g. {\"per\": \"block\"}"),
             "the strategy's options, checked by the grouping registry",
             read: { recipe, value in
                 guard case .object(let object) = value else { return }
                 recipe.privacy!.groupingOptions = GroupingOptions(object.dictionary)
             },
             write: { .object(resolvedOptions($0.privacy!.groupingOptions)) }),
        RecipeKey(path: "privacy.rules", shape: .leaf(.string(expected: "a non-empty path to a rule file", valid: nonEmpty)),
                  help: "a rule file: shorthand for \"grouping\": \"rules\" with option \"file\"",
                  requiredHint: nil, condition: nil, read: readRules, write: { .optional($0.privacy!.rules) }),
        leaf("privacy.noise_seed", .seed, "makes the noise reproducible; null = secure randomness from the OS",
             read: { $0.privacy!.noiseSeed = $1.unsigned },
             write: { $0.privacy!.noiseSeed.map { JSONValue.number($0) } ?? .null }),
        leaf("privacy.sampling", .choice(of: Recipe.PrivacySection.Sampling.self), "how logical batches are drawn",
             read: { $0.privacy!.sampling = .init(rawValue: $1.string)! },
             write: { .string($0.privacy!.sampling.rawValue) }),
    ]

    /// `rules`: checks it against `grouping` and `grouping_options.file` (read before), then sets both.
    private static func readRules(_ recipe: inout Recipe, _ value: RecipeValue?, _ context: RecipeReadContext) throws {
        let rules = value!.string
        let section = context.section
        if section["grouping"] != nil, recipe.privacy!.grouping != "rules" {
            throw section.conflict("rules", reason: "is shorthand for \"grouping\": \"rules\", but \"grouping\" is "
                                   + "\"\(recipe.privacy!.grouping)\"; keep one of them")
        }
        if let file = recipe.privacy!.groupingOptions["file"], file != .string(rules) {
            throw section.conflict("rules", reason: "names \"\(rules)\" but \"grouping_options.file\" is \(file); keep one of them")
        }
        recipe.privacy!.grouping = "rules"
        recipe.privacy!.groupingOptions["file"] = .string(rules)
        recipe.privacy!.rules = rules
    }

    /// Grouping options as the resolved recipe writes them: a whole number below 10^15 as an
    /// integer, any other number in Swift's shortest form (so `0.50` and `0.5` hash alike).
    private static func resolvedOptions(_ options: GroupingOptions) -> JSONObject {
        func normalized(_ value: JSONValue) -> JSONValue {
            switch value {
            case .number(let number):
                let double = number.double
                return double == double.rounded() && abs(double) < 1e15
                    ? .number(Int(double)) : .number(JSONNumber(uncheckedLiteral: double.description))
            case .array(let items): return .array(items.map(normalized))
            case .object(let object): return .object(JSONObject(object.members.map { (key: $0.key, value: normalized($0.value)) }))
            default: return value
            }
        }
        return JSONObject(options.values.map { (key: $0.key, value: normalized($0.value)) })
    }

    private static let sgdOnly = RecipeCondition(discriminator: "name", values: ["sgd"], scope: "optimizer \"sgd\"")
    private static let adamOnly = RecipeCondition(discriminator: "name", values: ["adam", "adamw"],
                                                  scope: "optimizers \"adam\" and \"adamw\"")
    private static let decayingOnly = RecipeCondition(discriminator: "name", values: ["linear", "cosine"],
                                                      scope: "schedules \"linear\" and \"cosine\"")
    private static let unitInterval = RecipeValueRule.number("a number in [0, 1)", where: { $0 >= 0 && $0 < 1 })

    private static let training: [RecipeKey] = [
        section("training", "length, batches, optimizer and schedule",
                required: "at least the batch size, e.g. \"training\": {\"batch_size\": 64}",
                alternatives: RecipeAlternatives(keys: ["epochs", "steps"], required: false)),
        leaf("training.epochs", .number("a number > 0", where: { $0 > 0 }), "passes over the data (fractions allowed); default 1",
             aliases: ["numepochs", "numtrainepochs"],
             read: { $0.training.length = .epochs($1.number) },
             write: { $0.training.epochs.map { JSONValue.number($0) } }),
        leaf("training.steps", .integer(expected: "an integer ≥ 1", valid: { $0 >= 1 }), "logical batches, instead of epochs",
             aliases: ["maxsteps", "numsteps"],
             read: { $0.training.length = .steps($1.integer) },
             write: { $0.training.steps.map { JSONValue.number($0) } }),
        leaf("training.batch_size", .integer(expected: "an integer ≥ 1", valid: { $0 >= 1 }),
             "the expected logical batch size; with Poisson sampling q = batch_size / N",
             required: "the expected logical batch size, e.g. 64",
             // A new section, so that physical_batch_size takes its default from this batch size.
             read: { $0.training = .init(length: $0.training.length, batchSize: $1.integer) },
             write: { .number($0.training.batchSize) }),
        leaf("training.physical_batch_size", .integer(expected: "an integer ≥ 1", valid: { $0 >= 1 }),
             "examples per forward/backward pass; default min(batch_size, 16)",
             aliases: ["microbatchsize"],
             read: { $0.training.physicalBatchSize = $1.integer }, write: { .number($0.training.physicalBatchSize) }),
        section("training.optimizer", "the update rule", aliases: ["optim"]),
        leaf("training.optimizer.name", .choice(of: Recipe.TrainingSection.OptimizerSection.Name.self), "the update rule",
             // A new section, so that weight_decay takes the default of this optimizer.
             read: { $0.training.optimizer = .init(name: .init(rawValue: $1.string)!) },
             write: { .string($0.training.optimizer.name.rawValue) }),
        leaf("training.optimizer.learning_rate", .number("a number > 0", where: { $0 > 0 }), "the peak learning rate",
             aliases: ["lr"],
             read: { $0.training.optimizer.learningRate = $1.number },
             write: { .number($0.training.optimizer.learningRate) }),
        leaf("training.optimizer.momentum", unitInterval, "SGD momentum", when: sgdOnly,
             read: { $0.training.optimizer.momentum = $1.number }, write: { .number($0.training.optimizer.momentum) }),
        leaf("training.optimizer.beta1", unitInterval, "Adam's first-moment decay", when: adamOnly,
             read: { $0.training.optimizer.beta1 = $1.number }, write: { .number($0.training.optimizer.beta1) }),
        leaf("training.optimizer.beta2", unitInterval, "Adam's second-moment decay", when: adamOnly,
             read: { $0.training.optimizer.beta2 = $1.number }, write: { .number($0.training.optimizer.beta2) }),
        leaf("training.optimizer.epsilon", .number("a number > 0", where: { $0 > 0 }), "Adam's denominator offset",
             when: adamOnly,
             read: { $0.training.optimizer.epsilon = $1.number }, write: { .number($0.training.optimizer.epsilon) }),
        leaf("training.optimizer.weight_decay", .number("a number ≥ 0", where: { $0 >= 0 }),
             "decoupled for AdamW (default 0.01), L2 for Adam and SGD (default 0)",
             aliases: ["wd"],
             read: { $0.training.optimizer.weightDecay = $1.number },
             write: { .number($0.training.optimizer.weightDecay) }),
        section("training.schedule", "the learning rate per step", aliases: ["scheduler", "lrscheduler"]),
        leaf("training.schedule.name", .choice(of: Recipe.TrainingSection.ScheduleSection.Name.self), "the shape after warm-up",
             read: { $0.training.schedule.name = .init(rawValue: $1.string)! },
             write: { .string($0.training.schedule.name.rawValue) }),
        leaf("training.schedule.warmup_steps", .integer(expected: "an integer ≥ 0", valid: { $0 >= 0 }),
             "steps of linear warm-up from 0",
             aliases: ["warmup"],
             read: { $0.training.schedule.warmupSteps = $1.integer },
             write: { .number($0.training.schedule.warmupSteps) }),
        leaf("training.schedule.min_learning_rate",
             .number(expected: { "a number in [0, \($0.training.optimizer.learningRate)] (up to training.optimizer.learning_rate)" },
                     valid: { $0 >= 0 && $0 <= $1.training.optimizer.learningRate }),
             "the rate at the last step", when: decayingOnly,
             read: { $0.training.schedule.minLearningRate = $1.number },
             write: { .number($0.training.schedule.minLearningRate) }),
        leaf("training.seed", .seed, "data order and LoRA initialisation",
             read: { $0.training.seed = $1.unsigned }, write: { .number($0.training.seed) }),
        leaf("training.eval_every", .integer(expected: "an integer ≥ 0 (0 = only at the end)", valid: { $0 >= 0 }),
             "evaluate every this many steps",
             read: { $0.training.evalEvery = $1.integer }, write: { .number($0.training.evalEvery) }),
        leaf("training.eval_examples", .integer(expected: "an integer ≥ 0", valid: { $0 >= 0 }),
             "at most this many examples of the eval split are used",
             read: { $0.training.evalExamples = $1.integer }, write: { .number($0.training.evalExamples) }),
        leaf("training.generate_examples", .integer(expected: "an integer ≥ 0", valid: { $0 >= 0 }),
             "eval examples that get greedy-generation exact-match accuracy",
             read: { $0.training.generateExamples = $1.integer }, write: { .number($0.training.generateExamples) }),
        leaf("training.max_new_tokens", .integer(expected: "an integer ≥ 1", valid: { $0 >= 1 }),
             "generation length for that accuracy",
             read: { $0.training.maxNewTokens = $1.integer }, write: { .number($0.training.maxNewTokens) }),
        leaf("training.recompute_activations", .bool,
             "recompute each block's activations in the backward pass: less memory, one more forward pass",
             read: { $0.training.recomputeActivations = $1.bool }, write: { .bool($0.training.recomputeActivations) }),
    ]

    private static let output: [RecipeKey] = [
        section("output", "where the run writes"),
        leaf("output.directory", .string(expected: "a non-empty path", valid: nonEmpty), "the run directory; default runs/<name>",
             aliases: ["outputdir", "outdir"],
             read: { $0.output.directory = $1.string }, write: { .string($0.output.directory) }),
        leaf("output.checkpoint_every", .integer(expected: "an integer ≥ 0 (0 = only the final)", valid: { $0 >= 0 }),
             "steps between checkpoints",
             read: { $0.output.checkpointEvery = $1.integer }, write: { .number($0.output.checkpointEvery) }),
        leaf("output.keep_checkpoints", .integer(expected: "an integer ≥ 0 (0 = keep all)", valid: { $0 >= 0 }),
             "the newest step checkpoints kept (older ones are removed; final.h5 is always kept)",
             read: { $0.output.keepCheckpoints = $1.integer }, write: { .number($0.output.keepCheckpoints) }),
        section("output.export", "a Hugging Face export of the final model; null = none",
                read: { recipe, _ in recipe.output.export = .init() },
                write: { $0.output.export == nil ? .null : [:] }),
        leaf("output.export.format", .choice(of: ExportFormat.self), "the export's file format",
             read: { $0.output.export!.format = .init(rawValue: $1.string)! },
             write: { .string($0.output.export!.format.rawValue) }),
        leaf("output.export.merge_lora", .bool, "fold LoRA into the base weights",
             read: { $0.output.export!.mergeLoRA = $1.bool }, write: { .bool($0.output.export!.mergeLoRA) }),
    ]

    private static let plugins = leaf(
        "plugins", .strings(expected: "a list of shared-library paths", allowsEmpty: true),
        "shared libraries that register grouping strategies",
        read: { $0.plugins = $1.strings }, write: { .array($0.plugins.map(JSONValue.string)) })

    // MARK: Row builders

    private static let nonEmpty: @Sendable (String) -> Bool = { !$0.isEmpty }
    private static let containsContent = RecipeValueRule.string(expected: "a string containing {content}",
                                                                valid: { $0.contains("{content}") })

    private static func leaf(_ path: String, _ rule: RecipeValueRule, _ help: String, required hint: String? = nil,
                             when condition: RecipeCondition? = nil, aliases: [String] = [],
                             read: @escaping @Sendable (inout Recipe, RecipeValue) -> Void,
                             write: @escaping @Sendable (Recipe) -> JSONValue?) -> RecipeKey {
        RecipeKey(path: path, shape: .leaf(rule), help: help, requiredHint: hint, condition: condition,
                  read: { recipe, value, _ in read(&recipe, value!) }, write: write, aliases: aliases)
    }

    private static func section(_ path: String, _ help: String, required hint: String? = nil, nullable: Bool = false,
                                alternative: RecipeValueRule? = nil, alternatives: RecipeAlternatives? = nil,
                                aliases: [String] = [],
                                read: @escaping @Sendable (inout Recipe, RecipeValue?) -> Void = { _, _ in },
                                write: @escaping @Sendable (Recipe) -> JSONValue? = { _ in [:] }) -> RecipeKey {
        RecipeKey(path: path, shape: .section(alternative: alternative, nullable: nullable, alternatives: alternatives),
                  help: help, requiredHint: hint, condition: nil, read: { recipe, value, _ in read(&recipe, value) },
                  write: write, aliases: aliases)
    }

    // MARK: Reference

    /// One line per key: path, what it takes, its default (or "required") and what it means.
    static var reference: String {
        var defaults = scaffold(name: "<name>")
        defaults.privacy = .init(noise: .targetEpsilon(8))
        defaults.output.export = .init()
        return all.map { key in
            let takes: String
            switch key.shape {
            case .section: takes = "object"
            case .leaf(let rule): takes = rule.expected(in: defaults)
            }
            let given = key.requiredHint != nil ? "required" : key.write(defaults).map { "default \($0.excerpt)" } ?? "optional"
            return "\(key.path): \(takes); \(given) — \(key.help)"
        }.joined(separator: "\n")
    }
}

extension Recipe.AdapterSection {
    /// The LoRA settings when the adapter is LoRA; setting it changes only a LoRA adapter.
    var lora: LoRAConfig? {
        get {
            if case .lora(let config) = self { return config }
            return nil
        }
        set {
            if case .lora = self, let newValue { self = .lora(newValue) }
        }
    }
}
