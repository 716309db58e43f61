// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "dpft",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "DPFT", targets: ["DPFT"]),
        .executable(name: "dpft", targets: ["dpft"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // SHA-256 (data and base digests, seeded noise keys) and the operating system's random
        // key of the DP noise; its AES-CTR is the tests' second reference for the keystream.
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // OpenBLAS is loaded at run time (dlopen) so that OPENBLAS_CORETYPE can be chosen
        // from the CPU's features before the library reads it (DESIGN.md §8).
        .target(name: "CBLAS", linkerSettings: [.linkedLibrary("dl")]),
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5-serial",
                       providers: [.apt(["libhdf5-dev"])]),
        .target(name: "CSentencePiece",
                linkerSettings: [.linkedLibrary("sentencepiece"),
                                 .linkedLibrary("sentencepiece_train"),
                                 .linkedLibrary("stdc++")]),
        // Open MPI, loaded at run time (dlopen) only under mpirun (README "Training on several
        // processes"), so dpft without mpirun needs no MPI library.
        .target(name: "CMPI", linkerSettings: [.linkedLibrary("dl")]),
        // The DP noise sampler's C parts: its vectorised common path (GaussianSampler.fastPass),
        // one build per x86-64 level picked at load time, and its AES-256-CTR keystream through
        // OpenSSL's libcrypto (AES-NI and VAES code where the CPU has them).
        // Optimised in debug builds too: the suite's bit-for-bit tests then hold the vectorised
        // kernel that release builds run to Swift's one-at-a-time draw, not an -O0 scalar one.
        .target(name: "CNoise", cSettings: [.unsafeFlags(["-O2"], .when(configuration: .debug))],
                linkerSettings: [.linkedLibrary("crypto")]),
        // tanh and exp over arrays through glibc's vector math library (GELU, softmax, SiLU).
        .target(name: "CVectorMath", linkerSettings: [.linkedLibrary("mvec"), .linkedLibrary("m")]),
        // The C ABI of compiled grouping plugins (a header only; DESIGN.md §4).
        .target(name: "CDPFTPlugin"),
        .target(name: "DPFT", dependencies: [
            "CBLAS", "CHDF5", "CMPI", "CNoise", "CVectorMath", "CSentencePiece", "CDPFTPlugin",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .executableTarget(name: "dpft", dependencies: [
            "DPFT",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // Fixtures are read from the source tree (see Tests/DPFTTests/TestSupport.swift).
        .testTarget(name: "DPFTTests", dependencies: [
            "DPFT",
            // swift-crypto's AES-CTR (BoringSSL) checks the noise keystream (OpenSSL's).
            .product(name: "_CryptoExtras", package: "swift-crypto"),
        ], exclude: ["Fixtures"]),
    ],
    cxxLanguageStandard: .cxx17
)
