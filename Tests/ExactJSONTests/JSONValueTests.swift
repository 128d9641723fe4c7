import ExactJSON
import Testing

@Suite struct JSONParsingTests {
    @Test func numbersKeepTheirExactText() throws {
        let value = try JSONValue.parse(#"{"a": 100.50, "b": 1e2, "c": -0.1, "d": 12345678901234567890.01}"#)
        guard case .object(let object) = value else { Issue.record("not an object"); return }
        #expect(object["a"] == .number("100.50"))
        #expect(object["b"] == .number("1e2"))
        #expect(object["c"] == .number("-0.1"))
        #expect(object["d"] == .number("12345678901234567890.01"))
    }

    @Test func stringsDecodeEscapesAndSurrogatePairs() throws {
        let value = try JSONValue.parse(#"["a\"b\\c\/\n\t", "\u00e9\ud83d\ude00", "плохо"]"#)
        #expect(value == .array([.string("a\"b\\c/\n\t"), .string("é😀"), .string("плохо")]))
    }

    @Test(arguments: [
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{a:1}", "01", "1.", ".5", "+1", "1e", "--1",
        "\"abc", "\"a\u{01}b\"", "\"\\x\"", "\"\\ud800\"", "\"\\udc00x\"", "tru", "nul", "NaN", "Infinity",
        "{} {}", "1 2", "{\"a\":1}x", "{\"a\":1,\"a\":2}",
    ])
    func malformedTextIsRejected(text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func invalidUTF8IsRejected() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse([0x22, 0xFF, 0xFE, 0x22]) }
    }

    @Test func deepNestingIsRejectedWithoutCrashing() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
        let allowed = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try JSONValue.parse(allowed) }
    }

    @Test func errorsSayWhere() {
        #expect(throws: JSONParseError(reason: "unexpected data after the JSON value", offset: 3)) {
            try JSONValue.parse("{} x")
        }
    }
}

@Suite struct JSONSerializationTests {
    @Test func serializesCompactlyInMemberOrder() {
        let object = JSONObject(["z": .number("1.50"), "a": .array([.bool(true), .null]), "s": .string("x")])
        #expect(JSONValue.object(object).serialized == #"{"z":1.50,"a":[true,null],"s":"x"}"#)
    }

    @Test func escapesWhatJSONRequires() throws {
        let text = JSONValue.string("q\"b\\n\n\u{01}é").serialized
        #expect(text == #""q\"b\\n\n\u0001é""#)
        #expect(try JSONValue.parse(text) == .string("q\"b\\n\n\u{01}é"))
    }

    @Test func roundTripsThroughParse() throws {
        let text = #"{"transfer_id":"x","amount":0.1,"nested":{"list":[1,-2.5e-3,"s"]}}"#
        #expect(try JSONValue.parse(text).serialized == text)
    }
}

@Suite struct JSONObjectTests {
    @Test func keepsMemberOrderThroughReplaceAndRemove() {
        var object = JSONObject(["b": .number("1"), "a": .number("2"), "c": .number("3")])
        object["a"] = .string("replaced")
        object["d"] = .null
        object["b"] = nil
        #expect(object.names == ["a", "c", "d"])
        #expect(object.count == 3)
        #expect(object.members.map(\.value) == [.string("replaced"), .number("3"), .null])
        #expect(object["b"] == nil)
        #expect(JSONValue.object(object).serialized == #"{"a":"replaced","c":3,"d":null}"#)
    }

    @Test func aLaterMemberReplacesAnEarlierOneInTheLiteral() {
        let object = JSONObject(["x": .number("1"), "y": .number("2"), "x": .number("3")])
        #expect(object.names == ["x", "y"])
        #expect(object["x"] == .number("3"))
    }

    @Test func equalityDependsOnOrder() {
        let ab = JSONObject(["a": .null, "b": .null])
        #expect(ab == JSONObject(["a": .null, "b": .null]))
        #expect(ab != JSONObject(["b": .null, "a": .null]))
        #expect(ab != JSONObject(["a": .null, "b": .bool(false)]))
    }
}
