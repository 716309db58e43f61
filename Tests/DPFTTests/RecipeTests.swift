import Crypto
import Foundation
import Testing
@testable import DPFT

@Suite struct RecipeTests {
    /// The smallest valid recipe: every other key takes its default.
    static let minimal = """
        {"model": {"checkpoint": "checkpoints/base.h5"}, "data": {"train": "data/train.jsonl"},
         "privacy": {"target_epsilon": 8}, "training": {"batch_size": 64}}
        """

    /// Every key set to something other than its default.
    static let full = """
        {
          "name": "full-run",
          "description": "every key set",
          "model": {"checkpoint": "checkpoints/base.h5", "tokenizer": "checkpoints/tok.model"},
          "adapter": {"type": "lora", "rank": 4, "alpha": 8.5, "targets": ["q_proj", "v_proj"]},
          "data": {
            "train": "data/train.jsonl", "eval": "data/eval.jsonl", "format": "alpaca",
            "template": {"prompt": "Q: {instruction}\\nI: {input}\\nA: ", "prompt_no_input": "Q: {instruction}\\nA: ",
                         "response": "{output}\\n"},
            "chat_template": {"system": "S: {content}\\n", "user": "U: {content}\\n", "assistant": "A: {content}\\n"},
            "max_length": 512, "train_on": "all", "on_malformed": "skip", "add_bos": false, "add_eos": false
          },
          "privacy": {
            "noise_multiplier": 0.8, "delta": 1e-6, "accountant": "rdp", "clipping": "automatic", "gamma": 0.05,
            "threshold": 0.5, "grouping": "lora-only", "grouping_options": {"per": "block", "thresholds": {"a": 0.5}},
            "noise_seed": 18446744073709551615, "sampling": "poisson"
          },
          "training": {
            "steps": 300, "batch_size": 128, "physical_batch_size": 8,
            "optimizer": {"name": "sgd", "learning_rate": 0.1, "momentum": 0.9, "weight_decay": 0.0005},
            "schedule": {"name": "cosine", "warmup_steps": 10, "min_learning_rate": 0.001},
            "seed": 42, "eval_every": 50, "eval_examples": 64, "generate_examples": 32, "max_new_tokens": 24,
            "recompute_activations": true
          },
          "output": {"directory": "runs/custom", "checkpoint_every": 100, "export": {"format": "hdf5", "merge_lora": false}},
          "plugins": ["plugins/libmine.so"]
        }
        """

    /// Other variants: patterns adapter, rule-file grouping, Abadi clipping, Adam, linear schedule.
    static let variant = """
        {"name": "variant", "model": {"checkpoint": "c.h5"},
         "adapter": {"type": "patterns", "trainable": ["*.ln_*", "lm_head.*"]},
         "data": {"train": "t.jsonl", "format": "chat", "chat_template": {"user": "<u>{content}</u>"}},
         "privacy": {"target_epsilon": 3, "clipping": "abadi", "rules": "recipes/rules/attention-vs-rest.json"},
         "training": {"epochs": 2.5, "batch_size": 8,
                      "optimizer": {"name": "adam", "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-6},
                      "schedule": {"name": "linear", "min_learning_rate": 1e-4}},
         "output": {"export": {}}}
        """

    static let nonPrivate = """
        {"model": {"checkpoint": "c.h5"}, "data": {"train": "t.jsonl"}, "privacy": null, "training": {"batch_size": 4}}
        """

    static func parse(_ json: String, _ overrides: [String] = []) throws -> Recipe {
        try Recipe.parse(json: json, file: "recipe.json", overrides: overrides)
    }

    /// The error parsing `json` gives; records an issue when there is none.
    static func error(_ json: String, _ overrides: [String] = []) -> RecipeError? {
        do {
            let recipe = try parse(json, overrides)
            Issue.record("expected an error, got a recipe named \(recipe.name)")
        } catch let error as RecipeError {
            return error
        } catch {
            Issue.record("expected a RecipeError, got \(error)")
        }
        return nil
    }

    /// The minimal recipe with `value` written at `keyPath` (objects created on the way; a nil
    /// value removes the key).
    static func minimal(with keyPath: String, _ value: Any?) throws -> String {
        var root = try JSONSerialization.jsonObject(with: Data(minimal.utf8)) as! [String: Any]
        func set(_ keys: ArraySlice<Substring>, in object: [String: Any]) -> [String: Any] {
            var object = object
            let key = String(keys.first!)
            if keys.count == 1 {
                object[key] = value
            } else {
                object[key] = set(keys.dropFirst(), in: object[key] as? [String: Any] ?? [:])
            }
            return object
        }
        root = set(keyPath.split(separator: ".")[...], in: root)
        let data = try JSONSerialization.data(withJSONObject: root, options: [.sortedKeys, .fragmentsAllowed])
        return String(decoding: data, as: UTF8.self)
    }

