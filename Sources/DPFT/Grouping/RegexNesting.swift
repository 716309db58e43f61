/// Swift's `Regex` backtracks, with no step limit: a repeated group that itself repeats or
/// alternates, such as `(.*.*)*x` or `(a|ab)+`, can take exponential time on a 40-character
/// tensor name (the fuzzing seed `(.*.*)*x` ran for over 20 s). Rule files are outside input, so
/// such patterns are refused when the file is read. Tensor-name patterns never need them.
enum RegexNesting {
    /// The first group that repeats (`*`, `+`, or `{m,n}` with n > 1 or no n) while its contents
    /// repeat or alternate, as the text of that group; nil when there is none. Escapes and
    /// bracket expressions are skipped, so `\(` and `[(*]` are literals.
    static func nestedRepetition(in pattern: String) -> String? {
        let characters = Array(pattern)
        var open: [(start: Int, risky: Bool)] = []
        var i = 0
        while i < characters.count {
            switch characters[i] {
            case "\\": i += 1
            case "[": i = endOfBracket(characters, from: i)
            case "(": open.append((i, false))
            case "|": if !open.isEmpty { open[open.count - 1].risky = true }
            case "*", "+", "?", "{":
                if !open.isEmpty { open[open.count - 1].risky = true }
            case ")":
                guard let group = open.popLast() else { break }
                if group.risky, repeats(characters, after: i) { return String(characters[group.start...i]) }
                if !open.isEmpty, group.risky { open[open.count - 1].risky = true }
            default: break
            }
            i += 1
        }
        return nil
    }

    /// The index of the `]` that closes the bracket expression opened at `start` (a `]` right
    /// after `[` or `[^` is a literal).
    private static func endOfBracket(_ characters: [Character], from start: Int) -> Int {
        var i = start + 1
        if i < characters.count, characters[i] == "^" { i += 1 }
        if i < characters.count, characters[i] == "]" { i += 1 }
        while i < characters.count, characters[i] != "]" {
            if characters[i] == "\\" { i += 1 }
            i += 1
        }
        return i
    }

    /// Whether a quantifier that allows more than one repetition follows position `index`.
    private static func repeats(_ characters: [Character], after index: Int) -> Bool {
        guard index + 1 < characters.count else { return false }
        switch characters[index + 1] {
        case "*", "+": return true
        case "{":
            guard let close = characters[(index + 1)...].firstIndex(of: "}") else { return false }
            let bounds = String(characters[(index + 2)..<close]).split(separator: ",", omittingEmptySubsequences: false)
            if bounds.count == 1 { return (Int(bounds[0]) ?? 0) > 1 }
            return bounds.count == 2 && (bounds[1].isEmpty || (Int(bounds[1]) ?? 0) > 1)
        default: return false
        }
    }
}
