import CHiredis

/// Reusable scratch memory that lays out command arguments as the `argv`/`argvlen` arrays hiredis wants.
///
/// Owned by one connection and reused for every command, so encoding a command allocates nothing once the
/// buffers have grown to fit the largest command seen.
struct ArgumentBuffer: ~Copyable {
    private var bytes: UnsafeMutablePointer<CChar>
    private var byteCapacity: Int
    private var pointers: UnsafeMutablePointer<UnsafePointer<CChar>?>
    private var lengths: UnsafeMutablePointer<Int>
    private var argumentCapacity: Int

    init() {
        byteCapacity = 1024
        argumentCapacity = 16
        bytes = .allocate(capacity: byteCapacity)
        pointers = .allocate(capacity: argumentCapacity)
        lengths = .allocate(capacity: argumentCapacity)
    }

    deinit {
        bytes.deallocate()
        pointers.deallocate()
        lengths.deallocate()
    }

    /// Copies `arguments` into the buffers and calls `body` with argc, argv and argvlen, valid only inside `body`.
    mutating func withArgv<Result>(
        _ arguments: [String],
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> Result
    ) -> Result {
        var totalBytes = 0
        for argument in arguments { totalBytes += argument.utf8.count }
        reserve(bytes: totalBytes, arguments: arguments.count)

        var offset = 0
        for (index, argument) in arguments.enumerated() {
            let start = bytes + offset
            let length = Self.copyUTF8(of: argument, to: start)
            pointers[index] = UnsafePointer(start)
            lengths[index] = length
            offset += length
        }
        return body(Int32(arguments.count), pointers, lengths)
    }

    /// Grows the buffers (discarding their contents) so they hold at least the given sizes.
    private mutating func reserve(bytes neededBytes: Int, arguments neededArguments: Int) {
        if neededBytes > byteCapacity {
            bytes.deallocate()
            byteCapacity = Swift.max(neededBytes, byteCapacity * 2)
            bytes = .allocate(capacity: byteCapacity)
        }
        if neededArguments > argumentCapacity {
            pointers.deallocate()
            lengths.deallocate()
            argumentCapacity = Swift.max(neededArguments, argumentCapacity * 2)
            pointers = .allocate(capacity: argumentCapacity)
            lengths = .allocate(capacity: argumentCapacity)
        }
    }

    /// Copies the UTF-8 bytes of `string` to `destination` and returns how many were written.
    private static func copyUTF8(of string: String, to destination: UnsafeMutablePointer<CChar>) -> Int {
        // Native Swift strings (including small ones) are contiguous, so this is a single memcpy.
        let copied = string.utf8.withContiguousStorageIfAvailable { source -> Int in
            guard let base = source.baseAddress else { return 0 }
            UnsafeMutableRawPointer(destination).copyMemory(from: base, byteCount: source.count)
            return source.count
        }
        if let copied { return copied }
        var count = 0
        for byte in string.utf8 {
            destination[count] = CChar(bitPattern: byte)
            count += 1
        }
        return count
    }
}
