import Foundation

/// A byte-level BPE tokenizer read from a Hugging Face `tokenizer.json` (GPT-2, Qwen2,
/// Llama 3, SmolLM …), encoding exactly as the `tokenizers` package does with
/// `add_special_tokens=False`:
///
/// 1. added tokens (`added_tokens`) are cut out of the raw text, longest first at the leftmost
///    position, and never split; those marked `normalized` are cut after normalization;
/// 2. the rest is normalized (NFC, or not at all) and split by the pre-tokenizer's regex;
/// 3. each piece's UTF-8 bytes become byte-level symbols, merged pair by pair in rank order
///    (the lowest rank first, leftmost on ties), or looked up whole with `ignore_merges`.
///
/// Merged pieces are cached (by their bytes: Swift `String` equality is canonical
/// equivalence, which would make `é` and `e` + U+0301 one key).
final class BPETokenizer: @unchecked Sendable {
    // V = vocabulary size (largest id + 1)
    let vocabularySize: Int
    let addedTokens: [AddedToken]
    let templateFirstToken: String?
    private let bytesOfId: [[UInt8]?]              // (V) what each id decodes to
    private let tokenOfId: [String?]               // (V) each id's token as the file spells it
    private let symbolOfByte: [Int32]              // (256) id of each byte's stand-in, -1 if none
    private let merges: [UInt64: UInt64]           // (left << 32 | right) → (rank << 32 | merged)
    private let wholeWords: [[UInt8]: Int32]?      // word bytes → id, with ignore_merges
    private let unknownId: Int32?
    private let normalizesNFC: Bool
    private let splitPattern: SplitPattern
    private let addsPrefixSpace: Bool
    private let rawAddedTokens: AddedTokenMatcher
    private let normalizedAddedTokens: AddedTokenMatcher

    private let cacheLock = NSLock()
    private var cache: [[UInt8]: [Int32]] = [:]
    private static let cacheCapacity = 50_000

    /// Reads a `tokenizer.json`'s bytes; `source` names them in errors.
    init(json bytes: [UInt8], source: String) throws {
        let file = try TokenizerJSON(bytes: bytes, source: source)
        let largestId = max(file.vocabulary.values.max() ?? -1, file.addedTokens.map(\.id).max() ?? -1)
        var bytesOfId = [[UInt8]?](repeating: nil, count: largestId + 1)
        var tokenOfId = [String?](repeating: nil, count: largestId + 1)
        var wholeWords: [[UInt8]: Int32] = [:]
        for (token, id) in file.vocabulary {
            bytesOfId[id] = ByteLevel.bytes(ofToken: token)
            tokenOfId[id] = token
            if ByteLevel.isInAlphabet(token) { wholeWords[bytesOfId[id]!] = Int32(id) }
        }
        for token in file.addedTokens {
            bytesOfId[token.id] = Array(token.content.utf8)
            tokenOfId[token.id] = token.content
        }
        var merges: [UInt64: UInt64] = [:]
        merges.reserveCapacity(file.merges.count)
        for (rank, merge) in file.merges.enumerated() {
            let left = UInt64(file.vocabulary[merge.left]!), right = UInt64(file.vocabulary[merge.right]!)
            let merged = UInt64(file.vocabulary[merge.left + merge.right]!)
            // A repeated pair keeps its first (lowest) rank, as tokenizers' map does.
            if merges[left << 32 | right] == nil { merges[left << 32 | right] = UInt64(rank) << 32 | merged }
        }
        self.vocabularySize = largestId + 1
        self.addedTokens = file.addedTokens
        self.templateFirstToken = file.templateFirstToken
        self.bytesOfId = bytesOfId
        self.tokenOfId = tokenOfId
        self.symbolOfByte = ByteLevel.scalarOfByte.map { scalar in
            file.vocabulary[String(scalar)].map(Int32.init) ?? -1
        }
        self.merges = merges
        self.wholeWords = file.ignoreMerges ? wholeWords : nil
        self.unknownId = file.unknownToken.map { Int32(file.vocabulary[$0]!) }
        self.normalizesNFC = file.normalizesNFC
        self.splitPattern = file.splitPattern
        self.addsPrefixSpace = file.addsPrefixSpace
        self.rawAddedTokens = AddedTokenMatcher(file.addedTokens.filter { !$0.normalized })
        self.normalizedAddedTokens = AddedTokenMatcher(file.addedTokens.filter(\.normalized))
    }

    /// The id of an added token's content, or of a vocabulary entry spelled in bytes.
    func id(ofToken content: String) -> Int? {
        if let token = addedTokens.first(where: { $0.content == content }) { return token.id }
        let bytes = Array(content.utf8)
        return bytesOfId.firstIndex { $0 == bytes }
    }

    /// The ids of `text`, without any post-processor's BOS/EOS.
    func encode(_ text: String) -> [Int] {
        var ids: [Int32] = []
        var pieces: [Range<Int>] = []
        rawAddedTokens.split(Array(text.utf8)) { segment in
            switch segment {
            case .added(let id):
                ids.append(Int32(id))
            case .text(let raw):
                normalizedAddedTokens.split(normalized(raw)) { inner in
                    switch inner {
                    case .added(let id): ids.append(Int32(id))
                    case .text(let bytes): encodeText(bytes, into: &ids, pieces: &pieces)
                    }
                }
            }
        }
        return ids.map(Int.init)
    }

