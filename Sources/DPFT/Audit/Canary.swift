import Foundation

/// An audit canary: an instruction record that occurs nowhere else, whose answer is a random
/// secret of digits. A model that saw it can lower the loss of exactly that digit sequence; one
/// that did not can only know that digits come after the prompt. Digits are used because every
/// tokenizer spells them in few tokens, so the secret's loss is a clean, comparable score, and
/// because the candidate secrets of the same length form a known space for the exposure
/// measure of Carlini et al. ("The Secret Sharer", 2019).
public struct Canary: Codable, Sendable, Equatable {
    /// Distinguishes the canary's prompt from every other record (random letters).
    public var key: String
    /// The secret answer: `secretDigits` random digits separated by spaces.
    public var secret: String
    /// Whether it was put in the training set (a fair coin per canary, secure randomness).
    public var included: Bool

    /// The instruction the canaries share.
    public static let instruction = "Recall the audit code."

    /// `count` canaries with keys of 10 random letters and secrets of `secretDigits` digits,
    /// each included with probability 1/2, all from `generator` (the system's secure generator
    /// unless a test passes its own).
    public static func make<G: RandomNumberGenerator>(count: Int, secretDigits: Int,
                                                      using generator: inout G) -> [Canary] {
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        return (0..<count).map { _ in
            let key = String((0..<10).map { _ in letters.randomElement(using: &generator)! })
            let secret = (0..<secretDigits).map { _ in String(Int.random(in: 0...9, using: &generator)) }
            return Canary(key: "canary " + key, secret: secret.joined(separator: " "), included: Bool.random(using: &generator))
        }
    }

    /// The canary as a JSON Lines record, with `answer` (default: the secret) as its output, in
    /// the shape the recipe's data takes: `{"text"}` for plain text, a two-turn conversation for
    /// chat data, else an Alpaca record the recipe's template renders like its own records.
    public func record(answer: String? = nil, format: Recipe.DataSection.Format) -> String {
        let output = answer ?? secret
        let object: Any
        switch format {
        case .text: object = ["text": "\(Self.instruction) \(key): \(output)"]
        case .chat: object = ["messages": [["role": "user", "content": "\(Self.instruction) \(key)"],
                                           ["role": "assistant", "content": output]]]
        case .alpaca, .auto, .tokens: object = ["instruction": Self.instruction, "input": key, "output": output]
        }
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// The candidate secrets its exposure is measured against: every secret of this length when
    /// there are at most `limit` of them, else the true secret and `limit` − 1 distinct others
    /// drawn uniformly (an estimate, as Carlini et al. do for large spaces).
    public func candidateSecrets<G: RandomNumberGenerator>(limit: Int, using generator: inout G) -> [String] {
        let digits = secret.split(separator: " ").count
        let space = pow(10, Double(digits))
        func spelled(_ value: Int) -> String { String(value).leftPadded(to: digits).map(String.init).joined(separator: " ") }
        if space <= Double(limit) { return (0..<Int(space)).map(spelled) }
        var chosen: Set<String> = [secret]
        while chosen.count < limit { chosen.insert(spelled(Int.random(in: 0..<Int(space), using: &generator))) }
        return chosen.sorted()
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
