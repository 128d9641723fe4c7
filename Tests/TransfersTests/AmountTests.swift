import Testing
@testable import Transfers

@Suite struct AmountTests {
    @Test(arguments: [
        ("100.5", 10050), ("0.1", 10), ("0.01", 1), ("1", 100), ("100.50", 10050), ("1.500", 150),
        ("1e2", 10000), ("15E-1", 150), ("1.5e+1", 1500), ("0.10e1", 100), ("1000000000000", 100_000_000_000_000),
        ("999999999999.99", 99_999_999_999_999), ("00.5", 50),
    ] as [(String, Int64)])
    func parsesExactly(text: String, minorUnits: Int64) throws {
        #expect(try Amount(jsonNumber: text).minorUnits == minorUnits)
    }

    @Test(arguments: [
        ("0", AmountError.notPositive), ("0.00", .notPositive), ("-0", .notPositive), ("-1", .notPositive),
        ("-0.01", .notPositive), ("0.001", .tooManyFractionDigits), ("1.005", .tooManyFractionDigits),
        ("1e-3", .tooManyFractionDigits), ("1000000000000.01", .tooLarge), ("1e13", .tooLarge),
        ("1e999999999999999999", .tooLarge), ("99999999999999999999999", .tooLarge),
        ("1e-999999999999999999", .tooManyFractionDigits), ("abc", .notANumber), ("1.", .notANumber), ("", .notANumber),
    ] as [(String, AmountError)])
    func rejects(text: String, error: AmountError) {
        #expect(throws: error) { try Amount(jsonNumber: text) }
    }

    /// A mantissa longer than the exponent's saturation point once was: 0.(999,999 zeros)1e1000000000 is about
    /// 10^999000000 and read as 1; 1(999,998 zeros)e-1000000000 is tiny and read as 0.01.
    @Test func aHugeExponentOutweighsAnyMantissa() {
        let zeros = String(repeating: "0", count: 999_999)
        #expect(throws: AmountError.tooLarge) { try Amount(jsonNumber: "0.\(zeros)1e1000000000") }
        #expect(throws: AmountError.tooManyFractionDigits) { try Amount(jsonNumber: "1\(zeros.dropFirst())e-1000000000") }
    }

    @Test(arguments: [
        (10050, "100.5"), (10, "0.1"), (1, "0.01"), (100, "1"), (12345, "123.45"), (100_000_000_000_000, "1000000000000"),
        (99_999_999_999_999, "999999999999.99"), (105, "1.05"),
    ] as [(Int64, String)])
    func rendersWithoutInsignificantZeros(minorUnits: Int64, text: String) {
        #expect(Amount(minorUnits: minorUnits).jsonNumber == text)
    }

    @Test func renderingRoundTripsEveryCentValue() throws {
        for units in Int64(1)...2_000 {
            #expect(try Amount(jsonNumber: Amount(minorUnits: units).jsonNumber).minorUnits == units)
        }
    }
}
