/// The entity tags of an `If-Match` or `If-None-Match` header. A transfer's tag is its version in quotes: `"2"`.
struct EntityTags: Sendable, Equatable {
    /// The versions named (weak tags `W/"2"` count too: a version names one exact state).
    var versions: [Int] = []
    /// The header was `*`: any current state.
    var isWildcard = false

    /// Parses a comma-separated list of entity tags; tags that are not versions are ignored (they match nothing).
    init(_ header: String) {
        for part in header.split(separator: ",") {
            var tag = part.trimmingWhitespace()
            if tag == "*" {
                isWildcard = true
                continue
            }
            if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
            guard tag.count >= 3, tag.first == "\"", tag.last == "\"", let version = Int(tag.dropFirst().dropLast()) else { continue }
            versions.append(version)
        }
    }

    /// True when the header names `version` (or is `*`).
    func matches(version: Int) -> Bool {
        isWildcard || versions.contains(version)
    }

    /// The entity tag of a transfer at `version`.
    static func tag(for version: Int) -> String {
        "\"\(version)\""
    }
}
