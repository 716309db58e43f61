/// GPT-2's byte-level alphabet: every byte has a printable Unicode stand-in, so that a
/// vocabulary of strings can hold any byte sequence (`bytes_to_unicode` in GPT-2's
/// encoder.py, `ByteLevel` in Hugging Face `tokenizers`).
///
/// The printable bytes `!`…`~`, `¡`…`¬` and `®`…`ÿ` stand for themselves (as the scalar of the
/// same value); the other 68 bytes (controls, space, NBSP, soft hyphen) take U+0100, U+0101, …
/// in byte order, so a space is `Ġ` (U+0120) and a newline `Ċ` (U+010A).
enum ByteLevel {
    /// The stand-in scalar of each byte: `scalarOfByte[0x20]` is U+0120 `Ġ`.
    static let scalarOfByte: [Unicode.Scalar] = {
        var scalars = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            let printable = (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte)
                || (0xAE...0xFF).contains(byte)
            if printable {
                scalars[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                scalars[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return scalars
    }()

    /// The byte a stand-in scalar stands for, or nil for scalars outside the alphabet.
    static func byte(of scalar: Unicode.Scalar) -> UInt8? {
        byteOfScalar[scalar.value]
    }

    private static let byteOfScalar: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (byte, scalar) in scalarOfByte.enumerated() { map[scalar.value] = UInt8(byte) }
        return map
    }()

    /// The bytes a vocabulary entry stands for, as the `ByteLevel` decoder reads it: stand-ins
    /// become their bytes, any other scalar is kept as its own UTF-8.
    static func bytes(ofToken token: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(token.utf8.count)
        for scalar in token.unicodeScalars {
            if let byte = byte(of: scalar) {
                bytes.append(byte)
            } else {
                bytes.append(contentsOf: String(scalar).utf8)
            }
        }
        return bytes
    }

    /// Whether every scalar of `token` is a stand-in, i.e. the token is reachable by byte-level
    /// encoding of some byte sequence.
    static func isInAlphabet(_ token: String) -> Bool {
        token.unicodeScalars.allSatisfy { byte(of: $0) != nil }
    }
}
