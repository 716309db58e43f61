import Foundation
import Testing
@testable import DPFT

private let ignored = -100

private func loadTokenizer() throws -> Tokenizer {
    try Tokenizer(contentsOf: Fixtures.url("tokenizer/tok.model")) // BPE, bos 1, eos 2
}

@Suite("Instruction and chat templates")
struct TemplateTextTests {
    @Test func alpacaTextIsExact() {
        let alpaca = InstructionTemplate.alpaca
        #expect(alpaca.promptText(instruction: "Add the numbers.", input: "2 and 3") ==
            "Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.\n\n### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 3\n\n### Response:\n")
        let noInput = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nSay hi.\n\n### Response:\n"
        #expect(alpaca.promptText(instruction: "Say hi.", input: nil) == noInput)
        #expect(alpaca.promptText(instruction: "Say hi.", input: "") == noInput)
        #expect(alpaca.responseText(output: "hi") == "hi")
    }

    @Test func placeholdersAreFilledOnceAndLiterally() throws {
        let template = try InstructionTemplate(prompt: "Q: {instruction} | {input} {other}\nA:",
                                               promptNoInput: "Q: {instruction}\nA:", response: " {output}.")
        // A value that looks like a placeholder stays as written.
        #expect(template.promptText(instruction: "say {input}", input: "x{") == "Q: say {input} | x{ {other}\nA:")
        #expect(template.responseText(output: "{output}") == " {output}.")
    }

    @Test func customTemplatesAreValidatedAndDecoded() throws {
        #expect(throws: TemplateError.missingPlaceholder(template: "Q: {instruction}", placeholder: "{input}")) {
            try InstructionTemplate(prompt: "Q: {instruction}", promptNoInput: "Q: {instruction}")
        }
        #expect(throws: TemplateError.missingPlaceholder(template: "A", placeholder: "{output}")) {
            try InstructionTemplate(prompt: "{instruction}{input}", promptNoInput: "{instruction}", response: "A")
        }
        let json = #"{"prompt": "I: {instruction} {input}\n", "prompt_no_input": "I: {instruction}\n"}"#
        let decoded = try JSONDecoder().decode(InstructionTemplate.self, from: Data(json.utf8))
        #expect(decoded == (try InstructionTemplate(prompt: "I: {instruction} {input}\n",
                                                    promptNoInput: "I: {instruction}\n", response: "{output}")))
        #expect(throws: (any Error).self) {
            try JSONDecoder().decode(InstructionTemplate.self, from: Data(#"{"prompt": "x", "prompt_no_input": "y"}"#.utf8))
        }

        let chat = try JSONDecoder().decode(ChatTemplate.self,
                                            from: Data(#"{"tool": "[tool] {content}\n", "user": "U: {content}\n"}"#.utf8))
        #expect(chat.formats["tool"] == "[tool] {content}\n")
        #expect(chat.formats["user"] == "U: {content}\n")
        #expect(chat.formats["assistant"] == "<|assistant|>\n{content}\n")
        #expect(throws: TemplateError.self) { try ChatTemplate(formats: ["user": "no placeholder"]) }
        #expect(throws: TemplateError.self) { try ChatTemplate(formats: ["user": "{content}{content}"]) }
    }

    @Test func normalizeAnswerTrimsWhitespaceAndNewlines() {
        #expect(ExampleEncoder.normalizeAnswer("  42 apples\n\n") == "42 apples")
        #expect(ExampleEncoder.normalizeAnswer("\t a  b \n") == "a  b")
        #expect(ExampleEncoder.normalizeAnswer(" \n ") == "")
    }
}

@Suite("Example encoder")
struct ExampleEncoderTests {
    let instruction = DataRecord.instruction(instruction: "Measure the budget.", input: "Every student reads.",
                                             output: "The model trains on the budget.")

    @Test func instructionMasksExactlyThePrompt() throws {
        let tokenizer = try loadTokenizer()
        let encoder = try ExampleEncoder(tokenizer: tokenizer)
        let promptIds = try tokenizer.encode(InstructionTemplate.alpaca.promptText(
            instruction: "Measure the budget.", input: "Every student reads."))
        let responseIds = try tokenizer.encode("The model trains on the budget.")
        let (example, truncated) = try encoder.encode(instruction)
        #expect(!truncated)
        #expect(example.ids == [1] + promptIds + responseIds + [2])
        #expect(example.labels == Array(repeating: ignored, count: 1 + promptIds.count) + responseIds + [2])

        // The labelled tokens are the response: they decode back to the output (EOS decodes to nothing).
        let labelled = example.labels!.filter { $0 != ignored }
        #expect(try tokenizer.decode(labelled) == "The model trains on the budget.")
        #expect(labelled.last == tokenizer.eosId)
        #expect(example.ids.first == tokenizer.bosId)
        #expect(!example.ids.dropFirst().contains(tokenizer.bosId))
        #expect(example.ids.filter { $0 == tokenizer.eosId }.count == 1)
    }

    @Test func bosAndEosFollowTheOptions() throws {
        let tokenizer = try loadTokenizer()
        let full = try ExampleEncoder(tokenizer: tokenizer).encode(instruction).example
        let bare = try ExampleEncoder(tokenizer: tokenizer, addBOS: false, addEOS: false).encode(instruction).example
        #expect(bare.ids == Array(full.ids.dropFirst().dropLast()))
        #expect(bare.labels == Array(full.labels!.dropFirst().dropLast()))
        let noEOS = try ExampleEncoder(tokenizer: tokenizer, addEOS: false).encode(instruction).example
        #expect(noEOS.ids == Array(full.ids.dropLast()))
    }

    @Test func trainOnAllLabelsEveryToken() throws {
        let tokenizer = try loadTokenizer()
        let response = try ExampleEncoder(tokenizer: tokenizer).encode(instruction).example
        let all = try ExampleEncoder(tokenizer: tokenizer, trainOn: .all).encode(instruction).example
        #expect(all.ids == response.ids)
        #expect(all.labels == nil)
    }

    @Test func truncationIsReported() throws {
        let tokenizer = try loadTokenizer()
        let full = try ExampleEncoder(tokenizer: tokenizer).encode(instruction).example
        let exact = try ExampleEncoder(tokenizer: tokenizer, maxLength: full.ids.count).encode(instruction)
        #expect(!exact.truncated && exact.example == full)
        let cut = try ExampleEncoder(tokenizer: tokenizer, maxLength: full.ids.count - 3).encode(instruction)
        #expect(cut.truncated)
        #expect(cut.example.ids == Array(full.ids.prefix(full.ids.count - 3)))
        #expect(cut.example.labels == Array(full.labels!.prefix(full.ids.count - 3)))
        #expect(throws: TemplateError.invalidMaxLength(0)) { try ExampleEncoder(tokenizer: tokenizer, maxLength: 0) }
    }

    @Test func chatTrainsOnAssistantContentOnly() throws {
        let tokenizer = try loadTokenizer()
        let messages: [DataRecord.ChatMessage] = [
            .init(role: "system", content: "Protect the budget."),
            .init(role: "user", content: "What does the model read?"),
            .init(role: "assistant", content: "The model reads each sentence."),
            .init(role: "user", content: "And then?"),
            .init(role: "assistant", content: "The model clips the gradient."),
        ]
        let (example, truncated) = try ExampleEncoder(tokenizer: tokenizer).encode(.chat(messages))
        #expect(!truncated)
        func encode(_ text: String) throws -> [Int] { try tokenizer.encode(text) }
        let system = try encode("<|system|>\nProtect the budget.\n")
        let user1 = try encode("<|user|>\nWhat does the model read?\n")
        let header = try encode("<|assistant|>\n")
        let answer1 = try encode("The model reads each sentence.\n")
        let user2 = try encode("<|user|>\nAnd then?\n")
        let answer2 = try encode("The model clips the gradient.\n")
        #expect(example.ids == [1] + system + user1 + header + answer1 + [2] + user2 + header + answer2 + [2])
        func masked(_ ids: [Int]) -> [Int] { Array(repeating: ignored, count: ids.count) }
        #expect(example.labels == [ignored] + masked(system) + masked(user1) + masked(header) + answer1 + [2]
                + masked(user2) + masked(header) + answer2 + [2])
        // This tokenizer has no piece for "\n" (it decodes as " ⁇ "); the content comes back whole.
        #expect(try tokenizer.decode(answer2).hasPrefix("The model clips the gradient."))

        let all = try ExampleEncoder(tokenizer: tokenizer, trainOn: .all).encode(.chat(messages)).example
        #expect(all.ids == example.ids && all.labels == nil)

        #expect(throws: TemplateError.unknownRole(role: "tool", message: 1, known: ["assistant", "system", "user"])) {
            try ExampleEncoder(tokenizer: tokenizer).encode(.chat([messages[1], .init(role: "tool", content: "x")]))
        }
        #expect(throws: TemplateError.emptyConversation) { try ExampleEncoder(tokenizer: tokenizer).encode(.chat([])) }
    }

    @Test func textAndTokenRecords() throws {
        let tokenizer = try loadTokenizer()
        let encoder = try ExampleEncoder(tokenizer: tokenizer)
        let text = try encoder.encode(.text("Every student reads the budget."))
        #expect(text.example.ids == [1] + (try tokenizer.encode("Every student reads the budget.")) + [2])
        #expect(text.example.labels == nil)

        let tokens = try encoder.encode(.tokens(ids: [5, 6, 7, 8], labels: [-100, -100, 7, 8]))
        #expect(tokens.example == TokenizedExample(ids: [5, 6, 7, 8], labels: [-100, -100, 7, 8]) && !tokens.truncated)
        let cut = try ExampleEncoder(tokenizer: tokenizer, maxLength: 3).encode(.tokens(ids: [5, 6, 7, 8], labels: nil))
        #expect(cut.example == TokenizedExample(ids: [5, 6, 7], labels: nil) && cut.truncated)
    }

    @Test func generationPromptsAreTheTrainingPrefix() throws {
        let tokenizer = try loadTokenizer()
        let encoder = try ExampleEncoder(tokenizer: tokenizer)

        let training = try encoder.encode(instruction).example
        let (prompt, reference) = try encoder.promptForGeneration(instruction)
        let promptLength = training.labels!.firstIndex { $0 != ignored }!
        #expect(prompt == Array(training.ids.prefix(promptLength)))
        #expect(reference == "The model trains on the budget.")

        let messages: [DataRecord.ChatMessage] = [
            .init(role: "user", content: "What does the model read?"),
            .init(role: "assistant", content: "The model reads each sentence."),
            .init(role: "user", content: "And then?"),
            .init(role: "assistant", content: "The model clips the gradient."),
        ]
        let chatTraining = try encoder.encode(.chat(messages)).example
        let (chatPrompt, chatReference) = try encoder.promptForGeneration(.chat(messages))
        let answerIds = try tokenizer.encode("The model clips the gradient.\n")
        #expect(chatPrompt == Array(chatTraining.ids.dropLast(answerIds.count + 1)))
        #expect(chatReference == "The model clips the gradient.")

        // No assistant message: the whole conversation and an assistant header.
        let (openPrompt, openReference) = try encoder.promptForGeneration(.chat(Array(messages.prefix(1))))
        #expect(openPrompt == [1] + (try tokenizer.encode("<|user|>\nWhat does the model read?\n"))
                + (try tokenizer.encode("<|assistant|>\n")))
        #expect(openReference == nil)

        let (textPrompt, textReference) = try encoder.promptForGeneration(.text("Every student"))
        #expect(textPrompt == [1] + (try tokenizer.encode("Every student")) && textReference == nil)
        let (tokenPrompt, tokenReference) = try encoder.promptForGeneration(.tokens(ids: [4, 5], labels: nil))
        #expect(tokenPrompt == [4, 5] && tokenReference == nil)
    }
}
