import Foundation
import Testing
@testable import DPFT

// Hand-built safetensors files: exact bytes, so every rejection path is reached on purpose.

/// The bytes of a safetensors file: the header length (that of `header` unless overridden),
/// the header text as given, then `data`.
private func safetensorsBytes(header: String, data: [UInt8] = [],
                              headerLength: UInt64? = nil) -> Data {
    let headerBytes = Array(header.utf8)
    var bytes = Data()
    withUnsafeBytes(of: (headerLength ?? UInt64(headerBytes.count)).littleEndian) {
        bytes.append(contentsOf: $0)
    }
    bytes.append(contentsOf: headerBytes)
    bytes.append(contentsOf: data)
    return bytes
}

/// Little-endian bytes of float32 values.
private func float32Bytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { value in withUnsafeBytes(of: value.bitPattern.littleEndian) { Array($0) } }
}

/// Little-endian bytes of 16-bit patterns (F16 or BF16).
private func uint16Bytes(_ patterns: [UInt16]) -> [UInt8] {
    patterns.flatMap { pattern in withUnsafeBytes(of: pattern.littleEndian) { Array($0) } }
}

/// Writes `bytes` to a fresh temporary file and reads it back.
private func readBytes(_ bytes: Data,
                       _ body: (URL, () throws -> SafeTensorsFile) throws -> Void) throws {
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let url = directory.appendingPathComponent("model.safetensors")
    try bytes.write(to: url)
    try body(url) { try SafeTensorsFile.read(url: url) }
}

/// The error that reading `bytes` throws (recording an issue when it throws none), and the path.
private func readError(_ bytes: Data, sourceLocation: SourceLocation = #_sourceLocation)
    throws -> (error: SafeTensorsError, path: String)
{
    var result: (SafeTensorsError, String)?
    try readBytes(bytes) { url, read in
        if let error = #expect(throws: SafeTensorsError.self, sourceLocation: sourceLocation,
                               performing: { _ = try read() }) {
            result = (error, url.path)
        }
    }
    return try #require(result, sourceLocation: sourceLocation)
}

/// A single-tensor header entry.
private func entry(_ name: String, dtype: String = "F32", shape: String, offsets: String) -> String {
    "\"\(name)\":{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":\(offsets)}"
}

