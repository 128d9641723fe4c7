import HTTPServer
import Testing

@Suite struct RouterTests {
    private var router: Router<String> {
        var router = Router<String>()
        router.add("GET", "/", "root")
        router.add("GET", "/transfers", "list")
        router.add("POST", "/transfers", "create")
        router.add("GET", "/transfers/:id", "show")
        router.add("PUT", "/transfers/:id", "replace")
        router.add("GET", "/transfers/new", "new-form")
        router.add("GET", "/accounts/:account/transfers/:id", "account-transfer")
        return router
    }

    @Test func literalPathFindsItsHandler() {
        guard case .found(let handler, let parameters) = router.match(method: "POST", path: "/transfers") else {
            Issue.record("expected a match")
            return
        }
        #expect(handler == "create")
        #expect(parameters.isEmpty)
    }

    @Test func parameterSegmentsAreCaptured() {
        guard case .found(let handler, let parameters) = router.match(method: "GET", path: "/accounts/a-1/transfers/42")
        else {
            Issue.record("expected a match")
            return
        }
        #expect(handler == "account-transfer")
        #expect(parameters == ["account": "a-1", "id": "42"])
    }

    @Test func literalSegmentWinsOverParameterRegardlessOfOrder() {
        guard case .found(let handler, _) = router.match(method: "GET", path: "/transfers/new") else {
            Issue.record("expected a match")
            return
        }
        #expect(handler == "new-form")
    }

    @Test func aPathALiteralPatternSpellsOutIsNeverAParameterValue() {
        // "/transfers/new" is its own resource: PUT is not "replace transfer new" but a 405 naming its methods.
        guard case .methodNotAllowed(let allowed) = router.match(method: "PUT", path: "/transfers/new") else {
            Issue.record("expected 405")
            return
        }
        #expect(allowed == ["GET"])
    }

    @Test func fallsBackToParameterWhenTheLiteralBranchDoesNotReachThePath() {
        var router = Router<String>()
        router.add("GET", "/transfers/new", "new-form")
        router.add("GET", "/transfers/:id/versions", "versions")
        guard case .found(let handler, let parameters) = router.match(method: "GET", path: "/transfers/new/versions")
        else {
            Issue.record("expected a match")
            return
        }
        #expect(handler == "versions")
        #expect(parameters == ["id": "new"])
    }

    @Test func knownPathWithOtherMethodIsMethodNotAllowedWithSortedMethods() {
        guard case .methodNotAllowed(let allowed) = router.match(method: "DELETE", path: "/transfers/7") else {
            Issue.record("expected 405")
            return
        }
        #expect(allowed == ["GET", "PUT"])
    }

    @Test func methodNotAllowedForALiteralPathListsOnlyTheLiteralRoutesMethods() {
        guard case .methodNotAllowed(let allowed) = router.match(method: "DELETE", path: "/transfers/new") else {
            Issue.record("expected 405")
            return
        }
        #expect(allowed == ["GET"])
    }

    @Test func methodsAreCaseSensitive() {
        guard case .methodNotAllowed = router.match(method: "get", path: "/transfers") else {
            Issue.record("expected 405 for a lowercase method")
            return
        }
    }

    @Test(arguments: ["/nowhere", "/transfers/1/extra", "transfers", "", "/accounts/a/transfers"])
    func unknownPathIsNotFound(path: String) {
        guard case .notFound = router.match(method: "GET", path: path) else {
            Issue.record("expected 404 for \(path)")
            return
        }
    }

    @Test func rootMatchesOnlySlash() {
        guard case .found(let handler, _) = router.match(method: "GET", path: "/") else {
            Issue.record("expected root")
            return
        }
        #expect(handler == "root")
    }

    @Test func trailingSlashIsADifferentPath() {
        // "/transfers/" has an empty last segment: no literal matches it and a parameter needs a non-empty one.
        guard case .notFound = router.match(method: "GET", path: "/transfers/") else {
            Issue.record("trailing slash must not match")
            return
        }
    }

    @Test func emptySegmentsAreNotCollapsed() {
        guard case .notFound = router.match(method: "GET", path: "//transfers") else {
            Issue.record("empty segment must not match")
            return
        }
        guard case .notFound = router.match(method: "GET", path: "/accounts//transfers/1") else {
            Issue.record("a parameter must not capture an empty segment")
            return
        }
    }

    @Test func patternWithTrailingSlashMatchesOnlyTrailingSlash() {
        var router = Router<Int>()
        router.add("GET", "/dir/", 1)
        guard case .found(1, _) = router.match(method: "GET", path: "/dir/") else {
            Issue.record("expected the slash pattern to match")
            return
        }
        guard case .notFound = router.match(method: "GET", path: "/dir") else {
            Issue.record("expected no match without the slash")
            return
        }
    }

    @Test func addingTheSameRouteAgainReplacesIt() {
        var router = Router<Int>()
        router.add("GET", "/x/:a", 1)
        router.add("GET", "/x/:b", 2)
        guard case .found(let handler, let parameters) = router.match(method: "GET", path: "/x/v") else {
            Issue.record("expected a match")
            return
        }
        #expect(handler == 2)
        #expect(parameters == ["b": "v"])
    }
}

@Suite struct HTTPHeadersTests {
    @Test func lookupIgnoresCase() {
        let headers: HTTPHeaders = ["Content-Type": "application/json"]
        #expect(headers["content-type"] == "application/json")
        #expect(headers["CONTENT-TYPE"] == "application/json")
        #expect(headers["Content-Length"] == nil)
    }

    @Test func addKeepsRepeatsInOrderAndReplaceOrAddCollapsesThem() {
        var headers = HTTPHeaders()
        headers.add(name: "Set-Cookie", value: "a=1")
        headers.add(name: "X-Other", value: "o")
        headers.add(name: "set-cookie", value: "b=2")
        #expect(headers.values(forName: "SET-COOKIE") == ["a=1", "b=2"])
        #expect(headers["set-cookie"] == "a=1")

        headers.replaceOrAdd(name: "Set-Cookie", value: "c=3")
        #expect(headers.values(forName: "set-cookie") == ["c=3"])
        #expect(headers.map(\.name) == ["Set-Cookie", "X-Other"])

        headers.replaceOrAdd(name: "X-New", value: "n")
        #expect(headers.count == 3)
        #expect(headers["x-new"] == "n")
    }

    @Test func namesOfDifferentLengthDoNotMatch() {
        let headers: HTTPHeaders = ["X-A": "1"]
        #expect(headers["X-AB"] == nil)
        #expect(headers["X-"] == nil)
    }
}
