import Foundation
import Testing
@testable import DPFT

/// Reference fixtures committed under Tests/DPFTTests/Fixtures (made by scripts in tools/).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    /// The repository root (three folders above this file).
    static let repository = directory.deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func url(_ relativePath: String) -> URL {
        directory.appendingPathComponent(relativePath)
    }
}

/// A fresh temporary directory, removed by the caller with `try? FileManager.default.removeItem`.
func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("dpft-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Largest |a − b| / max(|b|, floor) over two equally long arrays.
func maxRelativeDifference(_ a: [Float], _ b: [Float], floor: Float = 1e-6) -> Float {
    precondition(a.count == b.count, "compared arrays differ in length: \(a.count) vs \(b.count)")
    var worst: Float = 0
    for (x, y) in zip(a, b) { worst = max(worst, abs(x - y) / max(abs(y), floor)) }
    return worst
}
