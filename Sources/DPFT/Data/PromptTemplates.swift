import Foundation

/// A bad template (from a recipe) or a record a template cannot format.
public enum TemplateError: Error, CustomStringConvertible, Equatable {
    /// A template string lacks a placeholder it must contain.
    case missingPlaceholder(template: String, placeholder: String)
    /// A chat message's role has no format in the chat template.
    case unknownRole(role: String, message: Int, known: [String])
    /// A chat record without messages.
    case emptyConversation
    /// `maxLength` below 1.
    case invalidMaxLength(Int)

    public var description: String {
        switch self {
        case .missingPlaceholder(let template, let placeholder):
            return "template `\(template)` must contain the placeholder \(placeholder)."
        case .unknownRole(let role, let message, let known):
            return "chat message \(message) has role \"\(role)\", which the chat template does not format; "
                + "known roles: \(known.joined(separator: ", ")) (add a format for it to the template)."
        case .emptyConversation:
            return "a chat record has no messages."
        case .invalidMaxLength(let length):
            return "max_length \(length) is invalid: it must be 1 or more."
        }
    }
}

/// Fills `{name}` placeholders in one pass, so that placeholder-like text inside a value is
/// left as it is. Braces around any other name are kept literally.
func fillPlaceholders(_ template: String, _ values: [String: String]) -> String {
    var result = ""
    var rest = template[...]
    while let open = rest.firstIndex(of: "{") {
        result += rest[..<open]
        let afterOpen = rest.index(after: open)
        if let close = rest[afterOpen...].firstIndex(of: "}"),
           let value = values[String(rest[afterOpen..<close])] {
            result += value
            rest = rest[rest.index(after: close)...]
        } else {
            result += "{"
            rest = rest[afterOpen...]
        }
    }
    return result + rest
}

/// How an instruction record (`{"instruction", "input"?, "output"}`) becomes text: a prompt
/// (not trained on) and a response (trained on).
public struct InstructionTemplate: Sendable, Equatable, Codable {
    /// The prompt when the record has a non-empty input; contains `{instruction}` and `{input}`.
    public var prompt: String
    /// The prompt when the input is absent or empty; contains `{instruction}`.
    public var promptNoInput: String
    /// The response; contains `{output}`.
    public var response: String

    enum CodingKeys: String, CodingKey {
        case prompt, promptNoInput = "prompt_no_input", response
    }

    /// A custom template; throws `TemplateError.missingPlaceholder` when a string lacks its
    /// placeholder.
    public init(prompt: String, promptNoInput: String, response: String = "{output}") throws {
        for (text, placeholder) in [(prompt, "{instruction}"), (prompt, "{input}"),
                                    (promptNoInput, "{instruction}"), (response, "{output}")]
        where !text.contains(placeholder) {
            throw TemplateError.missingPlaceholder(template: text, placeholder: placeholder)
        }
        self.prompt = prompt
        self.promptNoInput = promptNoInput
        self.response = response
    }

    /// Reads `{"prompt", "prompt_no_input", "response"?}` (response defaults to "{output}").
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(prompt: try container.decode(String.self, forKey: .prompt),
                      promptNoInput: try container.decode(String.self, forKey: .promptNoInput),
                      response: try container.decodeIfPresent(String.self, forKey: .response) ?? "{output}")
    }

    /// The Stanford Alpaca template.
    public static let alpaca = try! InstructionTemplate(
        prompt: "Below is an instruction that describes a task, paired with an input that provides further context. "
            + "Write a response that appropriately completes the request.\n\n"
            + "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
        promptNoInput: "Below is an instruction that describes a task. "
            + "Write a response that appropriately completes the request.\n\n"
            + "### Instruction:\n{instruction}\n\n### Response:\n",
        response: "{output}")

    /// The prompt text; an empty input counts as none.
    public func promptText(instruction: String, input: String?) -> String {
        if let input, !input.isEmpty {
            return fillPlaceholders(prompt, ["instruction": instruction, "input": input])
        }
        return fillPlaceholders(promptNoInput, ["instruction": instruction])
    }

    /// The response text.
    public func responseText(output: String) -> String {
        fillPlaceholders(response, ["output": output])
    }
}

/// How each message of a chat record (`{"messages": [{"role", "content"}]}`) becomes text:
/// one format per role, with a `{content}` placeholder.
///
/// In an assistant message the text before `{content}` (the role header) is prompt; the
/// content and what follows it are the response.
public struct ChatTemplate: Sendable, Equatable, Codable {
    /// Format per role; each contains `{content}` once.
    public private(set) var formats: [String: String]
    /// The role whose messages are trained on.
    public static let assistantRole = "assistant"

