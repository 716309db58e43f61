import CDPFTPlugin
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A compiled grouping plugin that cannot be loaded or whose strategy failed. Every case names
/// the library as the user gave it.
public enum GroupingPluginError: Error, CustomStringConvertible, Equatable {
    /// No file at the path.
    case fileNotFound(path: String)
    /// `dlopen` failed; `reason` is `dlerror()`.
    case cannotOpen(path: String, reason: String)
    /// The library does not export `dpft_plugin_register`.
    case missingEntryPoint(path: String, symbol: String)
    /// Built against another DPFT or plugin API version.
    case versionMismatch(path: String, pluginDPFT: String?, pluginAPI: Int32, hostDPFT: String, hostAPI: Int32)
    /// The entry point reported a failure (with its message) or returned an unknown code.
    case entryPointFailed(path: String, message: String)
    /// A strategy description that is not the documented JSON.
    case invalidDescription(path: String, reason: String)
    /// The registry refused a strategy (a name already taken, an invalid name, a reserved
    /// option name).
    case rejected(path: String, reason: GroupingError)
    /// The strategy reported an error for this grouping request.
    case strategyFailed(path: String, strategy: String, message: String)
    /// The strategy's answer is not the documented JSON.
    case invalidAnswer(path: String, strategy: String, reason: String)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "grouping plugin \(path): no such file; give the path of the built shared library "
                + "(e.g. Examples/GroupingPlugin/.build/release/libGroupingPlugin.so after "
                + "`swift build -c release --package-path Examples/GroupingPlugin`)."
        case .cannotOpen(let path, let reason):
            return "grouping plugin \(path): cannot load the shared library: \(reason)."
        case .missingEntryPoint(let path, let symbol):
            return "grouping plugin \(path): the library does not export `\(symbol)`, so it is not a dpft grouping plugin; "
                + "define it with @_cdecl(\"\(symbol)\") and call GroupingPlugin.export (see README, \"Grouping plugins\")."
        case .versionMismatch(let path, let pluginDPFT, let pluginAPI, let hostDPFT, let hostAPI):
            return "grouping plugin \(path) was built against DPFT \(pluginDPFT ?? "(unknown)") (plugin API \(pluginAPI)), "
                + "but this dpft is DPFT \(hostDPFT) (plugin API \(hostAPI)); rebuild the plugin against this dpft."
        case .entryPointFailed(let path, let message):
            return "grouping plugin \(path): dpft_plugin_register failed: \(message)."
        case .invalidDescription(let path, let reason):
            return "grouping plugin \(path): a strategy description is not valid JSON of the documented form: \(reason)."
        case .rejected(let path, let reason):
            return "grouping plugin \(path): \(reason)"
        case .strategyFailed(let path, let strategy, let message):
            return "grouping strategy `\(strategy)` (plugin \(path)) failed: \(message)"
        case .invalidAnswer(let path, let strategy, let reason):
            return "grouping strategy `\(strategy)` (plugin \(path)) answered with JSON that is not of the documented form: \(reason)."
        }
    }
}

/// The host side of compiled grouping plugins (DESIGN.md §4; the plugin side and the formats
/// are described at `GroupingPlugin`): loads a shared library, calls its
/// `dpft_plugin_register` and adds the strategies it registers to a `GroupingRegistry` with
/// origin `.plugin(path:)`.
///
/// Libraries are opened with `RTLD_NOW | RTLD_LOCAL`, so two plugins' copies of DPFT never bind
/// to each other, and are never closed: their strategies point into them, and a Swift library
/// cannot be unloaded safely.
public enum GroupingPluginLoader {
    /// Loads the plugin at `path` and registers its strategies in `registry`; returns their
    /// names. Nothing is registered when any step fails: a missing file, a library `dlopen`
    /// refuses, no `dpft_plugin_register`, a plugin built against another DPFT or plugin API
    /// version, or a strategy the registry refuses (e.g. a name already taken).
    ///
    /// `apiVersion` and `dpftVersion` are what the host announces; they default to this
    /// build's and exist as parameters so that tests can play an incompatible host.
    @discardableResult
    public static func load(_ path: String, into registry: inout GroupingRegistry,
                            apiVersion: Int32 = GroupingPlugin.apiVersion,
                            dpftVersion: String = DPFTVersion.current) throws -> [String] {
        guard FileManager.default.fileExists(atPath: path) else { throw GroupingPluginError.fileNotFound(path: path) }
        // An absolute path, so that dlopen never searches the library path for a bare name.
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        _ = dlerror()
        guard let handle = dlopen(absolute, RTLD_NOW | RTLD_LOCAL) else {
            throw GroupingPluginError.cannotOpen(path: path, reason: dlerror().map { String(cString: $0) } ?? "unknown error")
        }
        guard let symbol = dlsym(handle, GroupingPlugin.entryPoint) else {
            throw GroupingPluginError.missingEntryPoint(path: path, symbol: GroupingPlugin.entryPoint)
        }
        let entry = unsafeBitCast(symbol, to: dpft_plugin_register_fn.self)

        let session = LoadSession(registry: registry, path: path)
        var errorBuffer = [CChar](repeating: 0, count: 1024)
        let (code, pluginAPI, pluginDPFT) = dpftVersion.withCString { version in
            errorBuffer.withUnsafeMutableBufferPointer { error in
                var host = dpft_plugin_host(
                    api_version: apiVersion, dpft_version: version, plugin_api_version: 0, plugin_dpft_version: nil,
                    host_context: Unmanaged.passUnretained(session).toOpaque(), register_strategy: registerStrategy,
                    error: error.baseAddress, error_capacity: error.count)
                let code = entry(&host)
                return (code, host.plugin_api_version, host.plugin_dpft_version.map { String(cString: $0) })
            }
        }

        let versionsDiffer = pluginAPI != apiVersion || pluginDPFT != dpftVersion
        if code == DPFT_PLUGIN_VERSION_MISMATCH || (code == DPFT_PLUGIN_OK && versionsDiffer) {
            throw GroupingPluginError.versionMismatch(path: path, pluginDPFT: pluginDPFT, pluginAPI: pluginAPI,
                                                      hostDPFT: dpftVersion, hostAPI: apiVersion)
        }
        if let failure = session.failure { throw failure }
        guard code == DPFT_PLUGIN_OK else {
            let message = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw GroupingPluginError.entryPointFailed(path: path, message: message.isEmpty ? "it returned code \(code)" : message)
        }
        registry = session.registry
        return session.names
    }

