// IN/OUT = a linear layer's input/output features, C = channels, N = rows of a RowLayout.

/// Where a backward pass sends the gradients of the trainable tensors: straight into the
/// gradient store (`DirectGradients`, non-private training), or to book-keeping (`BookKeeper`,
/// DP: per-example norms at once, each group's clipped sum when its last member arrives).
///
/// Layers hand over every trainable tensor's gradient in one of the forms below — they never
/// ask which sink they talk to. `tensor` is the index in the model's gradient store; `rows` says
/// which rows belong to which example.
///
/// Every contribution happens inside `module { … }`. Book-keeping may keep pointers into a
/// module's scratch (its output gradients) until the outermost module scope closes, and copies
/// what it still needs then; so securing books cannot be forgotten, and a contribution outside
/// a module scope traps instead of silently reading overwritten scratch later.
protocol GradientSink: AnyObject {
    /// Starts the backward pass of a forward over `rows` (the model's padded [B, T] rows) with
    /// token ids `ids` [B·T].
    func beginBackward(rows: RowLayout, ids: UnsafePointer<Int32>)
    func openModule()
    /// Closes a module scope; when it was the outermost, the module's scratch may be reused next.
    func closeModule()

    /// A weight-like gradient `scale · Σ_n e_nᵀ a_n` over the rows of `e` [N, OUT] and `a`
    /// [N, IN] (a linear weight, a LoRA A or B, the head). `eIsStable`: `e` stays valid until
    /// the end of the backward pass. `isTiedHead`: the head whose weight is the token embedding.
    func outerProduct(tensor: Int, e: UnsafePointer<Float>, eStride: Int, a: UnsafePointer<Float>, aStride: Int,
                      inFeatures: Int, outFeatures: Int, scale: Float, rows: RowLayout,
                      eIsStable: Bool, isTiedHead: Bool)
    /// A bias-like gradient `Σ_n e_n` (a linear bias, a LayerNorm bias).
    func rowSum(tensor: Int, e: UnsafePointer<Float>, eStride: Int, width: Int, rows: RowLayout)
    /// A norm weight: `Σ_n dout_n ⊙ x̂_n` with x̂ = (inp − mean)·rstd (LayerNorm, `mean` given)
    /// or inp·rstd (RMSNorm).
    func normWeight(tensor: Int, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, mean: UnsafePointer<Float>?,
                    rstd: UnsafePointer<Float>, width: Int, rows: RowLayout)
    /// The token embedding: row `ids[n]` receives e_n (the backward's rows and ids).
    func tokenEmbedding(tensor: Int, e: UnsafePointer<Float>, width: Int)
    /// Learned positions: row t receives e_n of every example's position t.
    func positionEmbedding(tensor: Int, e: UnsafePointer<Float>, width: Int)
    /// The blocks' shared activation buffers are about to be overwritten (a model that
    /// recomputes its activations, between two blocks' backward passes, outside any module
    /// scope): inputs `a` of earlier contributions that the sink still needs must be copied now.
    func sharedActivationsWillChange()
    /// The same for one buffer all blocks share (a norm's output, attention's output or the
    /// gated MLP's product, remade from the block's own activations in its backward pass):
    /// only inputs `a` that point into `buffer`.
    func sharedBufferWillChange(_ buffer: UnsafeBufferPointer<Float>)
}

extension GradientSink {
    /// Runs one module's backward (its contributions and the scratch they point into) as a
    /// scope: when the outermost scope closes, the sink secures what it keeps.
    func module(_ body: () -> Void) {
        openModule()
        body()
        closeModule()
    }
}

/// The nesting of module scopes, shared by the sinks: contributions are only legal inside one.
struct ModuleScopes {
    private(set) var depth = 0

    mutating func open() { depth += 1 }

    /// True when the outermost scope closed.
    mutating func close() -> Bool {
        precondition(depth > 0, "closeModule() without openModule()")
        depth -= 1
        return depth == 0
    }

    func checkOpen(_ tensor: Int) {
        precondition(depth > 0, "tensor \(tensor) contributed outside a module scope: "
                     + "wrap the layer's backward in `sink.module { … }`")
    }
}

/// Non-private training: every contribution is added to its tensor's gradient at once (the
/// sum over all examples, what `backward()` accumulates into `model.gradients`).
final class DirectGradients: GradientSink {
    /// Gradient buffer of each trainable tensor (by index into the model's gradient store).
    private let targets: [UnsafeMutablePointer<Float>]
    private var rows = RowLayout(paddedLengths: [], sequenceLength: 0)
    private var ids: UnsafePointer<Int32>?
    private var scopes = ModuleScopes()

    init(targets: [UnsafeMutablePointer<Float>]) { self.targets = targets }

    func beginBackward(rows: RowLayout, ids: UnsafePointer<Int32>) {
        precondition(scopes.depth == 0, "a previous backward pass left a module scope open")
        self.rows = rows
        self.ids = ids
    }

    func openModule() { scopes.open() }
    func closeModule() { _ = scopes.close() }

    func outerProduct(tensor: Int, e: UnsafePointer<Float>, eStride: Int, a: UnsafePointer<Float>, aStride: Int,
                      inFeatures: Int, outFeatures: Int, scale: Float, rows: RowLayout,
                      eIsStable: Bool, isTiedHead: Bool) {
        scopes.checkOpen(tensor)
        guard rows.rows > 0 else { return }  // an MoE expert without tokens
        // dweight += scale · eᵀ a over every row (padding rows of e are zero)
        sgemm(transposeA: true, transposeB: false, m: outFeatures, n: inFeatures, k: rows.rows, alpha: scale,
              a: e, lda: eStride, b: a, ldb: aStride, beta: 1, c: targets[tensor], ldc: inFeatures)
    }

    func rowSum(tensor: Int, e: UnsafePointer<Float>, eStride: Int, width: Int, rows: RowLayout) {
        scopes.checkOpen(tensor)
        for segment in rows.segments {
            addRows(into: targets[tensor], e: e, eStride: eStride, width: width, rows: segment.rows)
        }
    }

    func normWeight(tensor: Int, dout: UnsafePointer<Float>, inp: UnsafePointer<Float>, mean: UnsafePointer<Float>?,
                    rstd: UnsafePointer<Float>, width: Int, rows: RowLayout) {
        scopes.checkOpen(tensor)
        for segment in rows.segments {
            addNormWeightGradient(into: targets[tensor], dout: dout, inp: inp, mean: mean, rstd: rstd,
                                  rows: segment.rows, channels: width)
        }
    }

    func tokenEmbedding(tensor: Int, e: UnsafePointer<Float>, width: Int) {
        scopes.checkOpen(tensor)
        for segment in rows.segments {
            addScatteredRows(into: targets[tensor], e: e, width: width, segment: segment, ids: ids!, positional: false)
        }
    }

    func positionEmbedding(tensor: Int, e: UnsafePointer<Float>, width: Int) {
        scopes.checkOpen(tensor)
        for segment in rows.segments {
            addScatteredRows(into: targets[tensor], e: e, width: width, segment: segment, ids: ids!, positional: true)
        }
    }

    /// Nothing is kept past a contribution.
    func sharedActivationsWillChange() {}
    func sharedBufferWillChange(_ buffer: UnsafeBufferPointer<Float>) {}
}