    /// system `<|system|>\n{content}\n`, user `<|user|>\n{content}\n`,
    /// assistant `<|assistant|>\n{content}\n`.
    public static let defaultFormats = [
        "system": "<|system|>\n{content}\n",
        "user": "<|user|>\n{content}\n",
        "assistant": "<|assistant|>\n{content}\n",
    ]

    /// The default template.
    public static let `default` = try! ChatTemplate()

    /// `formats` replaces the default format of the roles it names (and may add roles).
    public init(formats: [String: String] = [:]) throws {
        var merged = Self.defaultFormats
        for (role, format) in formats {
            guard format.components(separatedBy: "{content}").count == 2 else {
                throw TemplateError.missingPlaceholder(template: format, placeholder: "{content} (exactly once)")
            }
            merged[role] = format
        }
        self.formats = merged
    }

    /// Reads a JSON object of role → format.
    public init(from decoder: any Decoder) throws {
        try self.init(formats: try decoder.singleValueContainer().decode([String: String].self))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(formats)
    }

    /// The text of `role`'s format before and after `{content}`.
    public func parts(role: String, message: Int) throws -> (header: String, trailer: String) {
        guard let format = formats[role] else {
            throw TemplateError.unknownRole(role: role, message: message, known: formats.keys.sorted())
        }
        let pieces = format.components(separatedBy: "{content}")
        return (pieces[0], pieces[1])
    }
}

/// Turns data records into token ids and labels with prompt templates (DESIGN.md §7).
///
/// Each piece of text is tokenized on its own and the ids concatenated, so the boundary
/// between prompt and response is exact (SentencePiece's dummy "▁" prefix starts every piece):
/// - instruction: `[BOS] + encode(prompt) + encode(response) + [EOS]`;
/// - chat: `[BOS]`, then per message: user/system (any role but assistant):
///   `encode(formatted message)`; assistant: `encode(header) + encode(content + trailer) + [EOS]`
///   (header/trailer = the role format's text before/after `{content}`);
/// - text: `[BOS] + encode(text) + [EOS]`;
/// - tokens: ids and labels as given (no BOS/EOS added).
/// BOS/EOS are added only when asked for and the tokenizer defines them (id ≥ 0).
///
/// Labels (aligned with the ids, −100 = not trained on, nil = every token):
/// `.response` masks BOS and every prompt token (instruction prompts, chat role headers,
/// user/system messages); response tokens and their EOS are labelled. `.all`, and every text
/// record, gives nil labels. With `maxLength`, examples are cut to that many tokens; an
/// example whose prompt fills `maxLength` is left with no labelled token (skip it).
public struct ExampleEncoder: Sendable {
    /// Which tokens of instruction and chat records are trained on.
    public enum TrainOn: String, Sendable, Equatable, CaseIterable, Codable {
        /// Response tokens (and their EOS) only.
        case response
        /// Every token.
        case all
    }

    public var tokenizer: Tokenizer
    public var instructionTemplate: InstructionTemplate
    public var chatTemplate: ChatTemplate
    /// Prepend the tokenizer's BOS (when it has one).
    public var addBOS: Bool
    /// Append the tokenizer's EOS after each response, and after a text record (when it has one).
    public var addEOS: Bool
    public var trainOn: TrainOn
    /// Cut examples to this many tokens (nil: no limit).
    public var maxLength: Int?

    public init(tokenizer: Tokenizer, instructionTemplate: InstructionTemplate = .alpaca,
                chatTemplate: ChatTemplate = .default, addBOS: Bool = true, addEOS: Bool = true,
                trainOn: TrainOn = .response, maxLength: Int? = nil) throws {
        if let maxLength, maxLength < 1 { throw TemplateError.invalidMaxLength(maxLength) }
        self.tokenizer = tokenizer
        self.instructionTemplate = instructionTemplate
        self.chatTemplate = chatTemplate
        self.addBOS = addBOS
        self.addEOS = addEOS
        self.trainOn = trainOn
        self.maxLength = maxLength
    }

    /// The ids and labels of `record`; `truncated` is true when `maxLength` cut it.
    public func encode(_ record: DataRecord) throws -> (example: TokenizedExample, truncated: Bool) {
        var example: TokenizedExample
        switch record {
        case .tokens(let ids, let labels):
            example = TokenizedExample(ids: ids, labels: labels)
        case .text(let text):
            example = try assemble([.special(bos), .text(text, trained: true), .special(eos)])
            example.labels = nil  // BOS's label is never scored (labels shift), so: every token
        case .instruction, .chat:
            example = try assemble(try segments(record, generation: false).segments)
            if trainOn == .all { example.labels = nil }
        }
        let truncated = maxLength.map { example.truncate(to: $0) } ?? false
        return (example, truncated)
    }