    /// The bytes of `ids` as UTF-8 text (invalid sequences, e.g. half a character, become
    /// U+FFFD); special tokens are kept. Nil when an id is outside the vocabulary.
    func decode(_ ids: [Int]) -> String? {
        var bytes: [UInt8] = []
        for id in ids {
            guard id >= 0, id < bytesOfId.count, let token = bytesOfId[id] else { return nil }
            bytes.append(contentsOf: token)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The token of `id` as the file spells it (byte-level stand-ins), or nil when unused.
    func piece(for id: Int) -> String? {
        id >= 0 && id < tokenOfId.count ? tokenOfId[id] : nil
    }

    private func normalized(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        // Text below U+0300 (no UTF-8 byte ≥ 0xCC) is already NFC: every such scalar is
        // NFC_Quick_Check=Yes and none combines with another.
        guard normalizesNFC, bytes.contains(where: { $0 >= 0xCC }) else { return Array(bytes) }
        let text = String(decoding: bytes, as: UTF8.self)
        return Array(text.precomposedStringWithCanonicalMapping.utf8)
    }

    /// Pre-tokenizes text that holds no added token and appends its pieces' ids.
    private func encodeText(_ slice: ArraySlice<UInt8>, into ids: inout [Int32], pieces: inout [Range<Int>]) {
        var bytes = Array(slice)
        if bytes.isEmpty { return }
        if addsPrefixSpace && bytes[0] != 0x20 { bytes.insert(0x20, at: 0) }
        pieces.removeAll(keepingCapacity: true)
        bytes.withUnsafeBufferPointer { buffer in
            splitPattern.split(ScalarText(buffer), into: &pieces)
            for piece in pieces { encodeWord(UnsafeBufferPointer(rebasing: buffer[piece]), into: &ids) }
        }
    }

    private func encodeWord(_ word: UnsafeBufferPointer<UInt8>, into ids: inout [Int32]) {
        let key = Array(word)
        cacheLock.lock()
        let cached = cache[key]
        cacheLock.unlock()
        if let cached { ids.append(contentsOf: cached); return }
        let merged: [Int32]
        if let whole = wholeWords?[key] {
            merged = [whole]
        } else {
            merged = mergedSymbols(of: word)
        }
        ids.append(contentsOf: merged)
        cacheLock.lock()
        if cache.count < Self.cacheCapacity { cache[key] = merged }
        cacheLock.unlock()
    }

    /// BPE on one word: start from one symbol per byte, then merge the adjacent pair of lowest
    /// rank (leftmost on ties) until no pair has a rank. `ranks[k]` is the rank of the pair
    /// (symbols[k], symbols[k + 1]), or `.max` when the merges lack it.
    func mergedSymbols(of word: UnsafeBufferPointer<UInt8>) -> [Int32] {
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.count)
        for byte in word {
            let symbol = symbolOfByte[Int(byte)]
            if symbol >= 0 {
                symbols.append(symbol)
            } else if let unknownId {
                symbols.append(unknownId)
            }
        }
        if symbols.count < 2 { return symbols }
        var ranks = (0..<symbols.count - 1).map { pairRank(symbols[$0], symbols[$0 + 1]).rank }
        while true {
            var best = -1, bestRank = UInt32.max
            for k in 0..<ranks.count where ranks[k] < bestRank {
                best = k
                bestRank = ranks[k]
            }
            if best < 0 { break }
            symbols[best] = pairRank(symbols[best], symbols[best + 1]).merged
            symbols.remove(at: best + 1)
            ranks.remove(at: best)
            if best > 0 { ranks[best - 1] = pairRank(symbols[best - 1], symbols[best]).rank }
            if best < ranks.count { ranks[best] = pairRank(symbols[best], symbols[best + 1]).rank }
        }
        return symbols
    }

    @inline(__always)
    private func pairRank(_ left: Int32, _ right: Int32) -> (rank: UInt32, merged: Int32) {
        guard let entry = merges[UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))] else { return (.max, -1) }
        return (UInt32(entry >> 32), Int32(truncatingIfNeeded: entry & 0xFFFF_FFFF))
    }
}

/// Finds added tokens in UTF-8 text: at the leftmost position where any token starts, the
/// longest one (the Aho-Corasick "leftmost longest" rule `tokenizers` uses).
struct AddedTokenMatcher: Sendable {
    enum Segment {
        case text(ArraySlice<UInt8>)
        case added(id: Int)
    }

    private let tokensByFirstByte: [[(bytes: [UInt8], id: Int)]]  // (256) longest first

    init(_ tokens: [AddedToken]) {
        var byFirstByte = [[(bytes: [UInt8], id: Int)]](repeating: [], count: 256)
        for token in tokens {
            let bytes = Array(token.content.utf8)
            byFirstByte[Int(bytes[0])].append((bytes, token.id))
        }
        tokensByFirstByte = byFirstByte.map { $0.sorted { $0.bytes.count > $1.bytes.count } }
    }

    /// Calls `body` with the text between added tokens (never empty) and with each token found.
    func split(_ bytes: [UInt8], _ body: (Segment) -> Void) {
        var start = 0, position = 0
        while position < bytes.count {
            let candidates = tokensByFirstByte[Int(bytes[position])]
            if let match = candidates.first(where: { bytes[position...].starts(with: $0.bytes) }) {
                if start < position { body(.text(bytes[start..<position])) }
                body(.added(id: match.id))
                position += match.bytes.count
                start = position
            } else {
                position += 1
            }
        }
        if start < bytes.count { body(.text(bytes[start...])) }
    }
}
