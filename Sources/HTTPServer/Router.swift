/// Maps (method, path) to a handler; generic over the handler type, knows nothing about responses.
///
/// Matching is exact per segment: no trailing-slash or empty-segment normalisation ("/a/" and "/a//b"
/// match only patterns spelled the same way), methods compare case-sensitively, a literal segment wins
/// over a ":name" segment at the same position, and adding the same method and pattern again replaces it.
/// A path that a literal pattern spells out whole is that resource: another method gets a 405 listing the
/// literal route's methods, never a parameter route's handler ("GET /transfers/batch" is not transfer "batch").
///
/// Matching is `@inlinable`, so the service's router is specialized for its handler type: unspecialized, every
/// match looked up generic type metadata at run time (through the runtime's locked caches), about 2% of the
/// service's CPU under POST load (`perf`).
public struct Router<Handler: Sendable>: Sendable {
    @usableFromInline var root = Node()

    /// Creates an empty router.
    public init() {}

    /// Patterns are "/"-separated segments; a segment ":name" captures one non-empty segment.
    public mutating func add(_ method: String, _ pattern: String, _ handler: Handler) {
        precondition(pattern.hasPrefix("/"), "route pattern must start with \"/\": \(pattern)")
        var parameterNames: [String] = []
        let keys = Self.segments(of: pattern).map { segment -> Key in
            guard segment.hasPrefix(":") else { return .literal(String(segment)) }
            precondition(segment.count > 1, "route parameter needs a name: \(pattern)")
            parameterNames.append(String(segment.dropFirst()))
            return .parameter
        }
        root.insert(keys[...], method: method, route: Route(handler: handler, parameterNames: parameterNames))
    }

    /// The handler for `method` and `path`, or why there is none.
    @inlinable
    public func match(method: String, path: String) -> RouteMatch<Handler> {
        guard path.hasPrefix("/") else { return .notFound }
        let segments = Self.segments(of: path)
        var captured: [Substring] = []
        var allowed: Set<String> = []
        if let (route, values) = root.find(segments[...], method: method, captured: &captured, allowed: &allowed) {
            var parameters: [String: String] = [:]
            for (name, value) in zip(route.parameterNames, values) {
                parameters[name] = String(value)
            }
            return .found(route.handler, parameters: parameters)
        }
        return allowed.isEmpty ? .notFound : .methodNotAllowed(allowed: allowed.sorted())
    }

    /// The segments after the leading "/", empty ones kept ("/" is one empty segment).
    @inlinable
    static func segments(of path: String) -> [Substring] {
        path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
    }

    @usableFromInline
    enum Key: Hashable, Sendable {
        case literal(String)
        case parameter
    }

    @usableFromInline
    struct Route: Sendable {
        @usableFromInline var handler: Handler
        @usableFromInline var parameterNames: [String]

        @usableFromInline
        init(handler: Handler, parameterNames: [String]) {
            self.handler = handler
            self.parameterNames = parameterNames
        }
    }

    @usableFromInline
    struct Node: Sendable {
        @usableFromInline var children: [Key: Node] = [:]
        @usableFromInline var routes: [String: Route] = [:]

        @usableFromInline
        init() {}

        mutating func insert(_ keys: ArraySlice<Key>, method: String, route: Route) {
            guard let key = keys.first else {
                routes[method] = route
                return
            }
            children[key, default: Node()].insert(keys.dropFirst(), method: method, route: route)
        }

        /// Depth-first, literal before parameter, so "/a/new" beats "/a/:id"; a parameter is tried only when
        /// no literal pattern spells out the whole path. Collects the methods of the node the path reaches,
        /// for a 405 when it lacks `method`.
        @inlinable
        func find(
            _ segments: ArraySlice<Substring>, method: String,
            captured: inout [Substring], allowed: inout Set<String>
        ) -> (Route, [Substring])? {
            guard let segment = segments.first else {
                if let route = routes[method] { return (route, captured) }
                allowed.formUnion(routes.keys)
                return nil
            }
            let rest = segments.dropFirst()
            if let literal = children[.literal(String(segment))] {
                var literalAllowed: Set<String> = []
                if let found = literal.find(rest, method: method, captured: &captured, allowed: &literalAllowed) {
                    return found
                }
                if !literalAllowed.isEmpty {
                    allowed.formUnion(literalAllowed)
                    return nil
                }
            }
            if !segment.isEmpty, let parameter = children[.parameter] {
                captured.append(segment)
                if let found = parameter.find(rest, method: method, captured: &captured, allowed: &allowed) {
                    return found
                }
                captured.removeLast()
            }
            return nil
        }
    }
}

/// The outcome of `Router.match`.
public enum RouteMatch<Handler: Sendable>: Sendable {
    /// A route matched; `parameters` maps each ":name" to its segment (not further decoded).
    case found(Handler, parameters: [String: String])
    /// The path exists with other methods (sorted, for an Allow header).
    case methodNotAllowed(allowed: [String])
    /// No route has this path.
    case notFound
}