    /// The prompt to generate from and the reference answer, for evaluation by exact match:
    /// - instruction: `[BOS] + encode(prompt)`; reference = the formatted response (the output
    ///   itself with the Alpaca template);
    /// - chat: every message before the last assistant message, as in training (earlier
    ///   assistant turns keep their EOS), then the assistant header; reference = the last
    ///   assistant message's content (nil when there is none: the whole conversation and an
    ///   assistant header are the prompt);
    /// - text: `[BOS] + encode(text)`, tokens: the ids; reference nil.
    /// The prompt is not truncated.
    public func promptForGeneration(_ record: DataRecord) throws -> (promptIds: [Int], reference: String?) {
        switch record {
        case .tokens(let ids, _):
            return (ids, nil)
        case .text(let text):
            return (try assemble([.special(bos), .text(text, trained: true)]).ids, nil)
        case .instruction, .chat:
            let (segments, reference) = try segments(record, generation: true)
            return (try assemble(segments).ids, reference)
        }
    }

    /// The answer as compared by exact match: surrounding whitespace and newlines removed.
    public static func normalizeAnswer(_ s: String) -> String {
        s.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: - Segments

    private enum Segment {
        /// Text tokenized on its own; its tokens are labelled when `trained`.
        case text(String, trained: Bool)
        /// A special token (trained, prompt), absent when nil.
        case special(SpecialToken?)
    }

    private struct SpecialToken {
        var id: Int
        var trained: Bool
    }

    private var bos: SpecialToken? {
        addBOS && tokenizer.bosId >= 0 ? SpecialToken(id: tokenizer.bosId, trained: false) : nil
    }

    private var eos: SpecialToken? {
        addEOS && tokenizer.eosId >= 0 ? SpecialToken(id: tokenizer.eosId, trained: true) : nil
    }

    /// The segments of an instruction or chat record: the whole example, or (for generation)
    /// the prompt before the answer with the reference answer.
    private func segments(_ record: DataRecord, generation: Bool) throws -> (segments: [Segment], reference: String?) {
        switch record {
        case .instruction(let instruction, let input, let output):
            let prompt = Segment.text(instructionTemplate.promptText(instruction: instruction, input: input),
                                      trained: false)
            let response = instructionTemplate.responseText(output: output)
            if generation { return ([.special(bos), prompt], response) }
            return ([.special(bos), prompt, .text(response, trained: true), .special(eos)], nil)
        case .chat(let messages):
            guard !messages.isEmpty else { throw TemplateError.emptyConversation }
            let assistant = ChatTemplate.assistantRole
            let answered = generation ? messages.lastIndex { $0.role == assistant } : nil
            var segments: [Segment] = [.special(bos)]
            for (index, message) in messages.enumerated() {
                let (header, trailer) = try chatTemplate.parts(role: message.role, message: index)
                if index == answered {
                    segments.append(.text(header, trained: false))
                    return (segments, message.content)
                }
                if message.role == assistant {
                    segments += [.text(header, trained: false), .text(message.content + trailer, trained: true),
                                 .special(eos)]
                } else {
                    segments.append(.text(header + message.content + trailer, trained: false))
                }
            }
            if generation {
                let (header, _) = try chatTemplate.parts(role: assistant, message: messages.count)
                segments.append(.text(header, trained: false))
            }
            return (segments, nil)
        case .text, .tokens:
            preconditionFailure("segments(_:) handles instruction and chat records")
        }
    }

    /// Tokenizes each segment and concatenates; labels nil when every token is labelled.
    private func assemble(_ segments: [Segment]) throws -> TokenizedExample {
        var ids: [Int] = [], labels: [Int] = []
        for segment in segments {
            switch segment {
            case .text(let text, let trained):
                let pieceIds = try tokenizer.encode(text)
                ids += pieceIds
                labels += trained ? pieceIds : Array(repeating: Int(TokenBatch.ignoredLabel), count: pieceIds.count)
            case .special(let token):
                guard let token else { continue }
                ids.append(token.id)
                labels.append(token.trained ? token.id : Int(TokenBatch.ignoredLabel))
            }
        }
        let allLabelled = zip(ids, labels).allSatisfy { $0 == $1 }
        return TokenizedExample(ids: ids, labels: allLabelled ? nil : labels)
    }
}
