import Synchronization

/// An object that many threads read without waiting on a lock and that is replaced now and then: the slot map,
/// read on every submission by every HTTP worker.
///
/// Readers count themselves in and out around `read`; a replaced object is released only once the count was seen
/// at zero after the replacement, so no reader can still hold it. (A `Mutex` around the reference cost about 15%
/// of `GET /transfers/<id>` throughput in cluster mode on 2 cores: a preempted holder stalls every worker. Keeping
/// every replaced map instead, as before, kept 32 KiB per topology change for good: up to ten a second during a
/// slot migration.)
final class ReplaceableReference<Object: AnyObject & Sendable>: @unchecked Sendable {
    // @unchecked: `current` and `replaced` hold +1 references managed by hand under the rules above.
    private let current = Atomic<Unmanaged<Object>?>(nil)
    private let readers = Atomic<Int>(0)
    /// Replaced objects not yet released; the lock also orders replacements before the check that frees them.
    private let replaced = Mutex<[Unmanaged<Object>]>([])
    private let hasReplaced = Atomic<Bool>(false)

    init() {}

    deinit {
        current.load(ordering: .sequentiallyConsistent)?.release()
        replaced.withLock { replaced in for object in replaced { object.release() } }
    }

    /// Runs `body` with the current object (nil before the first `replace`). `body` must not keep the object.
    func read<Result>(_ body: (Object?) -> Result) -> Result {
        readers.add(1, ordering: .sequentiallyConsistent)
        let result = body(current.load(ordering: .sequentiallyConsistent)?.takeUnretainedValue())
        let remaining = readers.subtract(1, ordering: .sequentiallyConsistent).newValue
        if remaining == 0, hasReplaced.load(ordering: .relaxed) { releaseReplacedIfNoReader() }
        return result
    }

    /// Makes `object` the current one, unless `isSame(current, object)`.
    func replace(with object: Object, unless isSame: (Object, Object) -> Bool) {
        replaced.withLock { replaced in
            if let existing = current.load(ordering: .sequentiallyConsistent)?.takeUnretainedValue(), isSame(existing, object) {
                return
            }
            if let previous = current.exchange(Unmanaged.passRetained(object), ordering: .sequentiallyConsistent) {
                replaced.append(previous)
                hasReplaced.store(true, ordering: .relaxed)
            }
        }
        releaseReplacedIfNoReader()
    }

    /// Releases the replaced objects when no reader is inside `read`: every one of them was replaced before this
    /// check (under the same lock), so a reader that starts later loads a newer object.
    private func releaseReplacedIfNoReader() {
        replaced.withLock { replaced in
            guard !replaced.isEmpty, readers.load(ordering: .sequentiallyConsistent) == 0 else { return }
            for object in replaced { object.release() }
            replaced.removeAll()
            hasReplaced.store(false, ordering: .relaxed)
        }
    }

    /// How many replaced objects wait to be released (for tests).
    var replacedCount: Int { replaced.withLock { $0.count } }
}
