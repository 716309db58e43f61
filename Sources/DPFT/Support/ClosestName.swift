/// "Did you mean …?" for a mistyped name among known ones (recipe names; any list of names).
enum ClosestName {
    /// The known name nearest to `wanted` by edit distance, when it is near enough to be a
    /// typo (at most a third of `wanted`'s length, and at least 1), else nil. A known name that
    /// starts with `wanted` (a name cut short) counts too.
    static func closest(to wanted: String, among known: [String]) -> String? {
        let limit = max(1, wanted.count / 3)
        let scored = known.map { ($0, distance(wanted.lowercased(), $0.lowercased())) }
        if let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= limit { return best.0 }
        return wanted.count >= 3 ? known.first { $0.hasPrefix(wanted) } : nil
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
    /// neighbours, each costing 1. Keeps three rows of the table, not the whole table.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var beforePrevious = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = previous
        for i in a.indices {
            current[0] = i + 1
            for j in b.indices {
                let substitution = previous[j] + (a[i] == b[j] ? 0 : 1)
                current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, substitution)
                if i > 0, j > 0, a[i] == b[j - 1], a[i - 1] == b[j] {
                    current[j + 1] = min(current[j + 1], beforePrevious[j - 1] + 1)
                }
            }
            (beforePrevious, previous, current) = (previous, current, beforePrevious)
        }
        return previous[b.count]
    }
}