    /// A JSON fragment as a JSONSerialization value (test arguments must be Sendable).
    static func value(_ fragment: String) -> Any {
        try! JSONSerialization.jsonObject(with: Data(fragment.utf8), options: .fragmentsAllowed)
    }

    // MARK: Round trip and defaults

    @Test(arguments: ["full", "minimal", "variant", "nonPrivate"])
    func resolvedRecipeLoadsBackEqual(which: String) throws {
        let text = ["full": Self.full, "minimal": Self.minimal, "variant": Self.variant, "nonPrivate": Self.nonPrivate][which]!
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let original = directory.appendingPathComponent("\(which).json")
        try text.write(to: original, atomically: true, encoding: .utf8)
        let recipe = try Recipe.load(from: original)

        let resolved = directory.appendingPathComponent("resolved.json")
        try recipe.resolvedJSON.write(to: resolved, atomically: true, encoding: .utf8)
        let reloaded = try Recipe.load(from: resolved)
        #expect(reloaded == recipe)
        #expect(reloaded.resolvedJSON == recipe.resolvedJSON)
        #expect(reloaded.hash == recipe.hash)
        // The resolved form is JSON any reader accepts.
        #expect((try? JSONSerialization.jsonObject(with: Data(recipe.resolvedJSON.utf8))) is [String: Any])
    }

