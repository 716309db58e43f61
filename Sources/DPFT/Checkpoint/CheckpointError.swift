/// Errors reading or writing dpft checkpoints; every case names the file and the object.
public enum CheckpointError: Error, CustomStringConvertible, Equatable {
    case fileNotFound(path: String)
    case notHDF5(path: String)
    case wrongFormat(path: String, found: String)
    case unsupportedVersion(path: String, found: Int64)
    case missingAttribute(path: String, name: String)
    case missingTensor(path: String, name: String)
    case unexpectedTensor(path: String, name: String)
    case shapeMismatch(path: String, name: String, expected: [Int], found: [Int])
    case wrongType(path: String, object: String, expected: String)
    case hdf5(path: String, object: String, operation: String)
    /// A root attribute has a value of the wrong kind or one that contradicts the config.
    case invalidAttribute(path: String, name: String, found: String, expected: String)
    /// A tensor holds NaN or ±∞ (first at flat `index`).
    case nonFiniteTensor(path: String, name: String, index: Int, value: Double)
    /// A checksummed dataset's data no longer matches its Fletcher-32 checksum.
    case checksumMismatch(path: String, object: String)
    case writeFailed(path: String, reason: String)
    /// A checkpoint refers to a frozen base file that is not there.
    case baseMissing(path: String, base: String)
    /// A checkpoint's frozen base file no longer has the SHA-256 recorded with the reference.
    case baseChanged(path: String, base: String, expected: String, found: String)

    public var description: String {
        switch self {
        case .fileNotFound(let path):
            return "\(path): no such file. Check the path, or create a checkpoint with `dpft init` or `dpft import`."
        case .notHDF5(let path):
            return "\(path): not an HDF5 file. dpft checkpoints are HDF5 files written by `dpft init`, `dpft import` or training."
        case .wrongFormat(let path, let found):
            return "\(path): root attribute `format` is \"\(found)\", expected \"dpft\" — this HDF5 file is not a dpft checkpoint. Convert Hugging Face models with `dpft import`."
        case .unsupportedVersion(let path, let found):
            return "\(path): checkpoint format_version \(found) is newer than this dpft understands (\(Checkpoint.formatVersion)). Upgrade dpft."
        case .missingAttribute(let path, let name):
            return "\(path): root attribute `\(name)` is missing; the checkpoint is incomplete."
        case .missingTensor(let path, let name):
            return "\(path): tensor `\(name)` is missing; the model's config requires it."
        case .unexpectedTensor(let path, let name):
            return "\(path): tensor `\(name)` is not part of the model its config describes."
        case .shapeMismatch(let path, let name, let expected, let found):
            return "\(path): tensor `\(name)` has shape \(found), but the config requires \(expected)."
        case .wrongType(let path, let object, let expected):
            return "\(path): `\(object)` has the wrong type; expected \(expected)."
        case .hdf5(let path, let object, let operation):
            return "\(path): HDF5 could not \(operation) at `\(object)`."
        case .invalidAttribute(let path, let name, let found, let expected):
            return "\(path): root attribute `\(name)` is \(found), expected \(expected); the file was not written by this dpft or was edited."
        case .nonFiniteTensor(let path, let name, let index, let value):
            return "\(path): tensor `\(name)` holds \(value) at element \(index); a model with non-finite weights cannot be used. Resume from an earlier checkpoint (or retrain with a lower learning rate)."
        case .checksumMismatch(let path, let object):
            return "\(path): `\(object)` fails its checksum — the file is damaged (disk, copy or transfer). Restore it from a good copy, or resume from an earlier checkpoint."
        case .writeFailed(let path, let reason):
            return "\(path): could not write: \(reason)."
        case .baseMissing(let path, let base):
            return "\(path) refers to its frozen base model \(base), which is missing. Put the base checkpoint back at that path (the step checkpoints of a LoRA run do not copy it), or use final.h5, which stands alone."
        case .baseChanged(let path, let base, let expected, let found):
            return "\(path) refers to its frozen base model \(base) with SHA-256 \(expected.prefix(12))…, but that file now has \(found.prefix(12))…: the base changed since the run started. Restore the original base checkpoint, or start a new run (--overwrite or another output.directory)."
        }
    }
}
