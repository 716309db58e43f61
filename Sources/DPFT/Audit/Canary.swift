import Foundation

/// What a canary's secret is made of.
public enum SecretKind: Sendable, Equatable, CustomStringConvertible {
    /// n random digits separated by spaces ("4 1 7"): a small, enumerable space, but every digit
    /// pair recurs across canaries, so little of one canary is unique to it.
    case digits(Int)
    /// n random made-up words of three syllables ("tesoka mivupa"): each canary's word pairs occur
    /// nowhere else, so a model can memorise them the way it memorises any rare phrase.
    case words(Int)

    /// "digits:6" or "words:3".
    public init?(_ text: String) {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let n = Int(parts[1]), (1...18).contains(n) else { return nil }
        switch parts[0] {
        case "digits": self = .digits(n)
        case "words": self = .words(n)
        default: return nil
        }
    }

    /// The kind of an existing secret: digits when every part is one digit.
    public init(of secret: String) {
        let parts = secret.split(separator: " ")
        self = parts.allSatisfy { $0.count == 1 && $0.first!.isNumber } ? .digits(parts.count) : .words(parts.count)
    }

    public var description: String {
        switch self {
        case .digits(let n): return "digits:\(n)"
        case .words(let n): return "words:\(n)"
        }
    }

    private static let syllables: [String] = Array("bdfgklmnprstvz").flatMap { c in Array("aeiou").map { "\(c)\($0)" } }

    /// One random secret of this kind.
    func random<G: RandomNumberGenerator>(using generator: inout G) -> String {
        switch self {
        case .digits(let n):
            return (0..<n).map { _ in String(Int.random(in: 0...9, using: &generator)) }.joined(separator: " ")
        case .words(let n):
            return (0..<n).map { _ in (0..<3).map { _ in Self.syllables.randomElement(using: &generator)! }.joined() }
                .joined(separator: " ")
        }
    }
}

/// An audit canary: an instruction record that occurs nowhere else, whose answer is a random
/// secret (`SecretKind`). A model that saw it can lower the loss of exactly that answer; one that
/// did not can only know what answers look like. The candidate answers of the same kind are the
/// space the exposure measure of Carlini et al. ("The Secret Sharer", 2019) ranks it in.
public struct Canary: Codable, Sendable, Equatable {
    /// Distinguishes the canary's prompt from every other record (random letters).
    public var key: String
    /// The secret answer.
    public var secret: String
    /// Whether it was put in the training set (a fair coin per canary, secure randomness).
    public var included: Bool

    /// The instruction the canaries share.
    public static let instruction = "Recall the audit code."

    /// `count` canaries with keys of 10 random letters and secrets of `kind`, each included
    /// with probability 1/2, all from `generator` (the system's secure generator unless a test
    /// passes its own).
    public static func make<G: RandomNumberGenerator>(count: Int, secret kind: SecretKind,
                                                      using generator: inout G) -> [Canary] {
        let letters = Array("abcdefghijklmnopqrstuvwxyz")
        return (0..<count).map { _ in
            let key = String((0..<10).map { _ in letters.randomElement(using: &generator)! })
            return Canary(key: "canary " + key, secret: kind.random(using: &generator), included: Bool.random(using: &generator))
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

    /// The candidate secrets its exposure is measured against: every digit secret of this
    /// length when there are at most `limit` of them, else the true secret and `limit` − 1
    /// distinct others of its kind drawn uniformly (an estimate, as Carlini et al. do for large
    /// spaces).
    public func candidateSecrets<G: RandomNumberGenerator>(limit: Int, using generator: inout G) -> [String] {
        let kind = SecretKind(of: secret)
        if case .digits(let digits) = kind, pow(10, Double(digits)) <= Double(limit) {
            return (0..<Int(pow(10, Double(digits)))).map {
                String($0).leftPadded(to: digits).map(String.init).joined(separator: " ")
            }
        }
        var chosen: Set<String> = [secret]
        while chosen.count < limit { chosen.insert(kind.random(using: &generator)) }
        return chosen.sorted()
    }
}

extension String {
    fileprivate func leftPadded(to length: Int) -> String {
        count >= length ? self : String(repeating: "0", count: length - count) + self
    }
}
