// safetensors: the Hugging Face tensor file format — read F32/F16/BF16 as Float32, write F32.
//
// Layout of a file:
//   [8 bytes]  N, little-endian UInt64: length of the header
//   [N bytes]  UTF-8 JSON header: { "__metadata__": {String: String}?,
//                                   name: {"dtype": "F32", "shape": [d0, d1, ...],
//                                          "data_offsets": [begin, end]}, ... }
//   [rest]     the data section; offsets are relative to its start, little-endian values.
// The tensors must tile the data section exactly: no overlaps, no holes, no trailing bytes.
//
// Every file is treated as hostile: lengths are checked against the file size before anything
// is allocated, all size arithmetic is overflow-checked, and the header is parsed by the strict
// JSON layer (Support/JSONParser.swift), which keeps file order, rejects duplicate keys (a
// duplicate tensor name is named with its line and column) and bounds nesting.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

#if !_endian(little)
#error("SafeTensors.swift copies float32 data as-is; it assumes a little-endian host")
#endif

/// Errors from reading or writing a safetensors file. Each names the file (and the tensor
/// where one is involved) and says what to do.
public enum SafeTensorsError: Error, CustomStringConvertible {
    /// The file could not be opened or mapped.
    case cannotRead(path: String, reason: String)
    /// The file is shorter than the 8-byte header length.
    case fileTooShort(path: String, byteCount: Int)
    /// The header length field exceeds the 100 MB limit of the format.
    case headerTooLarge(path: String, headerLength: UInt64)
    /// The header length field is larger than the bytes that follow it.
    case headerLengthExceedsFile(path: String, headerLength: UInt64, fileSize: Int)
    /// The header is not UTF-8 JSON, or not a JSON object.
    case headerNotJSON(path: String, reason: String)
    /// `__metadata__` is not an object mapping strings to strings.
    case invalidMetadata(path: String, reason: String)
    /// A tensor name occurs twice: in a header (at `line`, `column` of the second), or in the
    /// list given to `write` (no position).
    case duplicateTensorName(path: String, name: String, line: Int? = nil, column: Int? = nil)
    /// A tensor entry lacks `dtype`, `shape` or `data_offsets`, or one of them is malformed.
    case invalidTensorEntry(path: String, name: String, reason: String)
    /// The dtype string is not one the safetensors format defines.
    case unknownDtype(path: String, name: String, dtype: String)
    /// A dimension is negative or not an integer, or the size overflows.
    case invalidShape(path: String, name: String, reason: String)
    /// The byte size implied by dtype and shape differs from the span of `data_offsets`.
    case sizeMismatch(path: String, name: String, dtype: String, shape: [Int],
                      expectedByteCount: Int, actualByteCount: Int)
    /// `data_offsets` reach past the end of the data section.
    case offsetsOutOfBounds(path: String, name: String, begin: Int, end: Int, dataByteCount: Int)
    /// Two tensors share bytes.
    case overlappingTensors(path: String, name: String, previous: String, begin: Int,
                            previousEnd: Int)
    /// Bytes `begin..<end` of the data section belong to no tensor.
    case holeInData(path: String, begin: Int, end: Int, after: String?, before: String?)
    /// `tensor(_:)` was asked for a name the file does not hold.
    case tensorNotFound(path: String, name: String, available: [String])
    /// A valid safetensors dtype that dpft does not convert to Float32 (only F32, F16, BF16).
    case unsupportedDtype(path: String, name: String, dtype: String)
    /// `__metadata__` was given as a tensor name to `write`.
    case reservedTensorName(path: String, name: String)
    /// Creating, writing or renaming the output file failed.
    case writeFailed(path: String, reason: String)

