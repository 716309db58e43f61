// Resolution (the third step, after torchtune's config/_instantiate.py): the key table walked
// in order over the parsed and overridden tree, each section checked as it is entered and each
// value checked and put into the `Recipe`; and the same table walked back over a `Recipe` to
// write its resolved form.

enum RecipeResolution {
    /// The recipe in `text` (from `file`) with `overrides` applied, validated.
    static func recipe(from text: String, file: String, defaultName: String, overrides: [String]) throws -> Recipe {
        let (members, source) = try RecipeParsing.tree(from: text, file: file, overrides: overrides)
        let root = RecipeSectionReader(source: source, path: "", members: members)
        try root.checkKnownKeys()
        var recipe = RecipeKeys.scaffold(name: defaultName)
        var sections = ["": root]  // the sections written as objects, by path
        for key in RecipeKeys.all {
            guard let section = sections[key.parent] else { continue }  // absent, null, or not an object
            if let opened = try read(key, in: section, into: &recipe) { sections[key.path] = opened }
        }
        return recipe
    }

    /// Reads the row `key` from `section` into `recipe`; returns the section it opens, if any.
    private static func read(_ key: RecipeKey, in section: RecipeSectionReader,
                             into recipe: inout Recipe) throws -> RecipeSectionReader? {
        let context = RecipeReadContext(section: section)
        var applies = true
        if let condition = key.condition {
            let chosen = RecipeKeys.discriminator(condition, parent: key.parent, in: recipe)
            try section.check(condition, for: key.name, chosen: chosen)
            applies = condition.values.contains(chosen)
        }
        switch key.shape {
        case .leaf(let rule):
            if let value = try section.check(rule, key.name, in: recipe) {
                try key.read(&recipe, value, context)
            } else if let hint = key.requiredHint, applies {
                throw section.missing(key.name, hint: hint)
            }
            return nil
        case .section(let alternative, let nullable, let alternatives):
            guard let value = section[key.name] else {
                if nullable, section.members[key.name] == .null {
                    try key.read(&recipe, nil, context)
                } else if let hint = key.requiredHint {
                    throw section.missing(key.name, hint: hint)
                }
                return nil
            }
            guard case .object(let members) = value else {
                guard let alternative else { throw section.wrongType(key.name, value, "an object") }
                try key.read(&recipe, try section.check(alternative, key.name, in: recipe), context)
                return nil
            }
            let opened = RecipeSectionReader(source: section.source, path: key.path, members: members)
            try opened.checkKnownKeys()
            if let alternatives { try opened.check(alternatives) }
            try key.read(&recipe, .section, context)
            return opened
        }
    }

    /// The resolved form of `recipe`: every row's value, keys sorted; rows whose condition does
    /// not hold, alternatives not in use, and the key paths in `omitted` left out.
    static func resolvedJSON(of recipe: Recipe, leavingOut omitted: Set<String> = []) -> JSONValue {
        var objects: [String: JSONObject] = ["": [:]]  // the sections written as objects, by path
        for key in RecipeKeys.all where objects[key.parent] != nil && !omitted.contains(key.path) {
            if let condition = key.condition, !RecipeKeys.applies(condition, parent: key.parent, in: recipe) { continue }
            guard let value = key.write(recipe) else { continue }
            if key.isSection, case .object = value { objects[key.path] = [:] }
            objects[key.parent]![key.name] = value
        }
        for key in RecipeKeys.all.reversed() where key.isSection {  // innermost sections first
            if let object = objects[key.path] { objects[key.parent]![key.name] = .object(object) }
        }
        return JSONValue.object(objects[""]!).sortedByKey()
    }
}
