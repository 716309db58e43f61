// The C ABI between dpft and a compiled grouping plugin (DESIGN.md §4, README "Grouping plugins").
//
// A plugin is a shared library that exports ONE function:
//
//     int32_t dpft_plugin_register(dpft_plugin_host *host);
//
// dpft dlopen()s the library, dlsym()s that name and calls it once with `host` filled in. The
// plugin writes its own versions into `plugin_api_version` / `plugin_dpft_version`, refuses
// (DPFT_PLUGIN_VERSION_MISMATCH) unless both equal the host's, and otherwise calls
// `register_strategy` once per strategy. A Swift plugin does all of this with
// `GroupingPlugin.export([MyStrategy()], to: host)` from the DPFT library.
//
// Only plain C types cross the boundary: the plugin carries its own copy of the DPFT module,
// whose Swift types are not dpft's. Strategy descriptions, partition requests and answers are
// UTF-8 JSON (formats in the doc comment of `GroupingPlugin` in Sources/DPFT/Grouping).
#ifndef DPFT_PLUGIN_H
#define DPFT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// The plugin ABI version this header describes. Bumped whenever anything below the first four
/// fields of `dpft_plugin_host`, a function type or a JSON format changes.
#define DPFT_PLUGIN_API_VERSION 1

/// Return codes of `dpft_plugin_register` and `register_strategy`.
#define DPFT_PLUGIN_OK 0
/// The plugin was built against another DPFT version or plugin API version; nothing registered.
#define DPFT_PLUGIN_VERSION_MISMATCH 1
/// Something else failed; the plugin wrote a message into `host->error`.
#define DPFT_PLUGIN_FAILED 2
/// `register_strategy` refused a strategy; the host kept the reason itself.
#define DPFT_PLUGIN_REJECTED 3

/// Groups the trainable tensors. `request_json` is
/// {"strategy": NAME, "options": {...}, "parameters": [ParameterInfo, ...]}; the answer is
/// {"groups": [{"name": ..., "parameters": [...], "threshold": R_k or absent}, ...]} or
/// {"error": MESSAGE}, a NUL-terminated string the plugin allocates and the host hands back to
/// `release` (NULL only when memory ran out).
typedef char *(*dpft_plugin_partition_fn)(void *strategy, const char *request_json);

/// Frees an answer of `partition`.
typedef void (*dpft_plugin_release_fn)(void *strategy, char *answer_json);

/// Registers one strategy: `description_json` is {"name", "summary", "options": [{"name",
/// "type", "default", "required", "description"}, ...]}; `strategy` is passed back to
/// `partition` and `release` and must stay valid while the library is loaded (dpft never
/// unloads plugins). Returns DPFT_PLUGIN_OK or DPFT_PLUGIN_REJECTED.
typedef int32_t (*dpft_plugin_register_strategy_fn)(void *host_context, const char *description_json,
                                                    void *strategy, dpft_plugin_partition_fn partition,
                                                    dpft_plugin_release_fn release);

/// What the host hands the plugin. The first four fields keep their place and meaning in every
/// API version, so any plugin can read the host's versions and report its own before refusing.
typedef struct dpft_plugin_host {
    /// The API version the host speaks (host → plugin).
    int32_t api_version;
    /// The host's DPFT version, e.g. "0.1.0" (host → plugin).
    const char *dpft_version;
    /// The API version the plugin was built for (plugin → host).
    int32_t plugin_api_version;
    /// The DPFT version the plugin was built against (plugin → host); a string that lives as
    /// long as the library.
    const char *plugin_dpft_version;

    // API version 1.
    /// Opaque; the first argument of `register_strategy`.
    void *host_context;
    dpft_plugin_register_strategy_fn register_strategy;
    /// Where the plugin writes a message (NUL-terminated, at most `error_capacity` bytes) when
    /// it returns DPFT_PLUGIN_FAILED.
    char *error;
    size_t error_capacity;
} dpft_plugin_host;

/// The type of the entry point `dpft_plugin_register`.
typedef int32_t (*dpft_plugin_register_fn)(dpft_plugin_host *host);

#ifdef __cplusplus
}
#endif

#endif
