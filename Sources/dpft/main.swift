import ArgumentParser
import DPFT
import Foundation

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
    Communicator.launched?.finalize()
} catch {
    let explained = FileProblem.explained(error)
    if let world = Communicator.launched, world.size > 1 { endDataParallelJob(world, failure: explained) }
    DPFTCommand.exit(withError: explained)
}

/// Ends a data-parallel job after an error on this rank. An error every rank sees at once
/// (`Communicator.isSeenByEveryRank`) is reported by rank 0 alone, and every rank leaves MPI
/// normally, so rank 0 finishes writing the ledger first; any other error is reported with
/// this rank's number and ends every rank now (MPI_Abort), so no rank waits forever.
func endDataParallelJob(_ world: Communicator, failure: Error) -> Never {
    let code = DPFTCommand.exitCode(for: failure).rawValue
    let everyRank = Communicator.isSeenByEveryRank(failure)
    if world.isRoot || !everyRank {
        let message = "Error (rank \(world.rank) of \(world.size)): \(DPFTCommand.message(for: failure))\n"
        FileHandle.standardError.write(Data(message.utf8))
    }
    if everyRank {
        world.finalize()
        exit(code == 0 ? 1 : code)
    }
    world.abort(code: code == 0 ? 1 : code)
}
