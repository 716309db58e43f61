import CDPFTPlugin
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The plugin side of compiled grouping plugins (DESIGN.md §4): a shared library, built from a
/// Swift package that depends on the `DPFT` product, that `dpft --plugin PATH` loads at run time.
///
/// The library carries its own copy of DPFT, whose Swift types are not the host's, so nothing
/// Swift crosses the boundary: the host calls the one C entry point `dpft_plugin_register`
/// with a `dpft_plugin_host` (Sources/CDPFTPlugin/include/dpft_plugin.h), and every strategy is
/// registered as a name, a JSON description and two C functions. A plugin author writes a
/// normal `GroupingStrategy` and this entry point:
///
///     import DPFT
///
///     @_cdecl("dpft_plugin_register")
///     public func dpftPluginRegister(_ host: UnsafeMutablePointer<GroupingPlugin.Host>?) -> Int32 {
///         GroupingPlugin.export([ParameterBudgetStrategy()], to: host)
///     }
///
/// built as a `.dynamic` library product (Examples/GroupingPlugin).
///
/// Versions: the host passes its plugin API version (`apiVersion`) and DPFT version
/// (`DPFTVersion.current`); `export` reports the plugin's own and registers nothing unless both
/// are equal, and the host names both in its error (rebuild the plugin against this dpft).
///
/// JSON formats (UTF-8), API version 1:
/// - strategy description: `{"name", "summary", "options": [{"name", "type", "default",
///   "required", "description"}]}`, where `type` is `"string"`, `"integer"`, `"number"`,
///   `"boolean"`, `"path"`, `"thresholds"` or `{"choice": ["a", "b"]}` and `default` is a JSON
///   value or absent;
/// - partition request: `{"strategy", "options": {...}, "parameters": [ParameterInfo]}` with
///   `ParameterInfo` as Swift encodes it (`name`, `shape`, `kind`, `role`, `block`, `expert`,
///   `module`, `isTiedHead`; options already checked against the description);
/// - partition answer: `{"groups": [{"name", "parameters", "threshold"?}]}` or
///   `{"error": "message"}`.
public enum GroupingPlugin {
    /// The C struct the host passes to `dpft_plugin_register`.
    public typealias Host = dpft_plugin_host

    /// The plugin ABI version of this DPFT (`DPFT_PLUGIN_API_VERSION`).
    public static let apiVersion = Int32(DPFT_PLUGIN_API_VERSION)

    /// The C symbol a plugin exports.
    public static let entryPoint = "dpft_plugin_register"

    /// Lives as long as the library: the host reads it after `export` returns.
    private nonisolated(unsafe) static let versionText: UnsafePointer<CChar> = UnsafePointer(strdup(DPFTVersion.current)!)

    /// Registers `strategies` with the host: the whole body of a plugin's
    /// `dpft_plugin_register`. Returns the code that function returns: `DPFT_PLUGIN_OK`,
    /// `DPFT_PLUGIN_VERSION_MISMATCH` (nothing registered), `DPFT_PLUGIN_REJECTED` (the host
    /// refused a strategy, e.g. a name already taken; it keeps the reason) or
    /// `DPFT_PLUGIN_FAILED` (a message is in `host.error`).
    public static func export(_ strategies: [any GroupingStrategy], to host: UnsafeMutablePointer<Host>?) -> Int32 {
        guard let host else { return DPFT_PLUGIN_FAILED }
        host.pointee.plugin_api_version = apiVersion
        host.pointee.plugin_dpft_version = versionText
        let hostVersion = host.pointee.dpft_version.map { String(cString: $0) }
        guard host.pointee.api_version == apiVersion, hostVersion == DPFTVersion.current else {
            return DPFT_PLUGIN_VERSION_MISMATCH
        }
        guard let register = host.pointee.register_strategy else {
            writeError("the host passed no register_strategy function", to: host)
            return DPFT_PLUGIN_FAILED
        }
        for strategy in strategies {
            let description: String
            do {
                description = try PluginWire.text(PluginWire.StrategyDescription(strategy))
            } catch {
                writeError("cannot describe strategy `\(strategy.name)`: \(error)", to: host)
                return DPFT_PLUGIN_FAILED
            }
            let context = Unmanaged.passRetained(ExportedStrategy(strategy)).toOpaque()
            let code = description.withCString {
                register(host.pointee.host_context, $0, context, partition, release)
            }
            guard code == DPFT_PLUGIN_OK else {
                Unmanaged<ExportedStrategy>.fromOpaque(context).release()
                return code
            }
        }
        return DPFT_PLUGIN_OK
    }

    private static func writeError(_ message: String, to host: UnsafeMutablePointer<Host>) {
        guard let buffer = host.pointee.error, host.pointee.error_capacity > 0 else { return }
        let bytes = Array(message.utf8.prefix(host.pointee.error_capacity - 1))
        for (i, byte) in bytes.enumerated() { buffer[i] = CChar(bitPattern: byte) }
        buffer[bytes.count] = 0
    }

