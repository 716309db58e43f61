// libFuzzer's entry points for every DPFT parser (README "Fuzzing"). Built with
// `swift build --sanitize=fuzzer` (Makefile `fuzz`), which links libFuzzer's own `main`;
// DPFT_FUZZ_TARGET names the parser, one of DPFT's `FuzzTarget` cases.

import DPFT
import Foundation

/// The parser this process fuzzes, chosen once in `LLVMFuzzerInitialize`.
nonisolated(unsafe) private var target: FuzzTarget = .json

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")
    guard let name = getenv("DPFT_FUZZ_TARGET").map({ String(cString: $0) }),
          let chosen = FuzzTarget(rawValue: name) else {
        FileHandle.standardError.write(Data("dpft-fuzz: set DPFT_FUZZ_TARGET to one of: \(names)\n".utf8))
        exit(2)
    }
    target = chosen
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    // A typed error is the parser's correct answer to bad input; only traps, hangs and
    // memory blow-ups are findings, and libFuzzer catches those itself.
    _ = try? target.parse(bytes)
    return 0
}