    public var description: String {
        let corrupt = "The file is corrupt or not safetensors; download or write it again."
        switch self {
        case .cannotRead(let path, let reason):
            return "cannot read safetensors file \(path): \(reason). "
                + "Check that the path is right and the file is readable."
        case .fileTooShort(let path, let byteCount):
            return "\(path) is \(byteCount) bytes long, too short for a safetensors file "
                + "(which starts with an 8-byte header length). " + corrupt
        case .headerTooLarge(let path, let headerLength):
            return "\(path): the header length field says \(headerLength) bytes, more than the "
                + "\(SafeTensorsFile.maximumHeaderLength)-byte limit of the safetensors format. "
                + corrupt
        case .headerLengthExceedsFile(let path, let headerLength, let fileSize):
            return "\(path): the header length field says \(headerLength) bytes but only "
                + "\(max(fileSize - 8, 0)) bytes follow it (the file is truncated). " + corrupt
        case .headerNotJSON(let path, let reason):
            return "\(path): the safetensors header is not a valid JSON object (\(reason)). "
                + corrupt
        case .invalidMetadata(let path, let reason):
            return "\(path): \"__metadata__\" \(reason); it must be an object mapping strings "
                + "to strings. " + corrupt
        case .duplicateTensorName(let path, let name, let line, let column):
            let place = line.map { " (again at line \($0), column \(column ?? 0) of the header)" } ?? ""
            return "\(path): tensor name \"\(name)\" appears more than once\(place); tensor names in a "
                + "safetensors file must be unique. Rename or drop one of them."
        case .invalidTensorEntry(let path, let name, let reason):
            return "\(path): tensor \"\(name)\": \(reason). Each entry needs \"dtype\" (a "
                + "string), \"shape\" (non-negative integers) and \"data_offsets\" ([begin, end]). "
                + corrupt
        case .unknownDtype(let path, let name, let dtype):
            let known = SafeTensorsFile.dtypeBitCounts.keys.sorted().joined(separator: ", ")
            return "\(path): tensor \"\(name)\" has dtype \"\(dtype)\", which is not a "
                + "safetensors dtype (known: \(known)). " + corrupt
        case .invalidShape(let path, let name, let reason):
            return "\(path): tensor \"\(name)\" has an invalid shape: \(reason). " + corrupt
        case .sizeMismatch(let path, let name, let dtype, let shape, let expected, let actual):
            return "\(path): tensor \"\(name)\" (\(dtype), shape \(shape)) needs \(expected) "
                + "bytes but its data_offsets span \(actual) bytes. " + corrupt
        case .offsetsOutOfBounds(let path, let name, let begin, let end, let dataByteCount):
            return "\(path): tensor \"\(name)\" has data_offsets [\(begin), \(end)] but the data "
                + "section holds only \(dataByteCount) bytes (the file is truncated). " + corrupt
        case .overlappingTensors(let path, let name, let previous, let begin, let previousEnd):
            return "\(path): tensors \"\(previous)\" and \"\(name)\" overlap: \"\(name)\" begins "
                + "at data byte \(begin), before \"\(previous)\" ends at byte \(previousEnd). "
                + corrupt
        case .holeInData(let path, let begin, let end, let after, let before):
            let place: String
            switch (after, before) {
            case let (after?, before?): place = "between tensors \"\(after)\" and \"\(before)\""
            case let (nil, before?): place = "before the first tensor \"\(before)\""
            case let (after?, nil): place = "after the last tensor \"\(after)\""
            case (nil, nil): place = "in a file that declares no tensors"
            }
            return "\(path): data bytes \(begin)..<\(end) belong to no tensor (\(place)); a "
                + "safetensors data section must be covered exactly, without holes. " + corrupt
        case .tensorNotFound(let path, let name, let available):
            let examples = available.prefix(5).map { "\"\($0)\"" }.joined(separator: ", ")
            return "\(path) has no tensor named \"\(name)\" (it holds \(available.count) "
                + "tensors\(available.isEmpty ? "" : ", e.g. \(examples)")). "
                + "Check the name against the checkpoint's keys."
        case .unsupportedDtype(let path, let name, let dtype):
            return "\(path): tensor \"\(name)\" has dtype \(dtype); dpft reads only F32, F16 and "
                + "BF16 tensors. Convert the checkpoint to one of these (e.g. in PyTorch: "
                + "model.to(torch.float32) before save_pretrained)."
        case .reservedTensorName(let path, let name):
            return "cannot write \(path): \"\(name)\" is reserved for the metadata map and cannot "
                + "name a tensor. Rename the tensor."
        case .writeFailed(let path, let reason):
            return "cannot write safetensors file \(path): \(reason). Check that the directory "
                + "exists, is writable and has free space."
        }
    }
}

