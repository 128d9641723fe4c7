import Foundation
import Synchronization

/// Runs `body` once for each of `0..<count`, on `threads` threads; the first error is rethrown.
public func concurrently(_ count: Int, threads: Int = 8, _ body: @escaping @Sendable (Int) throws -> Void) throws {
    let next = Atomic<Int>(0)
    let failure = Mutex<(any Error)?>(nil)
    let group = DispatchGroup()
    for _ in 0..<threads {
        group.enter()
        Thread.detachNewThread {
            defer { group.leave() }
            while true {
                let index = next.add(1, ordering: .relaxed).oldValue
                guard index < count else { return }
                do { try body(index) } catch { failure.withLock { $0 = $0 ?? error } }
            }
        }
    }
    group.wait()
    if let error = failure.withLock({ $0 }) { throw error }
}
