// swift-tools-version: 6.0
// An example compiled grouping plugin for dpft (see README.md here and "Grouping plugins" in the
// repository README). Build:  swift build -c release --package-path Examples/GroupingPlugin
import PackageDescription

let package = Package(
    name: "GroupingPlugin",
    products: [
        // A shared library (libGroupingPlugin.so) that `dpft --plugin PATH` loads.
        .library(name: "GroupingPlugin", type: .dynamic, targets: ["GroupingPlugin"]),
    ],
    dependencies: [
        // The dpft package this plugin is built against; it must be the same DPFT version as
        // the dpft that loads the plugin.
        .package(name: "dpft", path: "../.."),
    ],
    targets: [
        .target(name: "GroupingPlugin", dependencies: [.product(name: "DPFT", package: "dpft")]),
    ]
)