/// A safetensors file opened for reading: the validated header plus the memory-mapped data.
///
/// `read(url:)` validates the whole header up front (dtypes, shapes, offsets, exact coverage of
/// the data section), so `tensor(_:)` only fails for an unknown name or an unsupported dtype.
public struct SafeTensorsFile: Sendable {
    /// The largest header the format allows (the reference implementation's limit).
    static let maximumHeaderLength: UInt64 = 100_000_000
    /// Bits per element of every dtype the safetensors format defines.
    static let dtypeBitCounts: [String: Int] = [
        "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
        "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
        "I32": 32, "U32": 32, "F32": 32,
        "I64": 64, "U64": 64, "F64": 64, "C64": 64,
        "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    ]

    struct Entry: Sendable {
        var dtype: String
        var shape: [Int]
        var begin: Int  // byte offsets into the data section, begin...end
        var end: Int
        var headerIndex: Int  // position in the header, to order zero-size tensors stably
    }

    /// The file this was read from.
    public let url: URL
    /// Tensor names in file order (by data offset).
    public let tensorNames: [String]
    /// The `__metadata__` map (empty when the file has none).
    public let metadata: [String: String]

    private let entries: [String: Entry]
    private let data: Data  // the whole file, memory-mapped
    private let dataStart: Int  // 8 + header length

    /// Opens and validates a safetensors file. The file is memory-mapped, not copied.
    public static func read(url: URL) throws -> SafeTensorsFile {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw SafeTensorsError.cannotRead(path: url.path, reason: FileProblem.reason(for: error, path: url.path))
        }
        return try SafeTensorsFile(url: url, data: data)
    }

    /// The dtype string of a tensor (e.g. "F32", "BF16"), or nil when the file lacks it.
    public func dtype(of name: String) -> String? { entries[name]?.dtype }

    /// The shape of a tensor, or nil when the file lacks it.
    public func shape(of name: String) -> [Int]? { entries[name]?.shape }

    /// A tensor's values converted exactly to Float32 (F32 copied, F16 and BF16 widened).
    public func tensor(_ name: String) throws -> Tensor {
        let path = url.path
        guard let entry = entries[name] else {
            throw SafeTensorsError.tensorNotFound(path: path, name: name, available: tensorNames)
        }
        guard ["F32", "F16", "BF16"].contains(entry.dtype) else {
            throw SafeTensorsError.unsupportedDtype(path: path, name: name, dtype: entry.dtype)
        }
        // The shape and byte span were validated in init, so this allocation is bounded by
        // the file size and the element count cannot overflow.
        let result = Tensor(zeros: entry.shape)
        let count = result.count
        guard count > 0 else { return result }
        let start = dataStart + entry.begin
        let target = result.pointer
        data.withUnsafeBytes { (file: UnsafeRawBufferPointer) in
            switch entry.dtype {
            case "F32":
                // The data may sit at any byte offset, so copy bytes rather than load floats.
                UnsafeMutableRawPointer(target).copyMemory(from: file.baseAddress! + start,
                                                           byteCount: count * 4)
            case "F16":
                for i in 0..<count {
                    let bits = file.loadUnaligned(fromByteOffset: start + 2 * i, as: UInt16.self)
                    target[i] = floatFromHalf(UInt16(littleEndian: bits))
                }
            default:  // BF16: the upper 16 bits of a Float32
                for i in 0..<count {
                    let bits = file.loadUnaligned(fromByteOffset: start + 2 * i, as: UInt16.self)
                    target[i] = Float(bitPattern: UInt32(UInt16(littleEndian: bits)) << 16)
                }
            }
        }
        return result
    }

