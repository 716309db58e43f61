import CHDF5
import Foundation

// A thin, owned wrapper over the HDF5 C API: handles close in deinit, failures become
// `CheckpointError`s naming the file and the object.

/// An open HDF5 identifier, closed when the wrapper is released.
final class HDF5Handle {
    let id: hid_t
    private let close: (hid_t) -> herr_t

    init(_ id: hid_t, close: @escaping (hid_t) -> herr_t) {
        self.id = id
        self.close = close
    }

    deinit { _ = close(id) }
}

/// What an HDF5 attribute holds: dpft writes strings (JSON included), numbers and integers.
public enum HDF5AttributeValue: Equatable, Sendable {
    case string(String)
    case double(Double)
    case integer(Int64)

    /// The value as text (numbers formatted), for messages and loose reading.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }
}

/// An HDF5 file opened for reading or created for writing.
final class HDF5File {
    let path: String
    private let handle: HDF5Handle

    private init(path: String, handle: HDF5Handle) {
        self.path = path
        self.handle = handle
    }

    var id: hid_t { handle.id }

    /// Opens an existing file read-only, distinguishing a missing file from a non-HDF5 one.
    static func openForReading(_ path: String) throws -> HDF5File {
        dpft_h5_silence_errors()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory),
              !isDirectory.boolValue else {
            throw CheckpointError.fileNotFound(path: path)
        }
        guard H5Fis_hdf5(path) > 0 else { throw CheckpointError.notHDF5(path: path) }
        let id = H5Fopen(path, dpft_h5f_acc_rdonly(), 0)
        guard id >= 0 else { throw CheckpointError.notHDF5(path: path) }
        return HDF5File(path: path, handle: HDF5Handle(id, close: H5Fclose))
    }

    /// Creates (truncates) a file for writing.
    static func create(_ path: String) throws -> HDF5File {
        dpft_h5_silence_errors()
        // The 1.8 file format (readable by HDF5 ≥ 1.8 and h5py) checksums its object headers,
        // so damaged metadata is detected too, not only damaged tensor data.
        let access = H5Pcreate(dpft_h5p_file_access())
        defer { H5Pclose(access) }
        H5Pset_libver_bounds(access, H5F_LIBVER_V18, H5F_LIBVER_V18)
        let id = H5Fcreate(path, dpft_h5f_acc_trunc(), 0, access)
        guard id >= 0 else {
            throw CheckpointError.hdf5(path: path, object: "/", operation: "create the file")
        }
        return HDF5File(path: path, handle: HDF5Handle(id, close: H5Fclose))
    }

    /// Flushes and closes now (deinit would too, but errors are reported here).
    func flush() throws {
        guard H5Fflush(id, H5F_SCOPE_GLOBAL) >= 0 else {
            throw CheckpointError.hdf5(path: path, object: "/", operation: "flush")
        }
    }

    // MARK: Objects

    /// Whether a link (group or dataset) exists at an absolute path like "/tensors/x".
    func exists(_ objectPath: String) -> Bool {
        var prefix = ""
        for component in objectPath.split(separator: "/") {
            prefix += "/" + component
            if H5Lexists(id, prefix, 0) <= 0 { return false }
        }
        return true
    }

    func isGroup(_ objectPath: String) -> Bool {
        guard exists(objectPath) else { return false }
        var info = H5O_info_t()
        guard H5Oget_info_by_name2(id, objectPath, &info, UInt32(H5O_INFO_BASIC), 0) >= 0 else {
            return false
        }
        return info.type == H5O_TYPE_GROUP
    }

    func createGroup(_ objectPath: String) throws {
        let group = H5Gcreate2(id, objectPath, 0, 0, 0)
        guard group >= 0 else {
            throw CheckpointError.hdf5(path: path, object: objectPath, operation: "create group")
        }
        H5Gclose(group)
    }

    private func openObject(_ objectPath: String) throws -> HDF5Handle {
        let object = H5Oopen(id, objectPath, 0)
        guard object >= 0 else {
            throw CheckpointError.hdf5(path: path, object: objectPath, operation: "open")
        }
        return HDF5Handle(object, close: H5Oclose)
    }

    /// Names of the links inside a group, in HDF5's (alphabetical) order.
    func children(of groupPath: String) throws -> [String] {
        let group = H5Gopen2(id, groupPath, 0)
        guard group >= 0 else {
            throw CheckpointError.hdf5(path: path, object: groupPath, operation: "open group")
        }
        defer { H5Gclose(group) }
        var info = H5G_info_t()
        guard H5Gget_info(group, &info) >= 0 else {
            throw CheckpointError.hdf5(path: path, object: groupPath, operation: "list group")
        }
        var names: [String] = []
        for index in 0..<info.nlinks {
            let length = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, 0)
            guard length >= 0 else {
                throw CheckpointError.hdf5(path: path, object: groupPath, operation: "read link name")
            }
            var buffer = [CChar](repeating: 0, count: Int(length) + 1)
            H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, buffer.count, 0)
            names.append(String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return names
    }

    // MARK: Datasets

    /// Writes a float32 dataset with the tensor's shape (scalar for shape []), checksummed.
    func writeTensor(_ tensor: Tensor, at objectPath: String) throws {
        let space = try makeDataspace(tensor.shape, objectPath: objectPath)
        defer { H5Sclose(space) }
        let creation = try checksummedCreation(shape: tensor.shape, elementBytes: 4, objectPath: objectPath)
        defer { H5Pclose(creation) }
        let dataset = H5Dcreate2(id, objectPath, dpft_h5t_native_float(), space, 0, creation, 0)
        guard dataset >= 0 else {
            throw CheckpointError.hdf5(path: path, object: objectPath, operation: "create dataset")
        }
        defer { H5Dclose(dataset) }
        if tensor.count > 0 {
            guard H5Dwrite(dataset, dpft_h5t_native_float(), 0, 0, 0, tensor.pointer) >= 0 else {
                throw CheckpointError.hdf5(path: path, object: objectPath, operation: "write dataset")
            }
        }
    }

    /// Writes raw bytes as a one-dimensional uint8 dataset.
    func writeBytes(_ bytes: [UInt8], at objectPath: String) throws {
        let space = try makeDataspace([bytes.count], objectPath: objectPath)
        defer { H5Sclose(space) }
        let creation = try checksummedCreation(shape: [bytes.count], elementBytes: 1, objectPath: objectPath)
        defer { H5Pclose(creation) }
        let dataset = H5Dcreate2(id, objectPath, dpft_h5t_native_uint8(), space, 0, creation, 0)
        guard dataset >= 0 else {
            throw CheckpointError.hdf5(path: path, object: objectPath, operation: "create dataset")
        }
        defer { H5Dclose(dataset) }
        if !bytes.isEmpty {
            let status = bytes.withUnsafeBytes { H5Dwrite(dataset, dpft_h5t_native_uint8(), 0, 0, 0, $0.baseAddress) }
            guard status >= 0 else {
                throw CheckpointError.hdf5(path: path, object: objectPath, operation: "write dataset")
            }
        }
    }

    /// Largest chunk written, in bytes: a tensor is one chunk up to this size, else chunks of
    /// whole rows (HDF5 limits a chunk to 4 GiB).
    static let maximumChunkBytes = 64 << 20

    /// A dataset-creation property list with HDF5's Fletcher-32 filter: each chunk carries a
    /// checksum that H5Dread verifies, so a damaged tensor is refused by name instead of
    /// loading different numbers. Scalars and empty datasets cannot be chunked and stay plain.
    private func checksummedCreation(shape: [Int], elementBytes: Int, objectPath: String) throws -> hid_t {
        let creation = H5Pcreate(dpft_h5p_dataset_create())
        guard creation >= 0 else {
            throw CheckpointError.hdf5(path: path, object: objectPath, operation: "create dataset properties")
        }
        guard !shape.isEmpty, !shape.contains(0) else { return creation }
        var chunk = shape.map { hsize_t($0) }
        let rowBytes = shape.dropFirst().reduce(elementBytes, *)
        chunk[0] = hsize_t(max(1, min(shape[0], Self.maximumChunkBytes / max(rowBytes, 1))))
        guard H5Pset_chunk(creation, Int32(chunk.count), chunk) >= 0, H5Pset_fletcher32(creation) >= 0 else {
            H5Pclose(creation)
            throw CheckpointError.hdf5(path: path, object: objectPath, operation: "set up the checksum filter")
        }
        return creation
    }

    /// Whether the dataset was written with the Fletcher-32 checksum filter.
    private func isChecksummed(_ dataset: hid_t) -> Bool {
        let creation = H5Dget_create_plist(dataset)
        guard creation >= 0 else { return false }
        defer { H5Pclose(creation) }
        var flags: UInt32 = 0, count = 0
        var name = [CChar](repeating: 0, count: 16)
        var configuration: UInt32 = 0
        return H5Pget_filter_by_id2(creation, H5Z_filter_t(H5Z_FILTER_FLETCHER32), &flags, &count, nil,
                                    name.count, &name, &configuration) >= 0
    }

    /// The error for a failed H5Dread: a checksum mismatch names the damaged tensor.
    private func readError(_ dataset: hid_t, objectPath: String) -> CheckpointError {
        isChecksummed(dataset) ? .checksumMismatch(path: path, object: objectPath)
            : .hdf5(path: path, object: objectPath, operation: "read dataset")
    }

    private func makeDataspace(_ shape: [Int], objectPath: String) throws -> hid_t {
        let space: hid_t
        if shape.isEmpty {
            space = H5Screate(H5S_SCALAR)
        } else {
            let dims = shape.map { hsize_t($0) }
            space = H5Screate_simple(Int32(dims.count), dims, nil)
        }
        guard space >= 0 else {
            throw CheckpointError.hdf5(path: path, object: objectPath, operation: "create dataspace \(shape)")
        }
        return space
    }

    /// The shape of a dataset.
    func shape(of objectPath: String) throws -> [Int] {
        let dataset = try openDataset(objectPath)
        return try shape(dataset: dataset.id, objectPath: objectPath)
    }

    private func openDataset(_ objectPath: String) throws -> HDF5Handle {
        let dataset = H5Dopen2(id, objectPath, 0)
        guard dataset >= 0 else {
            throw CheckpointError.hdf5(path: path, object: objectPath, operation: "open dataset")
        }
        return HDF5Handle(dataset, close: H5Dclose)
    }

    private func shape(dataset: hid_t, objectPath: String) throws -> [Int] {
        let space = H5Dget_space(dataset)
        guard space >= 0 else {
            throw CheckpointError.hdf5(path: path, object: objectPath, operation: "read dataspace")
        }
        defer { H5Sclose(space) }
        let rank = H5Sget_simple_extent_ndims(space)
        guard rank >= 0 else {
            throw CheckpointError.hdf5(path: path, object: objectPath, operation: "read rank")
        }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        H5Sget_simple_extent_dims(space, &dims, nil)
        return dims.map { Int($0) }
    }

    /// Reads a numeric dataset as float32 (HDF5 converts other float/int types).
    func readTensor(at objectPath: String) throws -> Tensor {
        let dataset = try openDataset(objectPath)
        let type = H5Dget_type(dataset.id)
        defer { H5Tclose(type) }
        let typeClass = H5Tget_class(type)
        guard typeClass == H5T_FLOAT || typeClass == H5T_INTEGER else {
            throw CheckpointError.wrongType(path: path, object: objectPath, expected: "float32")
        }
        let tensor = Tensor(zeros: try shape(dataset: dataset.id, objectPath: objectPath))
        if tensor.count > 0 {
            guard H5Dread(dataset.id, dpft_h5t_native_float(), 0, 0, 0, tensor.pointer) >= 0 else {
                throw readError(dataset.id, objectPath: objectPath)
            }
        }
        return tensor
    }

    /// Reads a one-dimensional uint8 dataset.
    func readBytes(at objectPath: String) throws -> [UInt8] {
        let dataset = try openDataset(objectPath)
        let dims = try shape(dataset: dataset.id, objectPath: objectPath)
        guard dims.count == 1 else {
            throw CheckpointError.wrongType(path: path, object: objectPath, expected: "a 1-D byte array")
        }
        var bytes = [UInt8](repeating: 0, count: dims[0])
        if !bytes.isEmpty {
            let status = bytes.withUnsafeMutableBytes { H5Dread(dataset.id, dpft_h5t_native_uint8(), 0, 0, 0, $0.baseAddress) }
            guard status >= 0 else { throw readError(dataset.id, objectPath: objectPath) }
        }
        return bytes
    }

    // MARK: Attributes

    /// Writes (or replaces) an attribute on the object at `objectPath`.
    func setAttribute(_ name: String, _ value: HDF5AttributeValue, on objectPath: String = "/") throws {
        let object = try openObject(objectPath)
        if H5Aexists(object.id, name) > 0 { H5Adelete(object.id, name) }
        let space = H5Screate(H5S_SCALAR)
        defer { H5Sclose(space) }
        let failure = CheckpointError.hdf5(path: path, object: "\(objectPath)@\(name)", operation: "write attribute")
        switch value {
        case .string(let text):
            // Variable-length UTF-8: h5py reads these as `str`.
            let type = H5Tcopy(dpft_h5t_c_s1())
            defer { H5Tclose(type) }
            H5Tset_size(type, dpft_h5t_variable())
            H5Tset_cset(type, H5T_CSET_UTF8)
            let attribute = H5Acreate2(object.id, name, type, space, 0, 0)
            guard attribute >= 0 else { throw failure }
            defer { H5Aclose(attribute) }
            let status = text.withCString { cString -> herr_t in
                var pointer: UnsafePointer<CChar>? = cString
                return H5Awrite(attribute, type, &pointer)
            }
            guard status >= 0 else { throw failure }
        case .double(let number):
            let attribute = H5Acreate2(object.id, name, dpft_h5t_native_double(), space, 0, 0)
            guard attribute >= 0 else { throw failure }
            defer { H5Aclose(attribute) }
            var copy = number
            guard H5Awrite(attribute, dpft_h5t_native_double(), &copy) >= 0 else { throw failure }
        case .integer(let number):
            let attribute = H5Acreate2(object.id, name, dpft_h5t_native_int64(), space, 0, 0)
            guard attribute >= 0 else { throw failure }
            defer { H5Aclose(attribute) }
            var copy = number
            guard H5Awrite(attribute, dpft_h5t_native_int64(), &copy) >= 0 else { throw failure }
        }
    }

    /// Names of the attributes on an object.
    func attributeNames(on objectPath: String = "/") throws -> [String] {
        let object = try openObject(objectPath)
        var info = H5O_info_t()
        guard H5Oget_info2(object.id, &info, UInt32(H5O_INFO_NUM_ATTRS)) >= 0 else {
            throw CheckpointError.hdf5(path: path, object: objectPath, operation: "list attributes")
        }
        return (0..<info.num_attrs).map { index in
            let length = H5Aget_name_by_idx(object.id, ".", H5_INDEX_NAME, H5_ITER_INC, index, nil, 0, 0)
            var buffer = [CChar](repeating: 0, count: max(Int(length), 0) + 1)
            H5Aget_name_by_idx(object.id, ".", H5_INDEX_NAME, H5_ITER_INC, index, &buffer, buffer.count, 0)
            return String(decoding: buffer.prefix(max(Int(length), 0)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
    }

    /// Reads an attribute, or nil when the object has none of that name.
    func attribute(_ name: String, on objectPath: String = "/") throws -> HDF5AttributeValue? {
        let object = try openObject(objectPath)
        guard H5Aexists(object.id, name) > 0 else { return nil }
        let attribute = H5Aopen(object.id, name, 0)
        let failure = CheckpointError.hdf5(path: path, object: "\(objectPath)@\(name)", operation: "read attribute")
        guard attribute >= 0 else { throw failure }
        defer { H5Aclose(attribute) }
        let type = H5Aget_type(attribute)
        defer { H5Tclose(type) }
        switch H5Tget_class(type) {
        case H5T_STRING:
            if H5Tis_variable_str(type) > 0 {
                let memoryType = H5Tcopy(dpft_h5t_c_s1())
                defer { H5Tclose(memoryType) }
                H5Tset_size(memoryType, dpft_h5t_variable())
                H5Tset_cset(memoryType, H5Tget_cset(type))
                var pointer: UnsafeMutablePointer<CChar>? = nil
                guard H5Aread(attribute, memoryType, &pointer) >= 0 else { throw failure }
                defer { if let pointer { H5free_memory(pointer) } }
                return .string(pointer.map { String(cString: $0) } ?? "")
            }
            let size = H5Tget_size(type)
            var buffer = [UInt8](repeating: 0, count: size + 1)
            guard H5Aread(attribute, type, &buffer) >= 0 else { throw failure }
            return .string(String(decoding: buffer.prefix { $0 != 0 }, as: UTF8.self))
        case H5T_FLOAT:
            var value = 0.0
            guard H5Aread(attribute, dpft_h5t_native_double(), &value) >= 0 else { throw failure }
            return .double(value)
        case H5T_INTEGER:
            var value: Int64 = 0
            guard H5Aread(attribute, dpft_h5t_native_int64(), &value) >= 0 else { throw failure }
            return .integer(value)
        default:
            throw CheckpointError.wrongType(path: path, object: "\(objectPath)@\(name)",
                                            expected: "a string or number attribute")
        }
    }
}
