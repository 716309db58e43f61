import ArgumentParser
import DPFT
import Foundation

struct RecipeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recipe",
        abstract: "Train as a recipe says: data, model, privacy, optimizer, checkpoints.",
        discussion: """
            Prints the resolved recipe, trains with DP-SGD (book-keeping, group-wise clipping, \
            Poisson sampling, calibrated noise), writes checkpoints with their privacy ledger to \
            output.directory (step-N.h5, final.h5, metrics.jsonl, recipe.json) and stops before \
            the privacy budget would be exceeded. A run locks its directory (a second run into it \
            fails at once, naming the holder) and refuses a directory holding another run unless \
            --resume or --overwrite. A file RECIPE wins; else RECIPE (or RECIPE.json) \
            names a built-in recipe (`dpft recipes list`, `dpft recipes copy NAME`). Paths in a \
            recipe are relative to the recipe file's folder, paths in --set to the current \
            directory; output.directory is relative to the current directory.
            """)

    @Argument(help: "The recipe: a JSON file, or the name of a built-in recipe (`dpft recipes list`).")
    var recipe: String

    @Option(name: .customLong("set"), help: "Override one key, e.g. --set training.epochs=2 (repeatable).")
    var overrides: [String] = []

    @Flag(help: "Continue from the last checkpoint in output.directory.")
    var resume = false

    @Flag(help: ArgumentHelp("Replace the run in output.directory: remove its recipe.json, metrics.jsonl, step-N.h5, final.h5 and export/ (other files stay).",
                             discussion: "Without --resume or --overwrite, a run into a directory that holds another run is refused."))
    var overwrite = false

    @OptionGroup var plugins: PluginOptions

    func validate() throws {
        if resume && overwrite { throw ValidationError(RunError.resumeAndOverwrite.description) }
    }

    func run() throws {
        let world = try Communicator.world()  // MPI_COMM_WORLD under mpirun, else one process
        let location = try RecipeLocation.find(recipe, assets: Assets.located())
        if world.isRoot {  // before the runner's unbuffered lines
            FileHandle.standardOutput.write(Data((location.summary + "\n").utf8))
        }
        // --plugin adds to the recipe's "plugins", so the resolved recipe and its hash name them.
        let loaded = try location.loadCheckingInputs(overrides: overrides, extraPlugins: plugins.paths)
        let runner = RecipeRunner(recipe: loaded, resume: resume, overwrite: overwrite,
                                  interactive: isatty(STDOUT_FILENO) != 0, communicator: world) { line in
            // unbuffered, so progress lines reach a log file as they happen
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
        let summary = try runner.run()
        if world.isRoot { print("final checkpoint: \(summary.finalCheckpoint)") }
    }
}