    /// Parses and validates the header of `data`, the bytes of the file at `url`.
    init(url: URL, data: Data) throws {
        let path = url.path
        guard data.count >= 8 else {
            throw SafeTensorsError.fileTooShort(path: path, byteCount: data.count)
        }
        let headerLength = data.withUnsafeBytes {
            UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        }
        // Compare as UInt64 before converting: a hostile length (say 2^63) must not trap.
        guard headerLength <= UInt64(data.count - 8) else {
            throw SafeTensorsError.headerLengthExceedsFile(path: path, headerLength: headerLength,
                                                           fileSize: data.count)
        }
        guard headerLength <= Self.maximumHeaderLength else {
            throw SafeTensorsError.headerTooLarge(path: path, headerLength: headerLength)
        }
        let dataStart = 8 + Int(headerLength)
        let dataByteCount = data.count - dataStart
        let headerBytes = [UInt8](data[data.startIndex + 8 ..< data.startIndex + dataStart])

        let header: JSONValue
        do {
            header = try JSONParser.parse(headerBytes, source: path)
        } catch {
            throw Self.headerError(error, path: path)
        }
        guard case .object(let members) = header else {
            throw SafeTensorsError.headerNotJSON(
                path: path, reason: "the top level is \(header.kind), not an object")
        }

        var metadata: [String: String]?
        var entries: [String: Entry] = [:]
        for (index, (name, value)) in members.enumerated() {  // names are unique: the parser checked
            if name == "__metadata__" {
                metadata = try Self.parseMetadata(value, path: path)
                continue
            }
            entries[name] = try Self.parseEntry(value, name: name, headerIndex: index,
                                                dataByteCount: dataByteCount, path: path)
        }

        // The tensors must tile the data section: sorted by offset, each begins where the
        // previous one ended, and the last ends at the end of the file.
        let ordered = entries.sorted {
            ($0.value.begin, $0.value.end, $0.value.headerIndex)
                < ($1.value.begin, $1.value.end, $1.value.headerIndex)
        }
        var cursor = 0
        var previous: String?
        for (name, entry) in ordered {
            if entry.begin < cursor, let previous {
                throw SafeTensorsError.overlappingTensors(path: path, name: name,
                                                          previous: previous, begin: entry.begin,
                                                          previousEnd: cursor)
            }
            if entry.begin > cursor {
                throw SafeTensorsError.holeInData(path: path, begin: cursor, end: entry.begin,
                                                  after: previous, before: name)
            }
            cursor = entry.end
            previous = name
        }
        if cursor != dataByteCount {
            throw SafeTensorsError.holeInData(path: path, begin: cursor, end: dataByteCount,
                                              after: previous, before: nil)
        }

        self.url = url
        self.tensorNames = ordered.map(\.key)
        self.metadata = metadata ?? [:]
        self.entries = entries
        self.data = data
        self.dataStart = dataStart
    }

    /// A header that the JSON layer rejected, as the error that says what is wrong with the
    /// file: a repeated tensor name, metadata key or entry key gets its own case, with the
    /// position.
    private static func headerError(_ error: JSONParseError, path: String) -> SafeTensorsError {
        guard case .duplicateKey(let key, let keyPath) = error.kind else {
            return .headerNotJSON(path: path, reason: error.locatedReason)
        }
        let position = "line \(error.line), column \(error.column) of the header"
        if keyPath == key {  // a member of the top-level object
            return key == "__metadata__"
                ? .invalidMetadata(path: path, reason: "appears twice (again at \(position))")
                : .duplicateTensorName(path: path, name: key, line: error.line, column: error.column)
        }
        if keyPath == "__metadata__." + key {
            return .invalidMetadata(path: path, reason: "has key \"\(key)\" twice (again at \(position))")
        }
        // Inside a tensor's entry (the name is the path before the key; names may hold dots).
        return .invalidTensorEntry(path: path, name: String(keyPath.dropLast(key.count + 1)),
                                   reason: "key \"\(key)\" appears twice (again at \(position))")
    }

    private static func parseMetadata(_ value: JSONValue, path: String) throws -> [String: String] {
        guard case .object(let members) = value else {
            throw SafeTensorsError.invalidMetadata(path: path, reason: "is \(value.kind)")
        }
        var metadata: [String: String] = [:]
        for (key, value) in members {
            guard case .string(let text) = value else {
                throw SafeTensorsError.invalidMetadata(
                    path: path, reason: "maps \"\(key)\" to \(value.kind), not a string")
            }
            metadata[key] = text
        }
        return metadata
    }

