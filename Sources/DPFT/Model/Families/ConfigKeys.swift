// Typed reading of config.json keys for the families' `Config` types: HF defaults for absent
// (or null) keys, range checks, and errors that name the key path.

/// An invalid value in a config; `ModelConfig` adds the file name (as `ConfigError.invalidValue`).
public struct ConfigValueError: Error, Equatable {
    /// Key path, e.g. `rope_parameters.rope_theta`.
    public var key: String
    public var value: String
    public var reason: String
}

extension KeyedDecodingContainer {
    /// The key's path from the top of the file, e.g. `rope_parameters.rope_type`.
    func path(_ key: Key) -> String {
        (codingPath + [key]).map(\.stringValue).joined(separator: ".")
    }

    /// The value, or nil when the key is absent or null; a value of another type is a
    /// `ConfigValueError` naming the key.
    func value<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        do {
            return try decodeIfPresent(type, forKey: key)
        } catch is JSONAccessError {
            throw invalid(key, expected: type)
        } catch is DecodingError {
            throw invalid(key, expected: type)
        }
    }

    private func invalid<T>(_ key: Key, expected type: T.Type) -> ConfigValueError {
        let expected = switch type {
        case is Bool.Type: "true or false"
        case is String.Type: "a string"
        default: "a number"
        }
        let found = (try? decodeIfPresent(JSONValue.self, forKey: key))??.excerpt ?? "…"
        return ConfigValueError(key: path(key), value: found, reason: "expected \(expected)")
    }

    /// A whole number (`8` or `8.0`) in 1...2²⁴, or nil when absent or null.
    func optionalPositive(_ key: Key) throws -> Int? {
        guard let real = try value(Double.self, key) else { return nil }
        guard let integer = Int(exactly: real) else {
            throw ConfigValueError(key: path(key), value: "\(real)", reason: "expected a whole number")
        }
        guard integer > 0 && integer <= 1 << 24 else {
            throw ConfigValueError(key: path(key), value: "\(integer)",
                                   reason: "expected a positive number no larger than \(1 << 24)")
        }
        return integer
    }

    /// A whole number in 1...2²⁴; `fallback` when absent or null.
    func positive(_ key: Key, default fallback: Int) throws -> Int {
        try optionalPositive(key) ?? fallback
    }

    /// A positive finite number; `fallback` when absent or null.
    func positiveReal(_ key: Key, default fallback: Double) throws -> Double {
        guard let real = try value(Double.self, key) else { return fallback }
        guard real > 0 && real.isFinite else {
            throw ConfigValueError(key: path(key), value: "\(real)", reason: "expected a positive number")
        }
        return real
    }
}
