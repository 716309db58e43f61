// The recipe schema as the unknown-key check sees it: which keys each section holds and the
// names other tools use for them (both read off the key table, RecipeKeys.swift), and the
// closest known key for a misspelt or misplaced one, by alias or by spelling.

enum RecipeSchema {
    /// The keys each recipe object may hold, in table order, by section path ("" = top level).
    /// Keys that apply only to some variants (e.g. `momentum`) are listed; the reader rejects
    /// them where they do not apply.
    static let sections: [String: [String]] = {
        var sections: [String: [String]] = [:]
        for key in RecipeKeys.all {
            sections[key.parent, default: []].append(key.name)
            if key.isSection { sections[key.path, default: []] += [] }
        }
        return sections
    }()

    /// Every key path, sorted.
    static let allKeyPaths: [String] = RecipeKeys.all.map(\.path).sorted()

    static func join(_ section: String, _ key: String) -> String { jsonKeyPath(section, key) }

    /// The known key path a misspelt or misplaced `key` (found in `section`) most likely meant:
    /// an alias or a close spelling among its siblings, else the one key of that name elsewhere.
    static func suggestion(for key: String, in section: String) -> String? {
        let wanted = normalized(key)
        let siblings = sections[section] ?? []
        let aliased = RecipeKeys.all.filter { $0.aliases.contains(wanted) }
        if let alias = aliased.first(where: { $0.parent == section }) { return alias.path }
        let limit = max(1, min(3, wanted.count / 4))
        let scored = siblings.map { ($0, editDistance(wanted, normalized($0))) }.filter { $0.1 <= limit }
        if let best = scored.min(by: { $0.1 < $1.1 }) { return join(section, best.0) }
        if wanted.count >= 4, let longer = siblings.first(where: { normalized($0).hasPrefix(wanted) }) {
            return join(section, longer)  // "batch" for "batch_size"
        }
        let elsewhere = allKeyPaths.filter { path in
            normalized(String(path.split(separator: ".").last!)) == wanted || aliased.contains { $0.path == path }
        }
        return elsewhere.count == 1 ? elsewhere[0] : nil
    }

    static func normalized(_ key: String) -> String {
        String(key.lowercased().filter { $0 != "_" && $0 != "-" && $0 != " " })
    }

    /// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`.
    static func editDistance(_ a: String, _ b: String) -> Int { ClosestName.distance(a, b) }
}