    private static func parseEntry(_ value: JSONValue, name: String, headerIndex: Int,
                                   dataByteCount: Int, path: String) throws -> Entry {
        func invalid(_ reason: String) -> SafeTensorsError {
            .invalidTensorEntry(path: path, name: name, reason: reason)
        }
        // Keys other than the three below are ignored, as upstream does.
        guard case .object(let fields) = value else {
            throw invalid("the entry is \(value.kind), not an object")
        }

        guard case .string(let dtype)? = fields["dtype"] else {
            throw invalid("\"dtype\" is missing or not a string")
        }
        guard let bitsPerElement = dtypeBitCounts[dtype] else {
            throw SafeTensorsError.unknownDtype(path: path, name: name, dtype: dtype)
        }

        guard case .array(let dimensions)? = fields["shape"] else {
            throw invalid("\"shape\" is missing or not an array")
        }
        var shape: [Int] = []
        var elementCount = 1
        for dimension in dimensions {
            guard case .number(let number) = dimension, let size = number.integer(as: Int.self) else {
                throw SafeTensorsError.invalidShape(
                    path: path, name: name,
                    reason: "dimension \(dimension.excerpt) is not an integer in range")
            }
            guard size >= 0 else {
                throw SafeTensorsError.invalidShape(path: path, name: name,
                                                    reason: "dimension \(size) is negative")
            }
            shape.append(size)
            let (product, overflow) = elementCount.multipliedReportingOverflow(by: size)
            guard !overflow else {
                throw SafeTensorsError.invalidShape(
                    path: path, name: name,
                    reason: "\(dimensions.map(\.excerpt)) has more elements than a file can hold")
            }
            elementCount = product
        }
        let (bitCount, overflow) = elementCount.multipliedReportingOverflow(by: bitsPerElement)
        guard !overflow else {
            throw SafeTensorsError.invalidShape(
                path: path, name: name, reason: "\(shape) of \(dtype) is larger than a file can hold")
        }
        guard bitCount % 8 == 0 else {
            throw SafeTensorsError.invalidShape(
                path: path, name: name,
                reason: "\(shape) of \(dtype) is \(bitCount) bits, not a whole number of bytes")
        }

        guard case .array(let offsets)? = fields["data_offsets"], offsets.count == 2,
              case .number(let beginNumber) = offsets[0], let begin = beginNumber.integer(as: Int.self),
              case .number(let endNumber) = offsets[1], let end = endNumber.integer(as: Int.self),
              begin >= 0, end >= 0
        else {
            throw invalid("\"data_offsets\" is missing or not two non-negative integers")
        }
        guard begin <= end else {
            throw invalid("\"data_offsets\" [\(begin), \(end)] ends before it begins")
        }
        guard end <= dataByteCount else {
            throw SafeTensorsError.offsetsOutOfBounds(path: path, name: name, begin: begin,
                                                      end: end, dataByteCount: dataByteCount)
        }
        guard end - begin == bitCount / 8 else {
            throw SafeTensorsError.sizeMismatch(path: path, name: name, dtype: dtype, shape: shape,
                                                expectedByteCount: bitCount / 8,
                                                actualByteCount: end - begin)
        }
        return Entry(dtype: dtype, shape: shape, begin: begin, end: end, headerIndex: headerIndex)
    }
}