    @Test func fullRecipeReadsEveryKey() throws {
        let recipe = try Self.parse(Self.full)
        #expect(recipe.name == "full-run")
        #expect(recipe.description == "every key set")
        #expect(recipe.model == .init(checkpoint: "checkpoints/base.h5", tokenizer: "checkpoints/tok.model"))
        #expect(recipe.adapter == .lora(LoRAConfig(rank: 4, alpha: 8.5, targets: ["q_proj", "v_proj"])))
        #expect(recipe.data == .init(
            train: "data/train.jsonl", eval: "data/eval.jsonl", format: .alpaca,
            template: .init(prompt: "Q: {instruction}\nI: {input}\nA: ", promptNoInput: "Q: {instruction}\nA: ",
                            response: "{output}\n"),
            chatTemplate: .init(system: "S: {content}\n", user: "U: {content}\n", assistant: "A: {content}\n"),
            maxLength: 512, trainOn: .all, onMalformed: .skip, addBOS: false, addEOS: false))
        #expect(recipe.privacy == .init(
            noise: .noiseMultiplier(0.8), delta: 1e-6, accountant: .rdp, clipping: .automatic(gamma: 0.05),
            threshold: 0.5, grouping: "lora-only", groupingOptions: ["per": "block", "thresholds": ["a": 0.5]],
            rules: nil, noiseSeed: UInt64.max, sampling: .poisson))
        #expect(recipe.training == .init(
            length: .steps(300), batchSize: 128, physicalBatchSize: 8,
            optimizer: .init(name: .sgd, learningRate: 0.1, momentum: 0.9, weightDecay: 0.0005),
            schedule: .init(name: .cosine, warmupSteps: 10, minLearningRate: 0.001),
            seed: 42, evalEvery: 50, evalExamples: 64, generateExamples: 32, maxNewTokens: 24,
            recomputeActivations: true))
        #expect(recipe.output == .init(directory: "runs/custom", checkpointEvery: 100,
                                       export: .init(format: .hdf5, mergeLoRA: false)))
        #expect(recipe.plugins == ["plugins/libmine.so"])
    }

    /// Recomputing activations changes memory and time, never results: the hash (the ledger's,
    /// the one `--resume` compares) leaves the key out, so recipes hash as before the key
    /// existed; any other change still changes the hash.
    @Test func recomputingActivationsLeavesTheHashAlone() throws {
        let recipe = try Self.parse(Self.minimal)
        var recomputing = recipe
        recomputing.training.recomputeActivations = true
        #expect(recomputing.hash == recipe.hash)
        #expect(recipe.resolvedJSON.contains("\"recompute_activations\": false"))
        #expect(!recipe.hashedJSON.contains("recompute_activations"))
        var other = recipe
        other.training.physicalBatchSize += 1
        #expect(other.hash != recipe.hash)
    }

    @Test func missingKeysTakeTheirDefaults() throws {
        let recipe = try Self.parse(Self.minimal)
        #expect(recipe.name == "recipe")  // the file name without extension
        #expect(recipe.description == nil)
        #expect(recipe.model.tokenizer == nil)
        #expect(recipe.adapter == .none)
        let data = recipe.data
        #expect(data.eval == nil && data.format == .auto && data.template == .alpaca)
        #expect(data.chatTemplate == .init(system: "<|system|>\n{content}\n", user: "<|user|>\n{content}\n",
                                           assistant: "<|assistant|>\n{content}\n"))
        #expect(data.maxLength == 256 && data.trainOn == .response && data.onMalformed == .stop)
        #expect(data.addBOS && data.addEOS)
        let privacy = try #require(recipe.privacy)
        #expect(privacy.noise == .targetEpsilon(8) && privacy.targetEpsilon == 8 && privacy.noiseMultiplier == nil)
        #expect(privacy.delta == 1e-5 && privacy.accountant == .prv && privacy.clipping == .automatic(gamma: 0.01))
        #expect(privacy.threshold == 1 && privacy.grouping == "all-layer" && privacy.groupingOptions == [:])
        #expect(privacy.rules == nil && privacy.noiseSeed == nil && privacy.sampling == .poisson)
        let training = recipe.training
        #expect(training.length == .epochs(1) && training.epochs == 1 && training.steps == nil)
        #expect(training.batchSize == 64 && training.physicalBatchSize == 16)
        #expect(training.optimizer == .init(name: .adamw, learningRate: 1e-3, momentum: 0, beta1: 0.9, beta2: 0.999,
                                            epsilon: 1e-8, weightDecay: 0.01))
        #expect(training.schedule == .init(name: .constant, warmupSteps: 0, minLearningRate: 0))
        #expect(training.seed == 0 && training.evalEvery == 0 && training.evalExamples == 200)
        #expect(training.generateExamples == 100 && training.maxNewTokens == 16 && !training.recomputeActivations)
        #expect(recipe.output == .init(directory: "runs/recipe", checkpointEvery: 0, export: nil))
        #expect(recipe.plugins == [])
    }

    @Test func defaultsThatDependOnOtherKeys() throws {
        // physical_batch_size = min(batch_size, 16).
        #expect(try Self.parse(Self.minimal(with: "training.batch_size", 5)).training.physicalBatchSize == 5)
        // weight_decay: 0.01 for AdamW, 0 for Adam and SGD.
        #expect(try Self.parse(Self.minimal(with: "training.optimizer.name", "adam")).training.optimizer.weightDecay == 0)
        #expect(try Self.parse(Self.minimal(with: "training.optimizer.name", "sgd")).training.optimizer.weightDecay == 0)
        // output.directory follows the name.
        #expect(try Self.parse(Self.minimal(with: "name", "lora-8")).output.directory == "runs/lora-8")
        // An empty export object takes its defaults.
        #expect(try Self.parse(Self.minimal(with: "output.export", [String: Any]())).output.export
                == .init(format: .safetensors, mergeLoRA: true))
        // A rules file is shorthand for the `rules` strategy with option `file`.
        let privacy = try #require(try Self.parse(Self.variant).privacy)
        #expect(privacy.grouping == "rules" && privacy.groupingOptions == ["file": "recipes/rules/attention-vs-rest.json"])
        #expect(privacy.clipping == .abadi)
    }

    @Test func nullOnAKeyWithADefaultMeansTheDefault() throws {
        let recipe = try Self.parse(Self.minimal(with: "data.max_length", NSNull()))
        #expect(recipe.data.maxLength == 256)
    }

    @Test func resolvedJSONIsSortedPrettyAndComplete() throws {
        let recipe = try Self.parse(Self.minimal)
        let text = recipe.resolvedJSON
        #expect(text.hasPrefix("{\n  \"adapter\": {\n    \"type\": \"none\"\n  },\n  \"data\": {"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object.keys.sorted() == ["adapter", "data", "description", "model", "name", "output", "plugins",
                                         "privacy", "training"])
        let training = try #require(object["training"] as? [String: Any])
        #expect(training["epochs"] as? Double == 1 && training["steps"] == nil)
        #expect(training["physical_batch_size"] as? Int == 16)
        let optimizer = try #require(training["optimizer"] as? [String: Any])
        #expect(optimizer.keys.sorted() == ["beta1", "beta2", "epsilon", "learning_rate", "name", "weight_decay"])
        let privacy = try #require(object["privacy"] as? [String: Any])
        #expect(privacy["delta"] as? Double == 1e-5 && privacy["noise_seed"] is NSNull && privacy["gamma"] as? Double == 0.01)
        #expect((object["data"] as? [String: Any])?["template"] as? String == "alpaca")
        #expect(object["output"].flatMap { $0 as? [String: Any] }?["directory"] as? String == "runs/recipe")
        // Keys of one object come out in sorted order.
        let keys = text.split(separator: "\n").filter { $0.hasPrefix("  \"") }.map { $0.split(separator: "\"")[1] }
        #expect(keys == keys.sorted())
    }

    @Test func relativePathsStayAsWritten() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("paths.json")
        try Self.minimal.write(to: url, atomically: true, encoding: .utf8)
        let recipe = try Recipe.load(from: url)
        #expect(recipe.name == "paths")
        #expect(recipe.model.checkpoint == "checkpoints/base.h5" && recipe.data.train == "data/train.jsonl")
    }

    @Test func largeSeedsStayExact() throws {
        let recipe = try Self.parse(Self.minimal(with: "training.seed", UInt64(18_446_744_073_709_551_615)))
        #expect(recipe.training.seed == UInt64.max)
        #expect(recipe.resolvedJSON.contains("\"seed\": 18446744073709551615"))
    }

    // MARK: Privacy must be explicit

    @Test func absentPrivacyIsAnErrorAndNullIsNonPrivate() throws {
        let error = Self.error(try Self.minimal(with: "privacy", nil))
        #expect(error?.keyPath == "privacy")
        #expect(error?.description == "recipe.json: \"privacy\" is required; give a budget, e.g. \"privacy\": "
                + "{\"target_epsilon\": 8}, or write \"privacy\": null for non-private training")
        #expect(try Self.parse(Self.nonPrivate).privacy == nil)
        #expect(try Self.parse(Self.nonPrivate).resolvedJSON.contains("\"privacy\": null"))
    }

    // MARK: Unknown keys

    @Test(arguments: [
        ("trainig", "trainig", "training"),
        ("training.optimzer", "training.optimzer", "training.optimizer"),
        ("training.optimizer.learnin_rate", "training.optimizer.learnin_rate", "training.optimizer.learning_rate"),
        ("data.template.promt", "data.template.promt", "data.template.prompt"),
        ("output.export.mergeLora", "output.export.mergeLora", "output.export.merge_lora"),
        ("privacy.sigma", "privacy.sigma", "privacy.noise_multiplier"),
        ("training.optimizer.lr", "training.optimizer.lr", "training.optimizer.learning_rate"),
        ("training.delta", "training.delta", "privacy.delta"),  // a key of another section
    ])
    func unknownKeysAreNamedWithASuggestion(written: String, keyPath: String, suggestion: String) throws {
        var text = try Self.minimal(with: written, 1)
        if written.hasPrefix("data.template") {
            // A template object needs its other keys for the unknown one to be the first fault.
            text = try Self.minimal(with: "data.template", ["promt": "x", "prompt": "{instruction}{input}",
                                                            "prompt_no_input": "{instruction}", "response": "{output}"])
        }
        let error = Self.error(text)
        #expect(error == .unknownKey(file: "recipe.json", keyPath: keyPath, suggestion: suggestion,
                                     known: RecipeSchema.sections[keyPath.split(separator: ".").dropLast()
                                        .joined(separator: ".")]!))
        #expect(error?.description == "recipe.json: unknown key \"\(keyPath)\" (did you mean \"\(suggestion)\"?)")
    }

    @Test func unknownKeyWithoutACloseMatchListsTheKeysAllowed() throws {
        let error = Self.error(try Self.minimal(with: "model.revision", "main"))
        #expect(error == .unknownKey(file: "recipe.json", keyPath: "model.revision", suggestion: nil,
                                     known: ["checkpoint", "tokenizer"]))
        #expect(error?.description == "recipe.json: unknown key \"model.revision\"; keys allowed in \"model\": checkpoint, tokenizer")
    }

    @Test func groupingOptionsAreLeftToTheStrategy() throws {
        let recipe = try Self.parse(Self.minimal(with: "privacy.grouping_options", ["anything": [1, 2]]))
        #expect(recipe.privacy?.groupingOptions == ["anything": [1, 2]])
    }

    // MARK: Types and ranges

    @Test(arguments: [
        ("training.batch_size", "\"64\"", "an integer ≥ 1"),
        ("training.batch_size", "2.5", "an integer ≥ 1"),
        ("data.add_bos", "1", "true or false"),
        ("adapter", "\"lora\"", "an object"),
        ("privacy.delta", "\"small\"", "in (0, 1)"),
        ("model.checkpoint", "[\"a.h5\"]", "a non-empty path"),
        ("data.template", "3", "\"alpaca\" or an object {\"prompt\", \"prompt_no_input\", \"response\"}"),
        ("privacy.grouping_options", "\"per=block\"", "an object of the strategy's options, e.g. {\"per\": \"block\"}"),
        ("plugins", "\"libx.so\"", "a list of shared-library paths"),
    ])
    func wrongTypesNameKeyValueAndType(keyPath: String, fragment: String, expected: String) throws {
        let error = Self.error(try Self.minimal(with: keyPath, Self.value(fragment)))
        guard case .wrongType(let file, let path, _, let wanted)? = error else {
            Issue.record("expected wrongType at \(keyPath), got \(String(describing: error))")
            return
        }
        #expect(file == "recipe.json" && path == keyPath && wanted == expected)
        #expect(error!.description.hasPrefix("recipe.json: \"\(keyPath)\" = "))
    }

    @Test func wrongTypeMessage() {
        let error = Self.error(try! Self.minimal(with: "training.batch_size", "64"))
        #expect(error?.description == "recipe.json: \"training.batch_size\" = \"64\" must be an integer ≥ 1")
    }

    @Test func aBadListElementIsNamedByIndex() throws {
        let error = Self.error(try Self.minimal(with: "adapter", ["type": "lora", "rank": 8, "alpha": 16,
                                                                   "targets": ["q_proj", 3]]))
        #expect(error == .wrongType(file: "recipe.json", keyPath: "adapter.targets[1]", value: "3",
                                    expected: "a non-empty string"))
    }

    @Test(arguments: [
        ("privacy.delta", "2", "2", "in (0, 1)"),
        ("privacy.target_epsilon", "0", "0", "a number > 0"),
        ("privacy.threshold", "-1", "-1", "a number > 0"),
        ("privacy.accountant", "\"moments\"", "\"moments\"", "one of \"rdp\", \"prv\""),
        ("privacy.sampling", "\"shuffle\"", "\"shuffle\"", "\"poisson\" (the only value)"),
        ("privacy.noise_seed", "-1", "-1", "an integer in 0...18446744073709551615"),
        ("data.max_length", "4", "4", "an integer in 8...65536"),
        ("data.format", "\"jsonl\"", "\"jsonl\"", "one of \"auto\", \"alpaca\", \"chat\", \"text\", \"tokens\""),
        ("data.chat_template.user", "\"<u>\"", "\"<u>\"", "a string containing {content}"),
        ("training.batch_size", "0", "0", "an integer ≥ 1"),
        ("training.optimizer.beta1", "1", "1", "a number in [0, 1)"),
        ("training.optimizer.learning_rate", "0", "0", "a number > 0"),
        ("training.schedule.name", "\"step\"", "\"step\"", "one of \"constant\", \"linear\", \"cosine\""),
        ("training.max_new_tokens", "0", "0", "an integer ≥ 1"),
        ("output.export.format", "\"onnx\"", "\"onnx\"", "one of \"safetensors\", \"hdf5\""),
        ("name", "\"a/b\"", "\"a/b\"", "a non-empty name without \"/\""),
    ])
    func outOfRangeValuesNameKeyValueAndRange(keyPath: String, fragment: String, shown: String, allowed: String) throws {
        let error = Self.error(try Self.minimal(with: keyPath, Self.value(fragment)))
        #expect(error == .invalidValue(file: "recipe.json", keyPath: keyPath, value: shown, allowed: allowed))
    }

    @Test func rangeMessage() throws {
        let error = Self.error(try Self.minimal(with: "privacy.delta", 2))
        #expect(error?.description == "recipe.json: \"privacy.delta\" = 2 must be in (0, 1)")
    }

    @Test func loraAndTemplateChecks() throws {
        let lora = Self.error(try Self.minimal(with: "adapter", ["type": "lora", "rank": 0, "alpha": 16, "targets": ["q"]]))
        #expect(lora?.keyPath == "adapter.rank")
        let noTargets = Self.error(try Self.minimal(with: "adapter", ["type": "lora", "rank": 8, "alpha": 16, "targets": []]))
        #expect(noTargets == .invalidValue(file: "recipe.json", keyPath: "adapter.targets", value: "[]",
                                           allowed: "a non-empty list of module names"))
        let prompt = Self.error(try Self.minimal(with: "data.template", [
            "prompt": "{instruction}", "prompt_no_input": "{instruction}", "response": "{output}"]))
        #expect(prompt?.keyPath == "data.template.prompt")
        let name = Self.error(try Self.minimal(with: "data.template", "vicuna"))
        #expect(name?.keyPath == "data.template")
        let minimumRate = Self.error(try Self.minimal(with: "training", [
            "batch_size": 8, "optimizer": ["learning_rate": 0.01],
            "schedule": ["name": "cosine", "min_learning_rate": 0.1]]))
        #expect(minimumRate?.keyPath == "training.schedule.min_learning_rate")
    }

    // MARK: Exclusive, inapplicable and missing keys

    @Test func privacyNeedsExactlyOneBudget() throws {
        let both = Self.error(try Self.minimal(with: "privacy.noise_multiplier", 1.0))
        #expect(both == .exclusiveKeys(file: "recipe.json", keyPath: "privacy", keys: ["target_epsilon", "noise_multiplier"],
                                       required: true, found: ["target_epsilon", "noise_multiplier"]))
        #expect(both?.description.hasPrefix(
            "recipe.json: \"privacy\" needs exactly one of \"target_epsilon\" and \"noise_multiplier\"") == true)
        let neither = Self.error(try Self.minimal(with: "privacy", ["delta": 1e-6]))
        #expect(neither == .exclusiveKeys(file: "recipe.json", keyPath: "privacy", keys: ["target_epsilon", "noise_multiplier"],
                                          required: true, found: []))
        // σ = 0 with privacy on would publish a ledger with ε = ∞: refused, naming the way to
        // train without privacy (issue 12 item 4).
        let zero = Self.error(try Self.minimal(with: "privacy", ["noise_multiplier": 0]))
        #expect(zero?.description.contains("privacy.noise_multiplier") == true)
        #expect(zero?.description.contains(#""privacy": null"#) == true, "\(String(describing: zero))")
        #expect(try Self.parse(Self.minimal(with: "privacy", ["noise_multiplier": 1e-3])).privacy?.noiseMultiplier == 1e-3)
    }

    @Test func trainingTakesEpochsOrSteps() throws {
        let both = Self.error(try Self.minimal(with: "training", ["batch_size": 8, "epochs": 2, "steps": 100]))
        #expect(both == .exclusiveKeys(file: "recipe.json", keyPath: "training", keys: ["epochs", "steps"],
                                       required: false, found: ["epochs", "steps"]))
        #expect(both?.description == "recipe.json: \"training\" takes at most one of \"epochs\" and \"steps\" "
                + "(\"epochs\" and \"steps\" are both given; to switch with --set, set the other to null)")
        #expect(try Self.parse(Self.minimal(with: "training.steps", 100)).training.length == .steps(100))
    }

    @Test(arguments: [
        ("training.optimizer.momentum", "applies only to optimizer \"sgd\", not \"adamw\"; remove it"),
        ("privacy.gamma", "applies only to clipping \"automatic\", not \"abadi\"; remove it"),
        ("adapter.rank", "applies only to adapter type \"lora\", not \"none\"; remove it"),
        ("training.schedule.min_learning_rate",
         "applies only to schedules \"linear\" and \"cosine\", not \"constant\"; remove it"),
    ])
    func keysThatDoNotApplyAreErrors(keyPath: String, reason: String) throws {
        var text = try Self.minimal(with: keyPath, 0.5)
        if keyPath == "privacy.gamma" { text = try Self.minimal(with: "privacy", ["target_epsilon": 1, "clipping": "abadi", "gamma": 0.1]) }
        if keyPath == "adapter.rank" { text = try Self.minimal(with: "adapter", ["type": "none", "rank": 8]) }
        #expect(Self.error(text) == .conflict(file: "recipe.json", keyPath: keyPath, reason: reason))
    }

    @Test func rulesConflictWithAnotherGrouping() throws {
        let error = Self.error(try Self.minimal(with: "privacy", ["target_epsilon": 1, "grouping": "layer-wise",
                                                                   "rules": "r.json"]))
        #expect(error?.keyPath == "privacy.rules")
    }

    @Test(arguments: [
        ("model.checkpoint", "model.checkpoint"),
        ("data", "data"),
        ("data.train", "data.train"),
        ("training.batch_size", "training.batch_size"),
        ("model", "model"),
    ])
    func missingRequiredKeysAreNamed(removed: String, keyPath: String) throws {
        let error = Self.error(try Self.minimal(with: removed, nil))
        guard case .missingKey(let file, let path, _)? = error else {
            Issue.record("expected missingKey at \(keyPath), got \(String(describing: error))")
            return
        }
        #expect(file == "recipe.json" && path == keyPath)
        #expect(error!.description.hasPrefix("recipe.json: \"\(keyPath)\" is required; "))
    }

    @Test func loraNeedsRankAlphaAndTargets() throws {
        let error = Self.error(try Self.minimal(with: "adapter", ["type": "lora", "rank": 8, "targets": ["q_proj"]]))
        #expect(error?.keyPath == "adapter.alpha")
        let untyped = Self.error(try Self.minimal(with: "adapter", ["rank": 8]))
        #expect(untyped?.keyPath == "adapter.type")
    }

    // MARK: JSON errors

    @Test func invalidJSONGivesLineAndColumn() {
        let error = Self.error("{\n  \"name\": \"x\",\n  \"model\": {\"checkpoint\": \"c.h5\",}\n}")
        guard case .notJSON(let file, let reason)? = error else {
            Issue.record("expected notJSON, got \(String(describing: error))")
            return
        }
        #expect(file == "recipe.json")
        #expect(reason.hasPrefix("line 3, column "))
        #expect(reason.contains("trailing comma"))
        #expect(error!.description.hasPrefix("recipe.json: not valid JSON (line 3"))
    }

    @Test(arguments: [
        ("{\"name\": 'x'}", "line 1, column 10: strings need double quotes, not single quotes"),
        ("{\n  // why\n  \"name\": \"x\"}", "line 2, column 3: JSON has no comments; say what a recipe is for in \"description\""),
        ("{\"name\": \"x\"} {}", "line 1, column 15: unexpected \"{\"; expected the end of the text after the JSON value"),
        ("{\"seed\": 01}", "line 1, column 11: invalid number: leading zeros are not allowed"),
        ("", "line 1, column 1: unexpected end of text; expected a value"),
    ])
    func jsonErrorsSayWhereAndWhy(text: String, reason: String) {
        #expect(Self.error(text) == .notJSON(file: "recipe.json", reason: reason))
    }

    @Test func duplicateKeysAreErrors() {
        let error = Self.error("{\"training\": {\"seed\": 1, \"seed\": 2}}")
        #expect(error == .duplicateKey(file: "recipe.json", keyPath: "training.seed", line: 1, column: 26))
        #expect(error?.description == "recipe.json:1:26: key \"training.seed\" appears more than once; keep one")
    }

    @Test func theRecipeMustBeAnObject() {
        #expect(Self.error("[1, 2]") == .wrongType(file: "recipe.json", keyPath: "", value: "[1, 2]", expected: "a JSON object"))
    }

    @Test func unreadableFile() {
        let url = URL(fileURLWithPath: "/nonexistent-dpft/recipe.json")
        #expect(throws: RecipeError.unreadable(file: "/nonexistent-dpft/recipe.json", reason: "no such file")) {
            try Recipe.load(from: url)
        }
    }

    // MARK: Overrides

    @Test func overridesSetNumbersStringsBooleansNullsListsAndObjects() throws {
        let recipe = try Self.parse(Self.minimal, [
            "training.optimizer.learning_rate=5e-4",           // number
            "model.checkpoint=checkpoints/other.h5",            // bare string
            "data.eval=\"data/eval.jsonl\"",                    // quoted string
            "data.add_eos=false",                               // boolean
            "privacy.target_epsilon=null",                      // null: back to absent…
            "privacy.noise_multiplier=1.1",                     // …so the other alternative can be set
            "output.export.format=hdf5",                        // creates output and output.export
            "adapter={\"type\": \"lora\", \"rank\": 4, \"alpha\": 8, \"targets\": [\"c_attn\"]}",  // object
            "adapter.targets=[\"c_attn\", \"c_proj\"]",         // list, into the object just set
            "training.seed=7",
            "training.seed=9",                                  // later overrides win
        ])
        #expect(recipe.training.optimizer.learningRate == 5e-4)
        #expect(recipe.model.checkpoint == "checkpoints/other.h5")
        #expect(recipe.data.eval == "data/eval.jsonl")
        #expect(recipe.data.addEOS == false)
        #expect(recipe.privacy?.noise == .noiseMultiplier(1.1))
        #expect(recipe.output.export == .init(format: .hdf5, mergeLoRA: true))
        #expect(recipe.adapter == .lora(LoRAConfig(rank: 4, alpha: 8, targets: ["c_attn", "c_proj"])))
        #expect(recipe.training.seed == 9)
    }

    @Test func overridesCanSwitchStepsAndEpochsAndMakeARunNonPrivate() throws {
        let steps = try Self.parse(Self.minimal, ["training.steps=50"])
        #expect(steps.training.length == .steps(50))
        let base = try Self.minimal(with: "training.steps", 50)
        let epochs = try Self.parse(base, ["training.steps=null", "training.epochs=3"])
        #expect(epochs.training.length == .epochs(3))
        #expect(try Self.parse(Self.minimal, ["privacy=null"]).privacy == nil)
    }

    @Test func overridingAnUnknownKeyIsTheUnknownKeyError() {
        let error = Self.error(Self.minimal, ["training.optimzer.learning_rate=0.1"])
        #expect(error == .unknownKey(file: "recipe.json with --set training.optimzer.learning_rate=0.1",
                                     keyPath: "training.optimzer", suggestion: "training.optimizer",
                                     known: RecipeSchema.sections["training"]!))
        #expect(error?.description == "recipe.json with --set training.optimzer.learning_rate=0.1: unknown key "
                + "\"training.optimzer\" (did you mean \"training.optimizer\"?)")
    }

    @Test func aBadOverriddenValueNamesTheOverride() {
        let error = Self.error(Self.minimal, ["training.batch_size=many"])
        #expect(error == .wrongType(file: "recipe.json with --set training.batch_size=many", keyPath: "training.batch_size",
                                    value: "\"many\"", expected: "an integer ≥ 1"))
    }

    @Test(arguments: [
        ("training.steps", "no \"=\""),
        ("=5", "empty key path"),
        (" =5", "empty key path"),
        ("training..steps=5", "empty key in key path \"training..steps\""),
        (".steps=5", "empty key in key path \".steps\""),
    ])
    func malformedOverridesAreQuoted(override: String, reason: String) {
        let error = Self.error(Self.minimal, [override])
        #expect(error == .malformedOverride(override: override, reason: reason))
        #expect(error?.description.hasPrefix("--set \"\(override)\": \(reason); write key.path=value") == true)
    }

    @Test func overrideValuesThatLookLikeJSONMustBeJSON() {
        let error = Self.error(Self.minimal, ["adapter={\"type\": \"lora\""])
        guard case .malformedOverride(let override, let reason)? = error else {
            Issue.record("expected malformedOverride, got \(String(describing: error))")
            return
        }
        #expect(override == "adapter={\"type\": \"lora\"")
        #expect(reason.hasPrefix("the value is not valid JSON (line 1, column "))
    }

    @Test func overridingInsideAScalarIsAnError() {
        let error = Self.error(Self.minimal, ["data.train.path=x"])
        #expect(error == .malformedOverride(
            override: "data.train.path=x",
            reason: "\"data.train\" is \"data/train.jsonl\", not an object, so it has no key \"path\"; set \"data.train\" as a whole"))
    }

    // MARK: Hash

    @Test func hashDependsOnContentOnly() throws {
        let a = try Self.parse(Self.minimal)
        // The same content with another key order and layout, and some defaults written out.
        let b = try Self.parse("""
            {"training": {"batch_size": 64, "epochs": 1},
                "privacy": {"accountant": "prv", "target_epsilon": 8.0, "sampling": "poisson"},
              "data": {"train": "data/train.jsonl", "template": "alpaca"},
              "model": {"tokenizer": null, "checkpoint": "checkpoints/base.h5"}}
            """)
        #expect(a.hash == b.hash)
        #expect(try Self.parse(Self.full).hash == Self.parse(Self.full.replacingOccurrences(of: "\n", with: " ")).hash)
        #expect(a.hash.count == 64 && a.hash.allSatisfy { $0.isHexDigit && !$0.isUppercase })
        let digest = SHA256.hash(data: Data(a.hashedJSON.utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(a.hash == digest)
        // what is hashed is the resolved recipe without the keys outside the hash
        #expect(a.hashedJSON == a.resolvedJSON.replacingOccurrences(of: "    \"recompute_activations\": false,\n", with: ""))
        #expect(a.hashedJSON != a.resolvedJSON)
        // One change, one different hash.
        let c = try Self.parse(Self.minimal, ["training.seed=1"])
        #expect(c.hash != a.hash)
        let d = try Self.parse(Self.minimal, ["privacy.delta=1.1e-5"])
        #expect(d.hash != a.hash && d.hash != c.hash)
    }

    /// The ledger publishes the hash: it must not depend on the noise seed's value (a guessable
    /// seed could be found by hashing candidates), only on whether the run is seeded.
    @Test func hashDoesNotDependOnTheNoiseSeed() throws {
        let unseeded = try Self.parse(Self.minimal)
        let seeded = try Self.parse(Self.minimal, ["privacy.noise_seed=123456789"])
        let otherSeed = try Self.parse(Self.minimal, ["privacy.noise_seed=987654321"])
        #expect(seeded.hash == otherSeed.hash)
        #expect(seeded.hash != unseeded.hash)
        #expect(seeded.resolvedJSON.contains("123456789"))  // the run directory's copy keeps it
        let digest = SHA256.hash(data: Data(seeded.resolvedJSON.utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(seeded.hash != digest)
    }

    // MARK: Suggestions

    @Test func editDistanceCountsSwapsAsOneEdit() {
        #expect(RecipeSchema.editDistance("rnak", "rank") == 1)
        #expect(RecipeSchema.editDistance("optimzer", "optimizer") == 1)
        #expect(RecipeSchema.editDistance("", "abc") == 3)
        #expect(RecipeSchema.suggestion(for: "batchSize", in: "training") == "training.batch_size")
        #expect(RecipeSchema.suggestion(for: "batch", in: "training") == "training.batch_size")
        #expect(RecipeSchema.suggestion(for: "zzz", in: "training") == nil)
    }

    @Test func knownKeysListEveryLeaf() {
        #expect(Recipe.knownKeys.contains("training.optimizer.learning_rate"))
        #expect(Recipe.knownKeys.contains("privacy.grouping_options"))
        #expect(Recipe.knownKeys == Recipe.knownKeys.sorted())
    }
}


extension RecipeTests {
    /// The recipes shipped in recipes/ (top level; models/ and rules/ hold other files) load
    /// and survive the round trip through their resolved form.
    @Test func shippedRecipesAreValid() throws {
        let directory = Fixtures.directory.deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("recipes")
        let files = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "json" }
        for file in files {
            let recipe = try Recipe.load(from: file)
            #expect(recipe.name == file.deletingPathExtension().lastPathComponent, "\(file.lastPathComponent)")
            #expect(try Recipe.parse(json: recipe.resolvedJSON, file: file.lastPathComponent) == recipe)
        }
    }
}
