import Foundation

/// Where the files dpft ships — the built-in recipes, their data, the base checkpoints and
/// tokenizer, rule files and model configs — live for this binary.
///
/// The layout under `root` is the repository's: `recipes/*.json` (the built-in recipes),
/// `recipes/data/`, `recipes/models/`, `recipes/rules/`, `checkpoints/`. Two places have it:
/// - an installed binary, `PREFIX/bin/dpft`, finds them in `PREFIX/share/dpft` (`make install`);
/// - a binary under the source tree's `.build/` (`swift build`, `swift test`) finds them in the
///   source tree itself, so a developer never needs to install.
public struct Assets: Sendable, Equatable {
    /// The directory holding `recipes/` and `checkpoints/`.
    public let root: URL

    public init(root: URL) {
        self.root = root.standardizedFileURL
    }

    /// `root/recipes`: the built-in recipes, one `NAME.json` each.
    public var recipesDirectory: URL { root.appendingPathComponent("recipes", isDirectory: true) }

    /// The names of the built-in recipes (`NAME` of `recipes/NAME.json`), sorted.
    public var recipeNames: [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: recipesDirectory.path)) ?? []
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(".json".count)) }.sorted()
    }

    /// The file of the built-in recipe `name`.
    public func recipeFile(named name: String) -> URL {
        recipesDirectory.appendingPathComponent(name + ".json")
    }

    /// The places an executable at `executable` looks for its assets, in order: `../share/dpft`
    /// beside its `bin/` folder, then the folder that holds the `.build/` it was built in.
    public static func candidates(forExecutable executable: URL) -> [URL] {
        let real = executable.resolvingSymlinksInPath()
        var places = [real.deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("share/dpft", isDirectory: true)]
        let components = real.pathComponents
        if let build = components.lastIndex(of: ".build"), build > 0 {
            places.append(URL(fileURLWithPath: NSString.path(withComponents: Array(components[..<build])), isDirectory: true))
        }
        return places
    }

    /// The assets of the running executable: the first candidate that holds a `recipes/`
    /// folder, or nil (a binary copied somewhere on its own).
    public static func located(executable: URL? = Assets.currentExecutable) -> Assets? {
        guard let executable else { return nil }
        return candidates(forExecutable: executable).first { place in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: place.appendingPathComponent("recipes").path,
                                                  isDirectory: &isDirectory) && isDirectory.boolValue
        }.map(Assets.init(root:))
    }

    /// The running executable's file (`/proc/self/exe` on Linux, where `argv[0]` may be a bare
    /// name found on `PATH`).
    public static var currentExecutable: URL? {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: path)
        }
        return Bundle.main.executableURL
    }
}