/// IEEE binary16 → binary32, exactly. Written out rather than via `Float16`, which Swift does
/// not provide on Intel macOS; the tests check it against `Float16` for all 65,536 patterns.
func floatFromHalf(_ bits: UInt16) -> Float {
    let sign = UInt32(bits & 0x8000) << 16
    let exponent = UInt32(bits >> 10) & 0x1F
    let mantissa = UInt32(bits & 0x3FF)
    switch exponent {
    case 0x1F:  // infinity, or NaN (quieted, payload kept, as the hardware conversion does)
        let quiet: UInt32 = mantissa == 0 ? 0 : 0x0040_0000
        return Float(bitPattern: sign | 0x7F80_0000 | quiet | (mantissa << 13))
    case 0:  // zero or subnormal: mantissa · 2^-24, a normal Float32
        let magnitude = Float(mantissa) * 0x1p-24
        return Float(bitPattern: sign | magnitude.bitPattern)
    default:  // normal: rebias the exponent from 15 to 127
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}

// MARK: - Writing

extension SafeTensorsFile {
    /// Writes `tensors` as F32, in the given order, to `url`, atomically: the bytes go to a
    /// temporary file in the same directory which is then renamed over `url`, so `url` never
    /// holds a half-written file. The header is deterministic (metadata keys sorted, tensors in
    /// order) and padded with spaces so the data starts at a multiple of 8 bytes.
    ///
    /// `metadata` gains `"format": "pt"` unless it has a `"format"` already: `transformers`
    /// needs it to load the file into PyTorch.
    public static func write(_ tensors: [(name: String, tensor: Tensor)],
                             metadata: [String: String] = [:], to url: URL) throws {
        let path = url.path
        var seen = Set<String>()
        for (name, _) in tensors {
            guard name != "__metadata__" else {
                throw SafeTensorsError.reservedTensorName(path: path, name: name)
            }
            guard seen.insert(name).inserted else {
                throw SafeTensorsError.duplicateTensorName(path: path, name: name)
            }
        }
        var metadata = metadata
        if metadata["format"] == nil { metadata["format"] = "pt" }

        var header: JSONObject = [
            "__metadata__": .object(JSONObject(metadata.keys.sorted().map { (key: $0, value: .string(metadata[$0]!)) })),
        ]
        var offset = 0
        for (name, tensor) in tensors {
            let (byteCount, overflow) = tensor.count.multipliedReportingOverflow(by: 4)
            let (end, endOverflow) = offset.addingReportingOverflow(byteCount)
            guard !overflow, !endOverflow else {
                throw SafeTensorsError.writeFailed(path: path,
                                                   reason: "tensor \"\(name)\" is too large")
            }
            header[name] = ["dtype": "F32", "shape": .array(tensor.shape.map { .number($0) }),
                            "data_offsets": [.number(offset), .number(end)]]
            offset = end
        }
        var headerBytes = Array(JSONValue.object(header).text(.compact).utf8)
        // Pad so that 8 + N is a multiple of 8, and the data section starts aligned.
        headerBytes += [UInt8](repeating: 0x20, count: (8 - headerBytes.count % 8) % 8)
        var prefix = Data()
        withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { prefix.append(contentsOf: $0) }
        prefix.append(contentsOf: headerBytes)

        do {
            try writeAtomically(to: url) { temporaryURL in
                guard FileManager.default.createFile(atPath: temporaryURL.path, contents: nil) else {
                    throw SafeTensorsError.writeFailed(
                        path: path, reason: "cannot create temporary file \(temporaryURL.path)")
                }
                do {
                    let handle = try FileHandle(forWritingTo: temporaryURL)
                    defer { try? handle.close() }
                    try handle.write(contentsOf: prefix)
                    for (_, tensor) in tensors {
                        try writeBytes(of: tensor, to: handle)
                    }
                    try handle.synchronize()  // the bytes are on disk before the name points at them
                } catch {
                    throw SafeTensorsError.writeFailed(path: path, reason: FileProblem.reason(for: error, path: temporaryURL.path))
                }
            }
        } catch CheckpointError.writeFailed(_, let reason) {
            throw SafeTensorsError.writeFailed(path: path, reason: reason)
        }
    }

    /// Writes a tensor's float32 values straight from its memory, in chunks of 64 MiB.
    private static func writeBytes(of tensor: Tensor, to handle: FileHandle) throws {
        let bytes = UnsafeMutableRawPointer(tensor.pointer)
        let byteCount = tensor.count * 4
        let chunk = 64 << 20
        var written = 0
        while written < byteCount {
            let size = min(chunk, byteCount - written)
            try handle.write(contentsOf: Data(bytesNoCopy: bytes + written, count: size,
                                              deallocator: .none))
            written += size
        }
    }
}
