// The split regexes of byte-level BPE tokenizers, written out by hand as matchers over Unicode
// scalars. Hugging Face `tokenizers` runs them with Oniguruma, where `\s` is Unicode's
// White_Space, `\p{L}` a letter (Lu Ll Lt Lm Lo) and `\p{N}` a number (Nd Nl No); a match is
// the first alternative that matches at the current position, as a backtracking engine finds
// it. Each matcher below follows its pattern alternative by alternative (the comments quote
// them), which is both exact and several times faster than a general regex engine.
//
// n = scalars in the text, i = the position a piece starts at.

/// A split pattern dpft implements, recognised by the exact regex a `tokenizer.json` holds.
enum SplitPattern: Sendable, Equatable {
    /// GPT-2's pattern (also `ByteLevel` with `use_regex: true`).
    case gpt2
    /// Llama-3's pattern with `\p{N}{1,maximumDigits}`: 3 for Llama 3, 1 (`\p{N}`) for Qwen2.
    case llama3(maximumDigits: Int)

    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let qwen2Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// The pattern a `Split` pre-tokenizer's regex names, or nil when dpft does not implement it.
    init?(regex: String) {
        switch regex {
        case Self.gpt2Regex: self = .gpt2
        case Self.qwen2Regex: self = .llama3(maximumDigits: 1)
        case Self.llama3Regex: self = .llama3(maximumDigits: 3)
        default: return nil
        }
    }

    /// A name for messages.
    static let supportedNames = "the GPT-2, Llama-3 and Qwen2 split regexes"

    /// Appends to `pieces` the byte ranges of `text`'s pieces, in order; together they cover
    /// `text` exactly (the pattern matches every scalar, so there are no gaps).
    func split(_ text: ScalarText, into pieces: inout [Range<Int>]) {
        var i = 0
        while i < text.count {
            let end: Int
            switch self {
            case .gpt2: end = text.gpt2PieceEnd(at: i)
            case .llama3(let maximumDigits): end = text.llama3PieceEnd(at: i, maximumDigits: maximumDigits)
            }
            pieces.append(text.byteOffsets[i]..<text.byteOffsets[end])
            i = end
        }
    }
}

/// The classes the split patterns distinguish.
enum ScalarClass: UInt8 {
    case letter, number, whitespace, other

    /// The class of a scalar value; ASCII through a table, the rest through Unicode properties.
    @inline(__always)
    static func of(_ value: UInt32) -> ScalarClass {
        if value < 128 { return ascii[Int(value)] }
        guard let scalar = Unicode.Scalar(value) else { return .other }
        let properties = scalar.properties
        if properties.isWhitespace { return .whitespace }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }

    private static let ascii: [ScalarClass] = (0..<128).map { value in
        switch value {
        case 0x09...0x0D, 0x20: return .whitespace
        case 0x30...0x39: return .number
        case 0x41...0x5A, 0x61...0x7A: return .letter
        default: return .other
        }
    }
}

/// A UTF-8 text decoded once into scalars, their classes and their byte offsets.
struct ScalarText {
    private(set) var values: [UInt32] = []
    private(set) var classes: [ScalarClass] = []
    /// Byte offset of each scalar, plus the text's length at the end (count + 1 entries).
    private(set) var byteOffsets: [Int] = []

    var count: Int { values.count }

    /// Decodes `bytes`, which must be valid UTF-8 (they come from a Swift `String`).
    init(_ bytes: UnsafeBufferPointer<UInt8>) {
        values.reserveCapacity(bytes.count)
        classes.reserveCapacity(bytes.count)
        byteOffsets.reserveCapacity(bytes.count + 1)
        var index = 0
        while index < bytes.count {
            let lead = UInt32(bytes[index])
            var value: UInt32, length: Int
            if lead < 0x80 {
                value = lead; length = 1
            } else if lead < 0xE0 {
                value = lead & 0x1F; length = 2
            } else if lead < 0xF0 {
                value = lead & 0x0F; length = 3
            } else {
                value = lead & 0x07; length = 4
            }
            for k in 1..<length where index + k < bytes.count {
                value = value << 6 | (UInt32(bytes[index + k]) & 0x3F)
            }
            values.append(value)
            classes.append(ScalarClass.of(value))
            byteOffsets.append(index)
            index += length
        }
        byteOffsets.append(bytes.count)
    }

