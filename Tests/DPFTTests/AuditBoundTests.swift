import Foundation
import Testing
@testable import DPFT

/// The one-run audit bound against an independent scipy implementation of Steinke, Nasr &
/// Jagielski's procedure (tools/make_audit_fixtures.py): 14 points, among them no guesses,
/// every guess right, every guess wrong, chance, pure DP and a δ that matters.
@Suite struct AuditBoundTests {
    struct Point: Decodable {
        var m: Int, r: Int, v: Int, delta: Double, p: Double, epsilon: Double
        var pValueAtOne: Double
        enum CodingKeys: String, CodingKey { case m, r, v, delta, p, epsilon, pValueAtOne = "p_value_at_1" }
    }

    static let points: [Point] = {
        struct File: Decodable { var points: [Point] }
        let data = try! Data(contentsOf: Fixtures.url("audit/bounds.json"))
        return try! JSONDecoder().decode(File.self, from: data).points
    }()

    @Test func boundsMatchTheScipyReference() {
        #expect(Self.points.count >= 10)
        for point in Self.points {
            let name = "m=\(point.m) r=\(point.r) v=\(point.v) δ=\(point.delta) p=\(point.p)"
            let bound = OneRunBound.epsilonLowerBound(canaries: point.m, guesses: point.r, correct: point.v,
                                                      delta: point.delta, p: point.p)
            #expect(abs(bound - point.epsilon) <= 1e-7, "\(name): dpft \(bound), scipy \(point.epsilon)")
            let pValue = OneRunBound.pValue(canaries: point.m, guesses: point.r, correct: point.v, epsilon: 1, delta: point.delta)
            #expect(abs(pValue - point.pValueAtOne) <= 1e-9 * max(point.pValueAtOne, 1e-300), "\(name): p(ε=1) \(pValue) vs \(point.pValueAtOne)")
        }
    }

    /// Edge cases by reasoning alone: nothing guessed or nothing right proves nothing; more
    /// right guesses, or more of them at the same accuracy, prove more; a larger δ proves less.
    @Test func edgeCasesAndMonotonicity() {
        #expect(OneRunBound.epsilonLowerBound(canaries: 100, guesses: 0, correct: 0, delta: 1e-5) == 0)
        #expect(OneRunBound.epsilonLowerBound(canaries: 100, guesses: 50, correct: 0, delta: 1e-5) == 0)
        #expect(OneRunBound.pValue(canaries: 100, guesses: 50, correct: 0, epsilon: 3, delta: 1e-5) == 1)
        let bounds = (60...100).map { OneRunBound.epsilonLowerBound(canaries: 1000, guesses: 100, correct: $0, delta: 1e-5) }
        #expect(zip(bounds, bounds.dropFirst()).allSatisfy { $0 <= $1 } && bounds.last! > 3)
        #expect(OneRunBound.epsilonLowerBound(canaries: 1000, guesses: 200, correct: 180, delta: 1e-5)
                > OneRunBound.epsilonLowerBound(canaries: 1000, guesses: 100, correct: 90, delta: 1e-5))
        #expect(OneRunBound.epsilonLowerBound(canaries: 1000, guesses: 100, correct: 90, delta: 1e-3)
                < OneRunBound.epsilonLowerBound(canaries: 1000, guesses: 100, correct: 90, delta: 1e-5))
        // Every guess right with ε = 0 is (1/2)^r likely: 10 right guesses reject ε = 0 at 5%.
        #expect(abs(OneRunBound.pValue(canaries: 10, guesses: 10, correct: 10, epsilon: 0, delta: 0) - pow(0.5, 10)) < 1e-15)
    }
}
