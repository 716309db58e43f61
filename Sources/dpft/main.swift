import ArgumentParser
import DPFT

struct DPFTCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dpft",
        abstract: "Differentially private fine-tuning of transformer language models on CPUs.",
        version: "dpft \(DPFTVersion.current) (grouping plugin API \(GroupingPlugin.apiVersion))",
        subcommands: [InitCommand.self, ImportCommand.self, ExportCommand.self, EvalCommand.self, GenerateCommand.self,
                      RecipeCommand.self, RecipesCommand.self, AuditCommand.self, NormsCommand.self, PluginsCommand.self, TokenizerCommand.self, PrivacyCommand.self, BenchCommand.self,
                      SweepCommand.self, ReportCommand.self])
}

// ArgumentParser's `main()`, with Foundation file errors no command explained put in words
// (Foundation says "The operation could not be completed. (NSCocoaErrorDomain error 512.)").
do {
    var command = try DPFTCommand.parseAsRoot()
    try command.run()
} catch {
    DPFTCommand.exit(withError: FileProblem.explained(error))
}
