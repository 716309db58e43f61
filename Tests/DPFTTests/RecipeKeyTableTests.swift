import Foundation
import Testing
@testable import DPFT

/// The recipe key table (Recipe/RecipeKeys.swift) is the one place a key is written: the schema,
/// the reader, the resolved-recipe writer and the reference all come from it.
@Suite struct RecipeKeyTableTests {
    @Test func everyKeyIsOneRowWithHelpAfterItsSection() {
        let paths = RecipeKeys.all.map(\.path)
        #expect(Set(paths).count == paths.count)
        #expect(Recipe.knownKeys == paths.sorted())
        for (index, key) in RecipeKeys.all.enumerated() {
            #expect(!key.help.isEmpty, "\(key.path)")
            if !key.parent.isEmpty {
                let parent = paths.firstIndex(of: key.parent)
                #expect(parent.map { $0 < index } == true, "\(key.path) comes after its section")
            }
        }
    }

    @Test func theReferenceShowsWhatEachKeyTakesAndItsDefault() {
        let lines = Recipe.keyReference.split(separator: "\n").map(String.init)
        #expect(lines.count == RecipeKeys.all.count)
        #expect(lines.contains("training.optimizer.learning_rate: a number > 0; default 0.001 — the peak learning rate"))
        #expect(lines.contains("training.batch_size: an integer ≥ 1; required — "
                               + "the expected logical batch size; with Poisson sampling q = batch_size / N"))
        #expect(lines.contains("data.format: one of \"auto\", \"alpaca\", \"chat\", \"text\", \"tokens\"; default \"auto\" — "
                               + "the shape of a data file's lines"))
    }

    /// Every leaf the full test recipe sets is written back by the resolved form (the rows
    /// whose variant it does not choose excepted).
    @Test func theResolvedFormWritesEveryRowThatApplies() throws {
        let recipe = try RecipeTests.parse(RecipeTests.full)
        let resolved = try JSONParser.parse(recipe.resolvedJSON, source: "resolved")
        let notChosen: Set = ["privacy.target_epsilon", "training.epochs", "adapter.trainable", "training.optimizer.beta1",
                              "training.optimizer.beta2", "training.optimizer.epsilon", "privacy.rules"]
        for key in RecipeKeys.all where !notChosen.contains(key.path) {
            var value: JSONValue? = resolved
            for part in key.path.split(separator: ".") {
                guard case .object(let object)? = value else { value = nil; break }
                value = object[String(part)]
            }
            #expect(value != nil, "\(key.path) is missing from the resolved recipe")
        }
    }
}
