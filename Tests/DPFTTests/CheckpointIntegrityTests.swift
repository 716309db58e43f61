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
        let base = try Checkpoint.read(from: Fixtures.repository.appendingPathComponent("checkpoints/base.h5"))
        #expect(!base.tensors.isEmpty)
    }

    /// A tiny Llama checkpoint written by hand with the given root attributes, and one tensor
    /// replaced by `poisoned` values when given.
    private func handWritten(formatVersion: HDF5AttributeValue?, modelType: String?, poisoned: Float? = nil,
                             in directory: URL) throws -> URL {
        let url = directory.appendingPathComponent("model.h5")
        let checkpoint = Checkpoint.initialized(config: try CheckpointTests.config(CheckpointTests.tinyLlama), seed: 1)
        let file = try HDF5File.create(url.path)
        try file.setAttribute("format", .string("dpft"))
        if let formatVersion { try file.setAttribute("format_version", formatVersion) }
        if let modelType { try file.setAttribute("model_type", .string(modelType)) }
        try file.setAttribute("config", .string(checkpoint.config.json))
        try file.createGroup("/tensors")
        for (name, tensor) in checkpoint.tensors {
            if let poisoned, name == "model.layers.1.mlp.up_proj.weight" { tensor.pointer[5] = poisoned }
            try file.writeTensor(tensor, at: "/tensors/\(name)")
        }
        try file.flush()
        return url
    }

    /// `format_version: 99`, a version that is not an integer, a missing one, and a
    /// `model_type` that contradicts the config were all accepted.
    @Test func headerAttributesAreChecked() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var url = try handWritten(formatVersion: .integer(99), modelType: "llama", in: directory)
        #expect(throws: CheckpointError.unsupportedVersion(path: url.path, found: 99)) { try Checkpoint.read(from: url) }
        url = try handWritten(formatVersion: .string("1"), modelType: "llama", in: directory)
        #expect(throws: CheckpointError.self) { try Checkpoint.read(from: url) }
        url = try handWritten(formatVersion: nil, modelType: "llama", in: directory)
        #expect(throws: CheckpointError.missingAttribute(path: url.path, name: "format_version")) {
            try Checkpoint.read(from: url)
        }
        url = try handWritten(formatVersion: .integer(1), modelType: "gpt2", in: directory)
        let error = #expect(throws: CheckpointError.self) { try Checkpoint.read(from: url) }
        #expect(error?.description.contains("model_type") == true)
        url = try handWritten(formatVersion: .integer(1), modelType: "llama", in: directory)
        #expect(try Checkpoint.read(from: url).tensors.count == CheckpointTests.config(CheckpointTests.tinyLlama).parameterSpecs.count)
    }

    /// A base checkpoint holding one NaN (or ∞) trained, evaluated and exported NaN models; it is
    /// now refused at load, naming the tensor and the element.
    @Test(arguments: [Float.nan, .infinity, -.infinity])
    func nonFiniteWeightsAreRefusedByName(value: Float) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = try handWritten(formatVersion: .integer(1), modelType: "llama", poisoned: value, in: directory)
        let error = #expect(throws: CheckpointError.self) { try Checkpoint.read(from: url) }
        guard case .nonFiniteTensor(_, let name, let index, _)? = error else {
            Issue.record("unexpected \(String(describing: error))"); return
        }
        #expect(name == "model.layers.1.mlp.up_proj.weight" && index == 5)
    }
}