    private static let apostrophe: UInt32 = 0x27, space: UInt32 = 0x20
    private static let carriageReturn: UInt32 = 0x0D, lineFeed: UInt32 = 0x0A

    @inline(__always) private func isNewline(_ i: Int) -> Bool {
        values[i] == Self.lineFeed || values[i] == Self.carriageReturn
    }

    /// The end of the run of `scalarClass` starting at `i`.
    @inline(__always) private func runEnd(of scalarClass: ScalarClass, from i: Int) -> Int {
        var j = i
        while j < count && classes[j] == scalarClass { j += 1 }
        return j
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` at `i`: the end of the match, or nil. With `ignoringCase`
    /// the letters match either case, and `s` also matches `ſ` (U+017F), which Unicode case
    /// folding makes an `s`.
    private func contractionEnd(at i: Int, ignoringCase: Bool) -> Int? {
        guard values[i] == Self.apostrophe, i + 1 < count else { return nil }
        func letter(_ k: Int) -> UInt32? {
            guard k < count else { return nil }
            let value = values[k]
            guard ignoringCase else { return value }
            if value == 0x17F { return 0x73 }  // ſ folds to s
            return (0x41...0x5A).contains(value) ? value + 0x20 : value
        }
        switch letter(i + 1) {
        case 0x73, 0x74, 0x6D, 0x64: return i + 2                       // s t m d
        case 0x72, 0x76: return letter(i + 2) == 0x65 ? i + 3 : nil      // re ve
        case 0x6C: return letter(i + 2) == 0x6C ? i + 3 : nil            // ll
        default: return nil
        }
    }

    /// `\s+(?!\S)|\s+` at `i` (a whitespace scalar): the whole run when it ends the text, else
    /// the run less its last scalar (which then prefixes the next word), or one scalar.
    @inline(__always) private func whitespaceEnd(at i: Int) -> Int {
        let j = runEnd(of: .whitespace, from: i)
        if j == count || j - i == 1 { return j }
        return j - 1
    }

    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    func gpt2PieceEnd(at i: Int) -> Int {
        if let end = contractionEnd(at: i, ignoringCase: false) { return end }
        // ` ?X+` for X = letter, number, other: an optional space, then a run of one class.
        if values[i] == Self.space, i + 1 < count, classes[i + 1] != .whitespace {
            return runEnd(of: classes[i + 1], from: i + 1)
        }
        if classes[i] != .whitespace { return runEnd(of: classes[i], from: i) }
        return whitespaceEnd(at: i)
    }

    /// Llama 3 and Qwen2: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}|
    /// ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` with D = `maximumDigits`.
    func llama3PieceEnd(at i: Int, maximumDigits: Int) -> Int {
        if let end = contractionEnd(at: i, ignoringCase: true) { return end }
        let first = classes[i]
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if first != .letter, first != .number, !isNewline(i), i + 1 < count, classes[i + 1] == .letter {
            return runEnd(of: .letter, from: i + 1)
        }
        if first == .letter { return runEnd(of: .letter, from: i) }
        // \p{N}{1,D}
        if first == .number { return min(runEnd(of: .number, from: i), i + maximumDigits) }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        var start: Int?
        if first == .other {
            start = i
        } else if values[i] == Self.space, i + 1 < count, classes[i + 1] == .other {
            start = i + 1
        }
        if let start {
            var j = runEnd(of: .other, from: start)
            while j < count && isNewline(j) { j += 1 }
            return j
        }
        // \s*[\r\n]+: the whitespace run up to and including its last newline.
        let j = runEnd(of: .whitespace, from: i)
        if let lastNewline = (i..<j).last(where: isNewline) { return lastNewline + 1 }
        return whitespaceEnd(at: i)
    }
}
