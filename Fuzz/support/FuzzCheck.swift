/// Crashes the fuzz target with `message` when a property does not hold: libFuzzer then saves the input that
/// broke it. (`fatalError`, unlike `precondition`, keeps its message in `-O` builds.)
public func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    guard condition() else { fatalError("property broken: \(message())") }
}

/// The input libFuzzer hands to `LLVMFuzzerTestOneInput`, as an array (it may be empty: `start` may then be
/// anything).
public func fuzzInput(_ start: UnsafePointer<UInt8>, _ count: Int) -> [UInt8] {
    count == 0 ? [] : Array(UnsafeBufferPointer(start: start, count: count))
}
