import Testing
@testable import TransferService

/// `If-Match` compares entity tags strongly and `If-None-Match` weakly, both as opaque strings (RFC 9110 13.1).
@Suite struct EntityTagsTests {
    @Test func ifMatchTakesOnlyTheExactStrongTag() {
        #expect(EntityTags(#""2""#, weakTagsMatch: false).matches(version: 2))
        #expect(EntityTags(#""1", "2""#, weakTagsMatch: false).matches(version: 2))
        #expect(EntityTags("*", weakTagsMatch: false).matches(version: 7))
        for header in [#"W/"2""#, #""02""#, #""+2""#, #"" 2""#, "2", #""2"#] {
            #expect(!EntityTags(header, weakTagsMatch: false).matches(version: 2), "\(header)")
        }
    }

    @Test func ifNoneMatchAlsoTakesTheWeakTag() {
        #expect(EntityTags(#"W/"2""#, weakTagsMatch: true).matches(version: 2))
        #expect(EntityTags(#""2""#, weakTagsMatch: true).matches(version: 2))
        #expect(!EntityTags(#"W/"02""#, weakTagsMatch: true).matches(version: 2))
    }
}
