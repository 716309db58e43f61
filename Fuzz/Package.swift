// swift-tools-version: 6.0
// The fuzz targets of dpft (README "Fuzzing"): one libFuzzer executable over the DPFT library,
// built only by `make fuzz` (swift build --sanitize=fuzzer), never by the main package's build.
// DPFT_FUZZ_TARGET picks the parser (a case of DPFT's `FuzzTarget`), so the instrumented
// library is compiled and linked once for all targets, and the fuzzer and the corpus replay
// test (Tests/DPFTTests/FuzzCorpusTests.swift) call the same parse functions.
import PackageDescription

let package = Package(
    name: "dpft-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(name: "dpft", path: "..")],
    targets: [
        .executableTarget(name: "dpft-fuzz", dependencies: [.product(name: "DPFT", package: "dpft")],
                          path: "Sources/DPFTFuzz"),
    ]
)
