import Crypto

/// Optional bearer-token authentication: with no tokens configured every request passes.
public struct Authenticator: Sendable {
    private let tokens: [[UInt8]]
    /// The scope of each token, in the same order.
    private let scopes: [ClientScope]

    /// Accepts any of `tokens`; an empty list turns authentication off.
    public init(tokens: [String]) {
        self.tokens = tokens.map { Array($0.utf8) }
        scopes = tokens.map(ClientScope.init(token:))
    }

    /// Whether requests must carry a token.
    public var isEnabled: Bool { !tokens.isEmpty }

    /// The caller's scope; throws `unauthorized` unless `authorization` is `Bearer <one of the tokens>`.
    func authenticate(authorization: String?) throws(APIError) -> ClientScope {
        guard isEnabled else { return .anonymous }
        guard let authorization, authorization.utf8.count > 7,
              authorization.prefix(7).lowercased() == "bearer "
        else { throw .unauthorized }
        let presented = Array(authorization.utf8.dropFirst(7))
        // Every token is compared, each in constant time, so the answer's timing says nothing about the tokens.
        var matched: ClientScope?
        for (token, scope) in zip(tokens, scopes) where Self.constantTimeEquals(token, presented) {
            matched = scope
        }
        guard let matched else { throw .unauthorized }
        return matched
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

/// Whose requests these are, as far as idempotency keys go: keys are scoped per API token, so two clients using the
/// same key never see each other's transfers.
struct ClientScope: Sendable, Equatable {
    /// Lowercase hex SHA-256 of the caller's token; empty without authentication. A hash, so the token itself
    /// never reaches the id derivation or storage.
    let scope: String

    /// Every caller when the API has no tokens.
    static let anonymous = ClientScope(scope: "")

    init(token: String) {
        scope = SHA256.hash(data: Array(token.utf8)).map { byte in
            let digits = Array("0123456789abcdef".utf8)
            return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]], as: UTF8.self)
        }.joined()
    }

    private init(scope: String) {
        self.scope = scope
    }
}
