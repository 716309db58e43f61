import Foundation

/// Times `NoiseSource.addGaussian` as a private step calls it: once per step, on every
/// trainable coordinate, from a secure source.
public enum NoiseBenchmark {
    public struct Result: Sendable {
        /// Wall seconds per call.
        public var seconds: [Double]
        /// CPU time of all threads per draw: steadier than wall time on a shared machine.
        public var cpuNanosecondsPerDraw: Double
        public var medianSeconds: Double { seconds.sorted()[seconds.count / 2] }
    }

    /// One untimed call, then `repeats` (≥ 1) timed calls on `coordinates` (≥ 1) zeros with σ = 1.
    public static func run(coordinates: Int, repeats: Int) -> Result {
        precondition(coordinates > 0 && repeats > 0, "the caller validates the sizes")
        var values = [Float](repeating: 0, count: coordinates)
        var source = NoiseSource.secure()
        var seconds: [Double] = [], cpuSeconds = 0.0
        for call in 0...repeats {
            let start = DispatchTime.now().uptimeNanoseconds, cpuStart = clock()
            values.withUnsafeMutableBufferPointer { source.addGaussian(to: $0, standardDeviation: 1) }
            guard call > 0 else { continue }
            seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            cpuSeconds += Double(clock() - cpuStart) / Double(CLOCKS_PER_SEC)
        }
        return Result(seconds: seconds, cpuNanosecondsPerDraw: cpuSeconds / Double(repeats * coordinates) * 1e9)
    }
}