    /// A registered strategy, kept alive for as long as the library is loaded.
    private final class ExportedStrategy {
        let strategy: any GroupingStrategy
        init(_ strategy: any GroupingStrategy) { self.strategy = strategy }
    }

    /// Decodes the request, runs the strategy, encodes its groups or its error.
    private static let partition: dpft_plugin_partition_fn = { context, request in
        let exported = Unmanaged<ExportedStrategy>.fromOpaque(context!).takeUnretainedValue()
        var answer: PluginWire.Answer
        do {
            let decoded = try PluginWire.decode(PluginWire.Request.self, from: String(cString: request!), what: "partition request")
            var options = decoded.options
            options.strategy = decoded.strategy
            let drafts = try exported.strategy.groups(for: decoded.parameters, options: options)
            answer = PluginWire.Answer(groups: drafts.map {
                PluginWire.Group(name: $0.name, parameters: $0.parameters, threshold: $0.threshold)
            })
        } catch {
            answer = PluginWire.Answer(error: "\(error)")
        }
        let text = (try? PluginWire.text(answer)) ?? #"{"error": "the plugin could not encode its answer"}"#
        return strdup(text)
    }

    private static let release: dpft_plugin_release_fn = { _, answer in free(answer) }
}

/// The JSON that crosses the plugin boundary (see `GroupingPlugin`).
enum PluginWire {
    struct OptionDescription: Codable {
        var name: String
        var type: OptionType
        var defaultValue: GroupingOptionValue?
        var required: Bool
        var description: String

        enum CodingKeys: String, CodingKey { case name, type, defaultValue = "default", required, description }

        init(_ spec: GroupingOptionSpec) {
            name = spec.name
            type = OptionType(spec.type)
            defaultValue = spec.defaultValue
            required = spec.isRequired
            description = spec.description
        }

        var spec: GroupingOptionSpec {
            GroupingOptionSpec(name: name, type: type.type, defaultValue: defaultValue, isRequired: required,
                               description: description)
        }
    }

    /// `GroupingOptionType` as JSON: a name, or `{"choice": [...]}`.
    struct OptionType: Codable {
        var type: GroupingOptionType

        init(_ type: GroupingOptionType) { self.type = type }

        private static let simple: [(String, GroupingOptionType)] = [
            ("string", .string), ("integer", .integer), ("number", .number), ("boolean", .boolean),
            ("path", .path), ("thresholds", .thresholds),
        ]

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let name = try? container.decode(String.self) {
                guard let type = Self.simple.first(where: { $0.0 == name })?.1 else {
                    throw DecodingError.dataCorruptedError(in: container, debugDescription:
                        "unknown option type \"\(name)\"; use one of \(Self.simple.map(\.0).joined(separator: ", ")) or {\"choice\": [...]}")
                }
                self.type = type
            } else {
                let object = try container.decode([String: [String]].self)
                guard object.count == 1, let values = object["choice"], !values.isEmpty else {
                    throw DecodingError.dataCorruptedError(in: container, debugDescription:
                        "an option type object must be {\"choice\": [\"a\", \"b\", ...]}")
                }
                type = .choice(values)
            }
        }

        func encode(to encoder: Encoder) throws {
            var container = encoder.singleValueContainer()
            if case .choice(let values) = type {
                try container.encode(["choice": values])
            } else {
                try container.encode(Self.simple.first(where: { $0.1 == type })!.0)
            }
        }
    }

    struct StrategyDescription: Codable {
        var name: String
        var summary: String
        var options: [OptionDescription]

        init(_ strategy: any GroupingStrategy) {
            name = strategy.name
            summary = strategy.summary
            options = strategy.options.map(OptionDescription.init)
        }
    }

    struct Request: Codable {
        var strategy: String
        var options: GroupingOptions
        var parameters: [ParameterInfo]
    }

    struct Group: Codable {
        var name: String
        var parameters: [String]
        var threshold: Double?
    }

    struct Answer: Codable {
        var groups: [Group]?
        var error: String?

        init(groups: [Group]) { self.groups = groups }
        init(error: String) { self.error = error }
    }

    /// `value` as compact JSON with sorted keys (through the JSON layer, Support/JSON*.swift).
    static func text(_ value: some Encodable) throws -> String {
        try JSONValueEncoder.encode(value).sortedByKey().text(.compact)
    }

    /// Decodes `type` from `text`, strictly; `what` names the text in errors.
    static func decode<T: Decodable>(_ type: T.Type, from text: String, what: String) throws -> T {
        try JSONValueDecoder.decode(type, from: Array(text.utf8), source: what)
    }
}
