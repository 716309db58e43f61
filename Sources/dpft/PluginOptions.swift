import ArgumentParser
import DPFT

/// `--plugin PATH` (repeatable) on every command that takes a grouping strategy.
struct PluginOptions: ParsableArguments {
    @Option(name: .customLong("plugin"),
            help: ArgumentHelp("A compiled grouping plugin (shared library) whose strategies to add (repeatable; see README, \"Grouping plugins\").",
                               valueName: "path"))
    var paths: [String] = []

    /// The built-in strategies plus those of `recipePlugins` (a recipe's `"plugins"`) and of
    /// `--plugin`, in that order; a library named twice is loaded once.
    func registry(recipePlugins: [String] = []) throws -> GroupingRegistry {
        try GroupingPluginLoader.registry(plugins: recipePlugins + paths)
    }
}
