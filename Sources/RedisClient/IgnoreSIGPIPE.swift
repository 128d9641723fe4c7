#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Makes writes to a socket the server has closed fail with EPIPE instead of killing the process.
///
/// hiredis writes with plain write(2), so without this a Redis restart can terminate the whole process with
/// SIGPIPE. Evaluated once (Swift globals initialise lazily and thread-safely); a handler the application
/// installed itself is left in place.
let sigpipeIsIgnored: Void = {
    let previous = signal(SIGPIPE, SIG_IGN)
    // SIG_DFL imports as nil; anything else was chosen by the application, so put it back.
    if let previous {
        _ = signal(SIGPIPE, previous)
    }
}()
