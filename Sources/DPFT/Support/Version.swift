/// The version of the DPFT library (and of the `dpft` tool built from it).
///
/// Compiled grouping plugins carry their own copy of DPFT and must be built against exactly
/// this version (DESIGN.md §4): `GroupingPluginLoader` compares it with the version a plugin
/// reports. Bump it whenever a release changes DPFT's public types.
public enum DPFTVersion {
    /// E.g. `"0.1.0"`.
    public static let current = "0.1.0"
}
