import Foundation
import Testing
@testable import DPFT

/// Damaged checkpoints are refused by tensor name (issue 12 item 15): every dataset dpft
/// writes carries HDF5's Fletcher-32 checksum, which each read verifies.
@Suite struct CheckpointIntegrityTests {
    /// A file of one 4 MiB tensor (most of the file is its data) and a small one.
    private func writeFile(in directory: URL) throws -> (URL, Tensor) {
        let url = directory.appendingPathComponent("damaged.h5")
        let big = Tensor(zeros: [1024, 1024])
        for i in 0..<big.count { big.pointer[i] = Float(i % 977) * 0.001 }
        let file = try HDF5File.create(url.path)
        try file.createGroup("/tensors")
        try file.writeTensor(big, at: "/tensors/big")
        try file.writeTensor(Tensor(zeros: [3]), at: "/tensors/small")
        try file.writeBytes([1, 2, 3], at: "/bytes")
        try file.flush()
        return (url, big)
    }

    @Test func flippedBytesInATensorAreRefusedByName() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (url, big) = try writeFile(in: directory)
        // Intact, it reads back exactly.
        #expect(try HDF5File.openForReading(url.path).readTensor(at: "/tensors/big").values == big.values)
        // 2,000 bytes flipped in the middle of the file (inside the big tensor's data).
        var bytes = [UInt8](try Data(contentsOf: url))
        var generator = SeededGenerator(seed: 15)
        let middle = bytes.count / 2
        for _ in 0..<2000 { bytes[middle + Int.random(in: -500_000..<500_000, using: &generator)] ^= 0xFF }
        try Data(bytes).write(to: url)
        let file = try HDF5File.openForReading(url.path)
        #expect(throws: CheckpointError.checksumMismatch(path: url.path, object: "/tensors/big")) {
            try file.readTensor(at: "/tensors/big")
        }
        // The message says what happened and what to do.
        let message = CheckpointError.checksumMismatch(path: url.path, object: "/tensors/big").description
        #expect(message.contains("/tensors/big") && message.contains("checksum") && message.contains("Restore"))
        // Undamaged datasets of the same file still read.
        #expect(try file.readTensor(at: "/tensors/small").values == [0, 0, 0])
        #expect(try file.readBytes(at: "/bytes") == [1, 2, 3])
    }

    /// Checkpoints written before checksums (the shipped base model) still load.
    @Test func checkpointsWithoutChecksumsStillLoad() throws {
        let base = try Checkpoint.read(from: Fixtures.directory.appendingPathComponent("../../../checkpoints/base.h5").standardized)
        #expect(!base.tensors.isEmpty)
    }
}
