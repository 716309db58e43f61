// Float32 tensors: one owned buffer, a shape, and views by offset (llm.c style).

import Foundation

/// The owned float32 buffer behind one or more `Tensor` views.
public final class TensorStorage: @unchecked Sendable {
    /// The first element of the buffer (64-byte aligned, zero-initialised).
    public let base: UnsafeMutablePointer<Float>
    /// Number of float32 elements in the buffer.
    public let count: Int

    /// Buffers of at least this many bytes are mapped from the kernel (`mapZeroedPages`).
    static let mappingThreshold = 1 << 20

    /// The bytes allocated for `count` floats (at least one float's).
    private static func byteCount(_ count: Int) -> Int { max(count, 1) * MemoryLayout<Float>.size }

    /// Allocates `count` zeroed floats.
    public init(count: Int) {
        precondition(count >= 0, "negative tensor size")
        self.count = count
        let bytes = Self.byteCount(count)
        if bytes >= Self.mappingThreshold {
            base = Self.mapZeroedPages(bytes).assumingMemoryBound(to: Float.self)
        } else {
            let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
            raw.initializeMemory(as: Float.self, repeating: 0, count: max(count, 1))
            base = raw.assumingMemoryBound(to: Float.self)
        }
    }

    /// A large buffer comes straight from the kernel, not from malloc, for two reasons that
    /// decide a model's peak memory: its zero pages take no memory until they are written (a
    /// model's store is filled tensor by tensor while the checkpoint's tensors are freed, and
    /// buffers sized for the largest batch cost only what a batch touches), and freeing it
    /// returns the memory at once (malloc keeps freed chunks below its mmap threshold, which
    /// grows to 32 MiB as large chunks are freed, resident in its heap).
    private static func mapZeroedPages(_ bytes: Int) -> UnsafeMutableRawPointer {
        let pointer = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let pointer, pointer != MAP_FAILED else {
            fatalError("dpft: could not map \(bytes) bytes of memory for a tensor (errno \(errno)): the machine is out of memory")
        }
        return pointer
    }

    deinit {
        let bytes = Self.byteCount(count)
        if bytes >= Self.mappingThreshold {
            munmap(UnsafeMutableRawPointer(base), bytes)
        } else {
            UnsafeMutableRawPointer(base).deallocate()
        }
    }
}

/// A row-major float32 tensor: a shape and a window (`offset`, `count`) into a storage.
///
/// Copies of a `Tensor` share storage — a tensor is a view, like a pointer with a shape.
/// Use `copy()` for an independent buffer.
public struct Tensor: @unchecked Sendable {
    public let storage: TensorStorage
    /// Offset of the first element inside `storage`, in elements.
    public let offset: Int
    /// Dimensions, outermost first.
    public let shape: [Int]

    /// Number of elements (the product of `shape`; 1 for a scalar).
    public var count: Int { shape.reduce(1, *) }
    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// A new zero-filled tensor.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.storage = TensorStorage(count: shape.reduce(1, *))
        self.offset = 0
        self.shape = shape
    }

    /// A new tensor holding `values` (whose count must match the shape).
    public init(shape: [Int], values: [Float]) {
        precondition(shape.reduce(1, *) == values.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) values, got \(values.count)")
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { source in
            if let address = source.baseAddress { pointer.update(from: address, count: values.count) }
        }
    }

    /// A view of `shape` starting at `offset` elements into `storage`.
    public init(storage: TensorStorage, offset: Int, shape: [Int]) {
        precondition(offset >= 0 && offset + shape.reduce(1, *) <= storage.count,
                     "view \(shape) at \(offset) exceeds storage of \(storage.count)")
        self.storage = storage
        self.offset = offset
        self.shape = shape
    }

    /// Pointer to the first element of this view.
    public var pointer: UnsafeMutablePointer<Float> { storage.base + offset }

    /// The elements as a buffer (shares memory with the tensor).
    public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: pointer, count: count)
    }

    /// The elements copied into an array.
    public var values: [Float] { Array(buffer) }

    /// The `index`-th slice along the first dimension (a view).
    public subscript(index: Int) -> Tensor {
        precondition(rank >= 1 && index >= 0 && index < shape[0], "index \(index) out of \(shape)")
        let inner = Array(shape.dropFirst())
        return Tensor(storage: storage, offset: offset + index * inner.reduce(1, *), shape: inner)
    }

    /// An independent copy.
    public func copy() -> Tensor {
        let result = Tensor(zeros: shape)
        result.pointer.update(from: pointer, count: count)
        return result
    }

    /// Element at a multi-dimensional index (for tests and small lookups, not hot loops).
    public func element(_ index: [Int]) -> Float {
        precondition(index.count == rank, "index \(index) for shape \(shape)")
        var flat = 0
        for (i, dimension) in zip(index, shape) {
            precondition(i >= 0 && i < dimension, "index \(index) out of \(shape)")
            flat = flat * dimension + i
        }
        return pointer[flat]
    }

    /// The transpose of a matrix, as a new tensor.
    public func transposed() -> Tensor {
        precondition(rank == 2, "transposed() needs a matrix, got \(shape)")
        let rows = shape[0], columns = shape[1]
        let result = Tensor(zeros: [columns, rows])
        let source = pointer, target = result.pointer
        for r in 0..<rows {
            for c in 0..<columns { target[c * rows + r] = source[r * columns + c] }
        }
        return result
    }
}
