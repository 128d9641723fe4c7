/// Optional bearer-token authentication: with no tokens configured every request passes.
public struct Authenticator: Sendable {
    private let tokens: [[UInt8]]

    /// Accepts any of `tokens`; an empty list turns authentication off.
    public init(tokens: [String]) {
        self.tokens = tokens.map { Array($0.utf8) }
    }

    /// Whether requests must carry a token.
    public var isEnabled: Bool { !tokens.isEmpty }

    /// Throws `unauthorized` unless `authorization` is `Bearer <one of the tokens>`.
    func authenticate(authorization: String?) throws(APIError) {
        guard isEnabled else { return }
        guard let authorization, authorization.utf8.count > 7,
              authorization.prefix(7).lowercased() == "bearer "
        else { throw .unauthorized }
        let presented = Array(authorization.utf8.dropFirst(7))
        // Every token is compared, each in constant time, so the answer's timing says nothing about the tokens.
        var matched = false
        for token in tokens where Self.constantTimeEquals(token, presented) {
            matched = true
        }
        guard matched else { throw .unauthorized }
    }

    /// Compares without stopping at the first difference.
    static func constantTimeEquals(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: lhs.count ^ rhs.count)
        for index in 0..<max(lhs.count, rhs.count) {
            let left = index < lhs.count ? lhs[index] : 0
            let right = index < rhs.count ? rhs[index] : 0
            difference |= left ^ right
        }
        return difference == 0 && lhs.count == rhs.count
    }
}