private func bitPatterns(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

// MARK: - Round trip and writer

@Test func roundTripKeepsNamesShapesMetadataAndBits() throws {
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let url = directory.appendingPathComponent("model.safetensors")

    let special: [Float] = [0, -0.0, 1, -2.5, .infinity, -.infinity, .leastNonzeroMagnitude,
                            .greatestFiniteMagnitude, .leastNormalMagnitude, 0x1.234568p-7,
                            Float(bitPattern: 0x7FC0_1234), 3.1415927]
    let matrix = Tensor(shape: [3, 4], values: special)  // W (3, 4)
    let stacked = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
    let row = stacked[1]  // a view at a non-zero offset: must write [4, 5, 6]
    let scalar = Tensor(shape: [], values: [3.25])
    let empty = Tensor(zeros: [0, 5])
    let tensors: [(name: String, tensor: Tensor)] = [
        ("model.embed_tokens.weight", matrix), ("scalar", scalar), ("empty", empty),
        ("row \"quoted\"\n", row),
    ]
    try SafeTensorsFile.write(tensors, metadata: ["step": "12", "note": "ü\\\"x\u{1}"], to: url)

    let file = try SafeTensorsFile.read(url: url)
    // "empty" is zero-size, so it shares its offset with "row ..."; ties keep header order.
    #expect(file.tensorNames == tensors.map(\.name))
    #expect(file.metadata == ["step": "12", "note": "ü\\\"x\u{1}", "format": "pt"])
    for (name, tensor) in tensors {
        #expect(file.dtype(of: name) == "F32")
        #expect(file.shape(of: name) == tensor.shape)
        let read = try file.tensor(name)
        #expect(read.shape == tensor.shape, "\(name)")
        #expect(bitPatterns(read.values) == bitPatterns(tensor.values), "\(name)")
    }
    #expect(try file.tensor("row \"quoted\"\n").values == [4, 5, 6])
    #expect(file.dtype(of: "missing") == nil)
    #expect(file.shape(of: "missing") == nil)
}

@Test func writerPadsHeaderToEightBytesAndIsDeterministic() throws {
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let first = directory.appendingPathComponent("a.safetensors")
    let second = directory.appendingPathComponent("b.safetensors")
    let tensors: [(name: String, tensor: Tensor)] = [
        ("b", Tensor(shape: [2], values: [1, 2])), ("a", Tensor(shape: [1], values: [7])),
    ]
    let metadata = ["z": "1", "a": "2", "m": "3"]
    try SafeTensorsFile.write(tensors, metadata: metadata, to: first)
    try SafeTensorsFile.write(tensors, metadata: metadata, to: second)

    let bytes = try Data(contentsOf: first)
    #expect(bytes == (try Data(contentsOf: second)))
    let headerLength = Int(bytes.prefix(8).withUnsafeBytes {
        UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))
    })
    #expect(headerLength % 8 == 0)
    let header = String(decoding: bytes[8..<(8 + headerLength)], as: UTF8.self)
    #expect(header == """
        {"__metadata__":{"a":"2","format":"pt","m":"3","z":"1"},\
        "b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},\
        "a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}
        """.padding(toLength: headerLength, withPad: " ", startingAt: 0))
    #expect(Array(bytes[(8 + headerLength)...]) == float32Bytes([1, 2, 7]))
    // The file must list tensors in data order, which is the given order.
    #expect(try SafeTensorsFile.read(url: first).tensorNames == ["b", "a"])
}

@Test func callerFormatIsKept() throws {
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let url = directory.appendingPathComponent("model.safetensors")
    try SafeTensorsFile.write([("x", Tensor(shape: [1], values: [1]))],
                              metadata: ["format": "mlx"], to: url)
    #expect(try SafeTensorsFile.read(url: url).metadata == ["format": "mlx"])
}

@Test func writingOverAnExistingFileLeavesNoTemporaryFiles() throws {
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let url = directory.appendingPathComponent("model.safetensors")
    try SafeTensorsFile.write([("x", Tensor(shape: [3], values: [1, 2, 3]))], to: url)
    try SafeTensorsFile.write([("y", Tensor(shape: [2], values: [4, 5]))], to: url)

    let contents = try FileManager.default.contentsOfDirectory(atPath: directory.path)
    #expect(contents == ["model.safetensors"])
    let file = try SafeTensorsFile.read(url: url)
    #expect(file.tensorNames == ["y"])
    #expect(try file.tensor("y").values == [4, 5])
}

@Test func failedWriteRemovesItsTemporaryFile() throws {
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    // The destination is a non-empty directory, so the final rename must fail.
    let url = directory.appendingPathComponent("model.safetensors")
    try FileManager.default.createDirectory(at: url.appendingPathComponent("inside"),
                                            withIntermediateDirectories: true)
    let error = #expect(throws: SafeTensorsError.self) {
        try SafeTensorsFile.write([("x", Tensor(shape: [1], values: [1]))], to: url)
    }
    guard case .writeFailed(let path, _)? = error else {
        Issue.record("expected writeFailed, got \(String(describing: error))")
        return
    }
    #expect(path == url.path)
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path)
        == ["model.safetensors"])
}

@Test func writerRejectsDuplicateAndReservedNames() throws {
    let directory = try makeTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let url = directory.appendingPathComponent("model.safetensors")
    let one = Tensor(shape: [1], values: [1])

    let duplicate = #expect(throws: SafeTensorsError.self) {
        try SafeTensorsFile.write([("w", one), ("w", one)], to: url)
    }
    guard case .duplicateTensorName(_, "w", nil, nil)? = duplicate else {
        Issue.record("expected duplicateTensorName, got \(String(describing: duplicate))")
        return
    }
    let reserved = #expect(throws: SafeTensorsError.self) {
        try SafeTensorsFile.write([("__metadata__", one)], to: url)
    }
    guard case .reservedTensorName? = reserved else {
        Issue.record("expected reservedTensorName, got \(String(describing: reserved))")
        return
    }
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
}

// MARK: - Half-precision reading

@Test func readsF16Exactly() throws {
    let patterns: [UInt16] = [0x3C00, 0xC100, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0x8000, 0x7C00]
    let expected: [Float] = [1, -2.5, 65504, 0x1p-24, 0x1.FF8p-15, 0x1p-14, -0.0, .infinity]
    let header = "{" + entry("h", dtype: "F16", shape: "[2,4]", offsets: "[0,16]") + "}"
    try readBytes(safetensorsBytes(header: header, data: uint16Bytes(patterns))) { _, read in
        let file = try read()
        #expect(file.dtype(of: "h") == "F16")
        let tensor = try file.tensor("h")
        #expect(tensor.shape == [2, 4])
        #expect(bitPatterns(tensor.values) == bitPatterns(expected))
    }
}

@Test func readsBF16Exactly() throws {
    let patterns: [UInt16] = [0x3F80, 0xC020, 0x7F7F, 0x0001, 0x4049, 0xFF80]
    let expected: [Float] = [1, -2.5, 0x1.FEp127, 0x1p-133, 3.140625, -.infinity]
    let header = "{" + entry("b", dtype: "BF16", shape: "[6]", offsets: "[0,12]") + "}"
    try readBytes(safetensorsBytes(header: header, data: uint16Bytes(patterns))) { _, read in
        let tensor = try read().tensor("b")
        #expect(bitPatterns(tensor.values) == bitPatterns(expected))
    }
}

#if !(os(macOS) && arch(x86_64))  // Swift has no Float16 on Intel macOS
@Test func f16ConversionMatchesFloat16ForEveryBitPattern() throws {
    let patterns = (0...UInt16.max).map { $0 }
    let header = "{" + entry("all", dtype: "F16", shape: "[65536]", offsets: "[0,131072]") + "}"
    try readBytes(safetensorsBytes(header: header, data: uint16Bytes(patterns))) { _, read in
        let values = try read().tensor("all").values
        var mismatches = 0
        for (pattern, value) in zip(patterns, values)
        where value.bitPattern != Float(Float16(bitPattern: pattern)).bitPattern {
            mismatches += 1
        }
        #expect(mismatches == 0)
    }
}
#endif

@Test func unsupportedDtypeFailsOnlyForThatTensor() throws {
    // F32 "a" (2 floats), I64 "ids" (1 value), F16 "h" (1 value): a valid file.
    let header = "{" + entry("ids", dtype: "I64", shape: "[1]", offsets: "[8,16]") + ","
        + entry("a", shape: "[2]", offsets: "[0,8]") + ","
        + entry("h", dtype: "F16", shape: "[]", offsets: "[16,18]") + "}"
    let data = float32Bytes([1.5, -3]) + [7, 0, 0, 0, 0, 0, 0, 0] + uint16Bytes([0x3C00])
    try readBytes(safetensorsBytes(header: header, data: data)) { url, read in
        let file = try read()
        #expect(file.tensorNames == ["a", "ids", "h"])
        #expect(file.metadata.isEmpty)
        #expect(try file.tensor("a").values == [1.5, -3])
        #expect(try file.tensor("h").values == [1])
        #expect(file.dtype(of: "ids") == "I64")
        #expect(file.shape(of: "ids") == [1])
        let error = #expect(throws: SafeTensorsError.self) { try file.tensor("ids") }
        guard case .unsupportedDtype(_, "ids", "I64")? = error else {
            Issue.record("expected unsupportedDtype, got \(String(describing: error))")
            return
        }
        #expect(error!.description.contains(url.path))
        #expect(error!.description.contains("\"ids\""))

        let missing = #expect(throws: SafeTensorsError.self) { try file.tensor("nope") }
        guard case .tensorNotFound(_, "nope", _)? = missing else {
            Issue.record("expected tensorNotFound, got \(String(describing: missing))")
            return
        }
        #expect(missing!.description.contains("\"nope\""))
    }
}

// MARK: - Rejection of malformed files

@Test func rejectsFileShorterThanEightBytes() throws {
    let (error, path) = try readError(Data([1, 2, 3, 4, 5]))
    guard case .fileTooShort(_, 5) = error else {
        Issue.record("expected fileTooShort, got \(error)")
        return
    }
    #expect(error.description.contains(path))
}

@Test func rejectsHeaderLengthLargerThanFile() throws {
    let (error, path) = try readError(safetensorsBytes(header: "{}", headerLength: 100))
    guard case .headerLengthExceedsFile(_, 100, 10) = error else {
        Issue.record("expected headerLengthExceedsFile, got \(error)")
        return
    }
    #expect(error.description.contains(path))
}

@Test func rejectsHeaderLengthOfTwoToTheSixtyThird() throws {
    let (error, path) = try readError(safetensorsBytes(header: "{}", headerLength: 1 << 63))
    guard case .headerLengthExceedsFile(_, 1 << 63, _) = error else {
        Issue.record("expected headerLengthExceedsFile, got \(error)")
        return
    }
    #expect(error.description.contains(path))
}

@Test(arguments: [
    "{not json}", "", "   ", "[1,2]", "{\"a\":1,}", "{\"a\":{\"dtype\":\"F32\"}} x",
    "{\"\\ud800\":1}",
])
func rejectsHeaderThatIsNotAJSONObject(header: String) throws {
    let (error, path) = try readError(safetensorsBytes(header: header))
    guard case .headerNotJSON = error else {
        Issue.record("expected headerNotJSON, got \(error)")
        return
    }
    #expect(error.description.contains(path))
}

@Test func rejectsDeeplyNestedHeaderWithoutExhaustingTheStack() throws {
    let header = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
    let (error, path) = try readError(safetensorsBytes(header: header))
    guard case .headerNotJSON(_, let reason) = error else {
        Issue.record("expected headerNotJSON, got \(error)")
        return
    }
    #expect(reason.contains("nesting"))
    #expect(error.description.contains(path))
}

@Test func rejectsHeaderThatIsNotUTF8() throws {
    var bytes = Data()
    let header: [UInt8] = Array("{\"".utf8) + [0xFF, 0xFE] + Array("\":{}}".utf8)
    withUnsafeBytes(of: UInt64(header.count).littleEndian) { bytes.append(contentsOf: $0) }
    bytes.append(contentsOf: header)
    let (error, path) = try readError(bytes)
    guard case .headerNotJSON = error else {
        Issue.record("expected headerNotJSON, got \(error)")
        return
    }
    #expect(error.description.contains(path))
}

@Test func rejectsOffsetsBeyondTheData() throws {
    let header = "{" + entry("w", shape: "[4]", offsets: "[0,16]") + "}"
    let (error, path) = try readError(safetensorsBytes(header: header, data: float32Bytes([1, 2])))
    guard case .offsetsOutOfBounds(_, "w", 0, 16, 8) = error else {
        Issue.record("expected offsetsOutOfBounds, got \(error)")
        return
    }
    #expect(error.description.contains(path))
    #expect(error.description.contains("\"w\""))
}

@Test func rejectsOverlappingTensors() throws {
    let header = "{" + entry("first", shape: "[2]", offsets: "[0,8]") + ","
        + entry("second", shape: "[2]", offsets: "[4,12]") + "}"
    let (error, path) = try readError(
        safetensorsBytes(header: header, data: float32Bytes([1, 2, 3])))
    guard case .overlappingTensors(_, "second", "first", 4, 8) = error else {
        Issue.record("expected overlappingTensors, got \(error)")
        return
    }
    #expect(error.description.contains(path))
    #expect(error.description.contains("\"first\""))
    #expect(error.description.contains("\"second\""))
}

@Test func rejectsHoleBetweenTensors() throws {
    let header = "{" + entry("first", shape: "[1]", offsets: "[0,4]") + ","
        + entry("second", shape: "[1]", offsets: "[8,12]") + "}"
    let (error, path) = try readError(
        safetensorsBytes(header: header, data: float32Bytes([1, 2, 3])))
    guard case .holeInData(_, 4, 8, "first", "second") = error else {
        Issue.record("expected holeInData, got \(error)")
        return
    }
    #expect(error.description.contains(path))
    #expect(error.description.contains("\"first\""))
}

@Test func rejectsHoleBeforeFirstTensorAndTrailingBytes() throws {
    let leading = "{" + entry("w", shape: "[1]", offsets: "[4,8]") + "}"
    let (leadingError, _) = try readError(
        safetensorsBytes(header: leading, data: float32Bytes([1, 2])))
    guard case .holeInData(_, 0, 4, nil, "w") = leadingError else {
        Issue.record("expected holeInData before w, got \(leadingError)")
        return
    }
    let trailing = "{" + entry("w", shape: "[1]", offsets: "[0,4]") + "}"
    let (trailingError, path) = try readError(
        safetensorsBytes(header: trailing, data: float32Bytes([1, 2])))
    guard case .holeInData(_, 4, 8, "w", nil) = trailingError else {
        Issue.record("expected holeInData after w, got \(trailingError)")
        return
    }
    #expect(trailingError.description.contains(path))
}

@Test func rejectsShapeThatDoesNotMatchByteSize() throws {
    let header = "{" + entry("w", shape: "[2,3]", offsets: "[0,16]") + "}"
    let (error, path) = try readError(
        safetensorsBytes(header: header, data: float32Bytes([1, 2, 3, 4])))
    guard case .sizeMismatch(_, "w", "F32", [2, 3], 24, 16) = error else {
        Issue.record("expected sizeMismatch, got \(error)")
        return
    }
    #expect(error.description.contains(path))
    #expect(error.description.contains("\"w\""))
}

@Test func rejectsUnknownDtype() throws {
    let header = "{" + entry("w", dtype: "Q7", shape: "[1]", offsets: "[0,4]") + "}"
    let (error, path) = try readError(safetensorsBytes(header: header, data: float32Bytes([1])))
    guard case .unknownDtype(_, "w", "Q7") = error else {
        Issue.record("expected unknownDtype, got \(error)")
        return
    }
    #expect(error.description.contains(path))
    #expect(error.description.contains("\"w\""))
    #expect(error.description.contains("Q7"))
}

@Test(arguments: [
    "[-1]", "[4611686018427387904,4611686018427387904]", "[99999999999999999999]", "[2.0]",
    "[1e3]", "[\"2\"]",
])
func rejectsNegativeOrAbsurdDimensions(shape: String) throws {
    let header = "{" + entry("w", shape: shape, offsets: "[0,4]") + "}"
    let (error, path) = try readError(safetensorsBytes(header: header, data: float32Bytes([1])))
    guard case .invalidShape(_, "w", _) = error else {
        Issue.record("expected invalidShape, got \(error)")
        return
    }
    #expect(error.description.contains(path))
    #expect(error.description.contains("\"w\""))
}

@Test(arguments: [
    "{\"w\":[]}", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}",
    "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}",
    "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}",
    "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
    "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}",
    "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}",
    "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
])
func rejectsMalformedTensorEntries(header: String) throws {
    let (error, path) = try readError(safetensorsBytes(header: header, data: float32Bytes([1])))
    guard case .invalidTensorEntry(_, "w", _) = error else {
        Issue.record("expected invalidTensorEntry, got \(error)")
        return
    }
    #expect(error.description.contains(path))
    #expect(error.description.contains("\"w\""))
}

@Test func rejectsDuplicateTensorNames() throws {
    let header = "{" + entry("w", shape: "[1]", offsets: "[0,4]") + ","
        + entry("w", shape: "[1]", offsets: "[4,8]") + "}"
    let (error, path) = try readError(
        safetensorsBytes(header: header, data: float32Bytes([1, 2])))
    guard case .duplicateTensorName(_, "w", 1?, .some) = error else {
        Issue.record("expected duplicateTensorName with its line and column, got \(error)")
        return
    }
    #expect(error.description.contains("(again at line 1, column "))
    #expect(error.description.contains(path))
    #expect(error.description.contains("\"w\""))
}

@Test(arguments: [
    "{\"__metadata__\":{\"format\":1}}", "{\"__metadata__\":[]}",
    "{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", "{\"__metadata__\":{},\"__metadata__\":{}}",
])
func rejectsMalformedMetadata(header: String) throws {
    let (error, path) = try readError(safetensorsBytes(header: header))
    guard case .invalidMetadata = error else {
        Issue.record("expected invalidMetadata, got \(error)")
        return
    }
    #expect(error.description.contains(path))
}

@Test func readsEmptyFileWithOnlyMetadata() throws {
    try readBytes(safetensorsBytes(header: "{\"__metadata__\":{\"format\":\"pt\"}}")) { _, read in
        let file = try read()
        #expect(file.tensorNames.isEmpty)
        #expect(file.metadata == ["format": "pt"])
    }
}

@Test func missingFileIsAnError() throws {
    let url = URL(fileURLWithPath: "/nonexistent-dpft/model.safetensors")
    let error = #expect(throws: SafeTensorsError.self) { try SafeTensorsFile.read(url: url) }
    guard case .cannotRead? = error else {
        Issue.record("expected cannotRead, got \(String(describing: error))")
        return
    }
    #expect(error!.description.contains(url.path))
}
