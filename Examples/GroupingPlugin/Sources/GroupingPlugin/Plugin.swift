import DPFT

/// The plugin's one C entry point: dpft calls it once after loading the library.
@_cdecl("dpft_plugin_register")
public func dpftPluginRegister(_ host: UnsafeMutablePointer<GroupingPlugin.Host>?) -> Int32 {
    GroupingPlugin.export([ParameterBudgetStrategy()], to: host)
}