    /// `base` plus the strategies of every plugin in `paths`, in order. A library named twice
    /// (the same file, symbolic links resolved) is loaded once.
    public static func registry(plugins paths: [String], base: GroupingRegistry = .builtIn) throws -> GroupingRegistry {
        var registry = base
        var seen = Set<String>()
        for path in paths where seen.insert(URL(fileURLWithPath: path).resolvingSymlinksInPath().path).inserted {
            try load(path, into: &registry)
        }
        return registry
    }

    /// What `register_strategy` works on during one `load`; the registry is handed back only
    /// when the whole load succeeds.
    private final class LoadSession {
        var registry: GroupingRegistry
        let path: String
        var names: [String] = []
        var failure: GroupingPluginError?

        init(registry: GroupingRegistry, path: String) {
            self.registry = registry
            self.path = path
        }

        func register(description: String, context: UnsafeMutableRawPointer?, partition: dpft_plugin_partition_fn?,
                      release: dpft_plugin_release_fn?) -> Int32 {
            guard failure == nil else { return DPFT_PLUGIN_REJECTED }
            do {
                let decoded: PluginWire.StrategyDescription
                do {
                    decoded = try PluginWire.decode(PluginWire.StrategyDescription.self, from: description,
                                                    what: "strategy description")
                } catch {
                    throw GroupingPluginError.invalidDescription(path: path, reason: "\(error)")
                }
                guard let partition, let release else {
                    throw GroupingPluginError.invalidDescription(
                        path: path, reason: "strategy `\(decoded.name)` was registered without partition or release function")
                }
                let strategy = PluginStrategy(path: path, name: decoded.name, summary: decoded.summary,
                                              options: decoded.options.map(\.spec), context: context,
                                              partition: partition, release: release)
                do {
                    try registry.register(strategy, origin: .plugin(path: path))
                } catch let error as GroupingError {
                    throw GroupingPluginError.rejected(path: path, reason: error)
                }
                names.append(decoded.name)
                return DPFT_PLUGIN_OK
            } catch let error as GroupingPluginError {
                failure = error
            } catch {
                failure = .invalidDescription(path: path, reason: "\(error)")
            }
            return DPFT_PLUGIN_REJECTED
        }
    }

    private static let registerStrategy: dpft_plugin_register_strategy_fn = { hostContext, description, context, partition, release in
        let session = Unmanaged<LoadSession>.fromOpaque(hostContext!).takeUnretainedValue()
        return session.register(description: description.map { String(cString: $0) } ?? "", context: context,
                                partition: partition, release: release)
    }
}

/// A strategy that lives in a plugin: its groups come from the plugin's partition function.
/// The context pointer belongs to the plugin, which stays loaded for the life of the process.
struct PluginStrategy: GroupingStrategy, @unchecked Sendable {
    let path: String
    let name: String
    let summary: String
    let options: [GroupingOptionSpec]
    let context: UnsafeMutableRawPointer?
    let partition: dpft_plugin_partition_fn
    let release: dpft_plugin_release_fn

    func groups(for parameters: [ParameterInfo], options: GroupingOptions) throws -> [GroupDraft] {
        let request = try PluginWire.text(PluginWire.Request(strategy: name, options: options, parameters: parameters))
        guard let answer = request.withCString({ partition(context, $0) }) else {
            throw GroupingPluginError.strategyFailed(path: path, strategy: name, message: "it returned no answer (out of memory?)")
        }
        defer { release(context, answer) }
        let decoded: PluginWire.Answer
        do {
            decoded = try PluginWire.decode(PluginWire.Answer.self, from: String(cString: answer), what: "partition answer")
        } catch {
            throw GroupingPluginError.invalidAnswer(path: path, strategy: name, reason: "\(error)")
        }
        if let message = decoded.error {
            throw GroupingPluginError.strategyFailed(path: path, strategy: name, message: message)
        }
        guard let groups = decoded.groups else {
            throw GroupingPluginError.invalidAnswer(path: path, strategy: name, reason: "neither \"groups\" nor \"error\" is given")
        }
        return groups.map { GroupDraft(name: $0.name, parameters: $0.parameters, threshold: $0.threshold) }
    }
}
