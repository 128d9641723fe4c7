import ExactJSON
import Testing

/// Inputs shaped to exhaust the parser: many members, huge names, deep nesting. Each must be answered in time
/// linear in its size (the suite's run time shows it) with the right value or error.
@Suite struct HostileInputTests {
    /// `{"k0":0,"k1":0,...}`: 90,000 members in 978 KB, just under the service's 1 MiB body limit.
    static func manyMembers(_ count: Int, suffix: String = "") -> [UInt8] {
        var text = "{"
        for index in 0..<count {
            if index > 0 { text += "," }
            text += "\"k\(index)\":0"
        }
        return Array((text + suffix + "}").utf8)
    }

    @Test func ninetyThousandMembersParseInOrder() throws {
        let body = Self.manyMembers(90_000)
        #expect(body.count < 1 << 20)
        guard case .object(let object) = try JSONValue.parse(body) else {
            Issue.record("not an object")
            return
        }
        #expect(object.count == 90_000)
        #expect(object.names.first == "k0")
        #expect(object.names.last == "k89999")
        #expect(object["k45000"] == .number("0"))
        #expect(object["k90000"] == nil)
    }

    @Test func aDuplicateAfterNinetyThousandMembersIsFoundAndLocated() {
        let body = Self.manyMembers(90_000, suffix: #","k7":1"#)
        let offset = body.count - #""k7":1}"#.utf8.count
        #expect(throws: JSONParseError(reason: #"duplicate member "k7""#, offset: offset)) {
            try JSONValue.parse(body)
        }
    }

    @Test func aMebibyteMemberNameParsesAndIsQuotedShortInErrors() throws {
        let name = String(repeating: "n", count: 1 << 20)
        guard case .object(let object) = try JSONValue.parse("{\"\(name)\":1}") else {
            Issue.record("not an object")
            return
        }
        #expect(object.names == [name])

        let duplicate = "{\"\(name)\":1,\"\(name)\":2}"
        #expect {
            try JSONValue.parse(duplicate)
        } throws: { error in
            guard let error = error as? JSONParseError else { return false }
            return error.reason == "duplicate member \"\(String(repeating: "n", count: 64))…\""
                && error.offset == name.utf8.count + 6
        }
    }

    @Test func aMemberNameOfExactlySixtyFourCharactersIsQuotedWhole() {
        let name = String(repeating: "é", count: 64)
        #expect(throws: JSONParseError(reason: "duplicate member \"\(name)\"", offset: 2 * 64 + 6)) {
            try JSONValue.parse("{\"\(name)\":1,\"\(name)\":2}")
        }
    }

    /// `{"a":[{"a":[...]}]}`: objects and arrays alternating, `depth` containers in all.
    static func mixedNesting(depth: Int) -> String {
        var text = ""
        for level in 0..<depth { text += level.isMultiple(of: 2) ? #"{"a":"# : "[" }
        text += "0"
        for level in (0..<depth).reversed() { text += level.isMultiple(of: 2) ? "}" : "]" }
        return text
    }

    @Test func mixedNestingIsAllowedToTheMaximumDepthAndNoDeeper() throws {
        #expect(JSONValue.maximumDepth == 64)
        let deepest = try JSONValue.parse(Self.mixedNesting(depth: JSONValue.maximumDepth))
        #expect(deepest.serialized == Self.mixedNesting(depth: JSONValue.maximumDepth))
        #expect {
            try JSONValue.parse(Self.mixedNesting(depth: JSONValue.maximumDepth + 1))
        } throws: { error in
            (error as? JSONParseError)?.reason == "nesting is too deep"
        }
    }

    @Test func hundredThousandLevelsOfMixedNestingAreRejectedWithoutCrashing() {
        // Unclosed, as an attacker would send it: the parser must stop at the limit, not recurse to the end.
        let open = String(repeating: #"{"a":["#, count: 100_000)
        #expect(throws: JSONParseError(reason: "nesting is too deep", offset: 6 * 32)) {
            try JSONValue.parse(open)
        }
    }

    @Test func aMebibyteOfEscapesDecodesAndRoundTrips() throws {
        // 2-, 3- and 4-byte UTF-8 from escapes, and control characters that must be escaped again on output.
        let unit = #"\u00e9\u20ac\ud83d\ude00\u0001\n"#
        let text = "\"" + String(repeating: unit, count: (1 << 20) / unit.utf8.count) + "\""
        let value = try JSONValue.parse(text)
        let expected = String(repeating: "é€😀\u{01}\n", count: (1 << 20) / unit.utf8.count)
        #expect(value == .string(expected))
        #expect(try JSONValue.parse(value.serialized) == value)
    }

    @Test func aMebibyteNumberKeepsItsText() throws {
        let digits = "1" + String(repeating: "0", count: 1 << 20) + ".5e-3"
        #expect(try JSONValue.parse("[\(digits)]") == .array([.number(digits)]))
    }
}
