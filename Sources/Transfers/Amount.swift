/// An amount of money in exact minor units (cents): never a binary floating-point number.
public struct Amount: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Digits after the decimal point that an amount may have.
    public static let fractionDigits = 2
    /// The largest amount accepted: 1,000,000,000,000.00.
    public static let maximum = Amount(minorUnits: 1_000_000_000_000 * 100)

    /// The amount in minor units: 100.5 is 10050.
    public let minorUnits: Int64

    /// An amount of `minorUnits` cents.
    public init(minorUnits: Int64) {
        self.minorUnits = minorUnits
    }

    /// Parses a JSON number's text exactly. Trailing zeros after the point do not count as fraction digits
    /// (`1.50` and `15e-1` are 1.5); the result must be positive, at most `maximum`, with at most two fraction digits.
    public init(jsonNumber text: String) throws(AmountError) {
        guard let decimal = DecimalText(text) else { throw .notANumber }
        guard !decimal.isZero else { throw .notPositive }
        guard !decimal.isNegative else { throw .notPositive }
        guard decimal.scale <= Amount.fractionDigits else { throw .tooManyFractionDigits }
        // minorUnits = digits × 10^(2 - scale); more than 17 digits is far above the maximum, so stop before overflow.
        let zerosToAppend = Amount.fractionDigits - decimal.scale
        guard decimal.digits.count + zerosToAppend <= 17 else { throw .tooLarge }
        var units: Int64 = 0
        for digit in decimal.digits {
            units = units * 10 + Int64(digit)
        }
        for _ in 0..<zerosToAppend {
            units *= 10
        }
        guard units <= Amount.maximum.minorUnits else { throw .tooLarge }
        self.minorUnits = units
    }

    /// The amount as a JSON number with no insignificant zeros: 10050 → `100.5`, 10 → `0.1`, 100 → `1`.
    public var jsonNumber: String {
        let whole = minorUnits / 100
        let cents = minorUnits % 100
        if cents == 0 { return String(whole) }
        if cents % 10 == 0 { return "\(whole).\(cents / 10)" }
        return cents < 10 ? "\(whole).0\(cents)" : "\(whole).\(cents)"
    }

    public var description: String { jsonNumber }

    public static func < (lhs: Amount, rhs: Amount) -> Bool { lhs.minorUnits < rhs.minorUnits }
}

/// Why a number is not a valid amount.
public enum AmountError: Error, Sendable, Equatable, CustomStringConvertible {
    case notANumber
    case notPositive
    case tooManyFractionDigits
    case tooLarge

    public var description: String {
        switch self {
        case .notANumber: "must be a number"
        case .notPositive: "must be greater than zero"
        case .tooManyFractionDigits: "must have at most \(Amount.fractionDigits) digits after the decimal point"
        case .tooLarge: "must be at most \(Amount.maximum.jsonNumber)"
        }
    }
}

/// A JSON number's text as significant decimal digits and a scale: value = digits × 10^-scale.
struct DecimalText {
    /// Significant digits, without leading or trailing zeros (empty for zero).
    var digits: [UInt8]
    /// How many of `digits` are after the decimal point (negative when the value has trailing zeros).
    var scale: Int
    var isNegative: Bool

    var isZero: Bool { digits.isEmpty }

    /// Parses `-?digits(.digits)?([eE][+-]?digits)?`; nil for anything else.
    init?(_ text: String) {
        var bytes = text.utf8[...]
        isNegative = bytes.first == UInt8(ascii: "-")
        if isNegative { bytes = bytes.dropFirst() }
        let isDigit = { (byte: UInt8) in byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

        let integerPart = bytes.prefix(while: isDigit)
        guard !integerPart.isEmpty else { return nil }
        bytes = bytes.dropFirst(integerPart.count)
        var fractionPart = bytes.prefix(0)
        if bytes.first == UInt8(ascii: ".") {
            bytes = bytes.dropFirst()
            fractionPart = bytes.prefix(while: isDigit)
            guard !fractionPart.isEmpty else { return nil }
            bytes = bytes.dropFirst(fractionPart.count)
        }
        var exponent = 0
        if bytes.first == UInt8(ascii: "e") || bytes.first == UInt8(ascii: "E") {
            bytes = bytes.dropFirst()
            var exponentIsNegative = false
            if bytes.first == UInt8(ascii: "+") || bytes.first == UInt8(ascii: "-") {
                exponentIsNegative = bytes.first == UInt8(ascii: "-")
                bytes = bytes.dropFirst()
            }
            let exponentDigits = bytes.prefix(while: isDigit)
            guard !exponentDigits.isEmpty else { return nil }
            bytes = bytes.dropFirst(exponentDigits.count)
            // Saturate at 2^40: far above the number of digits any text here can have, so a saturated exponent
            // still outweighs the whole mantissa (a cap below a long fraction's length would shift the value).
            for digit in exponentDigits where exponent < 1 << 40 {
                exponent = exponent * 10 + Int(digit - UInt8(ascii: "0"))
            }
            if exponentIsNegative { exponent = -exponent }
        }
        guard bytes.isEmpty else { return nil }

        var all = (Array(integerPart) + Array(fractionPart)).map { $0 - UInt8(ascii: "0") }
        var scale = fractionPart.count - exponent
        let leadingZeros = all.prefix(while: { $0 == 0 }).count
        all.removeFirst(leadingZeros)
        while let last = all.last, last == 0 {
            all.removeLast()
            scale -= 1
        }
        digits = all
        self.scale = all.isEmpty ? 0 : scale
    }
}
