@testable import RedisClient
import Testing

@Suite struct ReplaceableReferenceTests {
    final class Box: Sendable {
        let value: Int
        init(_ value: Int) { self.value = value }
    }

    @Test func aReplacedObjectLivesWhileAReaderHoldsItAndIsFreedWhenTheReaderLeaves() {
        let reference = ReplaceableReference<Box>()
        weak var first: Box?
        do {
            let box = Box(1)
            first = box
            reference.replace(with: box) { $0.value == $1.value }
        }
        #expect(reference.read { $0?.value } == 1)
        reference.read { reading in
            reference.replace(with: Box(2)) { $0.value == $1.value }
            // The reader still routes with the first object: it must stay.
            #expect(reference.replacedCount == 1)
            #expect(first != nil)
            #expect(reading?.value == 1)
        }
        #expect(reference.replacedCount == 0)
        #expect(first == nil, "the replaced object must be freed once its last reader left")
        #expect(reference.read { $0?.value } == 2)
    }

    @Test func withoutReadersAReplacedObjectIsFreedAtOnceAndAnEqualOneIsNotPublished() {
        let reference = ReplaceableReference<Box>()
        #expect(reference.read { $0 } == nil)
        weak var first: Box?
        do {
            let box = Box(1)
            first = box
            reference.replace(with: box) { $0.value == $1.value }
        }
        reference.replace(with: Box(1)) { $0.value == $1.value }
        #expect(first != nil, "an equal object must not replace the current one")
        reference.replace(with: Box(3)) { $0.value == $1.value }
        #expect(first == nil)
        #expect(reference.replacedCount == 0)
    }

    @Test func concurrentReadersNeverSeeAFreedObject() async {
        let reference = ReplaceableReference<Box>()
        reference.replace(with: Box(0)) { $0.value == $1.value }
        let reads = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    var valid = 0
                    for _ in 0..<20_000 {
                        // A freed object's value would crash or be garbage (the values replaced are 0...2,000).
                        if let value = reference.read({ $0?.value }), (0...2_000).contains(value) { valid += 1 }
                    }
                    return valid
                }
            }
            group.addTask {
                for value in 1...2_000 { reference.replace(with: Box(value)) { $0.value == $1.value } }
                return 0
            }
            return await group.reduce(0, +)
        }
        #expect(reads == 80_000)
        #expect(reference.read { $0?.value } == 2_000)
        // The last reader out, or the last replacement, freed everything replaced.
        #expect(reference.replacedCount == 0)
    }
}
