/// The entity tags of an `If-Match` or `If-None-Match` header. A transfer's tag is its version in quotes: `"2"`.
struct EntityTags: Sendable, Equatable {
    /// The versions named, each exactly as its tag is written (`"2"`, not `"02"`).
    var versions: [Int] = []
    /// The header was `*`: any current state.
    var isWildcard = false

    /// Parses a comma-separated list of entity tags; tags that are not versions are ignored (they match nothing).
    /// Weak tags (`W/"2"`) count only with `weakTagsMatch`: `If-None-Match` compares weakly, `If-Match` strongly
    /// (RFC 9110 13.1.1), so a weak tag never satisfies a cancel's precondition.
    init(_ header: String, weakTagsMatch: Bool) {
        for part in header.split(separator: ",") {
            var tag = part.trimmingWhitespace()
            if tag == "*" {
                isWildcard = true
                continue
            }
            if tag.hasPrefix("W/") {
                guard weakTagsMatch else { continue }
                tag = tag.dropFirst(2)
            }
            // Tags compare as opaque strings: only the exact text this service writes names a version.
            guard tag.count >= 3, tag.first == "\"", tag.last == "\"", let version = Int(tag.dropFirst().dropLast()),
                  Self.tag(for: version) == tag
            else { continue }
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
