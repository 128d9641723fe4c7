/// Why a JSON text was rejected, and where.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What is wrong, in words a client can act on.
    public var reason: String
    /// The byte offset in the input where it went wrong.
    public var offset: Int

    public init(reason: String, offset: Int) {
        self.reason = reason
        self.offset = offset
    }

    public var description: String { "\(reason) at byte \(offset)" }
}

extension JSONValue {
    /// The deepest nesting accepted; deeper input is rejected rather than risking the stack.
    public static let maximumDepth = 64

    /// Parses a complete JSON text (RFC 8259). Trailing non-whitespace, duplicate member names, invalid UTF-8,
    /// unescaped control characters and nesting deeper than `maximumDepth` are errors.
    public static func parse(_ bytes: some Collection<UInt8>) throws(JSONParseError) -> JSONValue {
        let contiguous = Array(bytes)
        return try contiguous.withUnsafeBufferPointer { (buffer) throws(JSONParseError) -> JSONValue in
            var parser = JSONParser(input: buffer)
            parser.skipWhitespace()
            let value = try parser.parseValue(depth: 0)
            parser.skipWhitespace()
            guard parser.position == buffer.count else {
                throw parser.error("unexpected data after the JSON value")
            }
            return value
        }
    }

    /// Parses a complete JSON text given as a string.
    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        try parse(Array(text.utf8))
    }
}

/// A recursive-descent parser over UTF-8 bytes.
struct JSONParser {
    let input: UnsafeBufferPointer<UInt8>
    var position = 0

    init(input: UnsafeBufferPointer<UInt8>) {
        self.input = input
    }

    func error(_ reason: String) -> JSONParseError {
        JSONParseError(reason: reason, offset: position)
    }

    var current: UInt8? { position < input.count ? input[position] : nil }

    mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 {
            position += 1
        }
    }

    mutating func parseValue(depth: Int) throws(JSONParseError) -> JSONValue {
        guard let byte = current else { throw error("unexpected end of input") }
        switch byte {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw error("unexpected character")
        }
    }

    mutating func expectLiteral(_ literal: String) throws(JSONParseError) {
        let bytes = literal.utf8
        guard input.count - position >= bytes.count,
              input[position..<position + bytes.count].elementsEqual(bytes)
        else { throw error("invalid literal") }
        position += bytes.count
    }

    mutating func parseObject(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= JSONValue.maximumDepth else { throw error("nesting is too deep") }
        position += 1  // {
        var object = JSONObject()
        skipWhitespace()
        if current == UInt8(ascii: "}") {
            position += 1
            return .object(object)
        }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a member name in double quotes") }
            let nameOffset = position
            let name = try parseString()
            // Duplicate names are ambiguous (parsers disagree on which wins), so they are refused outright.
            guard object[name] == nil else {
                throw JSONParseError(reason: "duplicate member \"\(Self.excerpt(of: name))\"", offset: nameOffset)
            }
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw error("expected ':' after a member name") }
            position += 1
            skipWhitespace()
            object[name] = try parseValue(depth: depth)
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "}"): position += 1; return .object(object)
            default: throw error("expected ',' or '}' in an object")
            }
        }
    }

    mutating func parseArray(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth <= JSONValue.maximumDepth else { throw error("nesting is too deep") }
        position += 1  // [
        var elements: [JSONValue] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") {
            position += 1
            return .array(elements)
        }
        while true {
            skipWhitespace()
            elements.append(try parseValue(depth: depth))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): position += 1
            case UInt8(ascii: "]"): position += 1; return .array(elements)
            default: throw error("expected ',' or ']' in an array")
            }
        }
    }

    /// Checks the number grammar `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` and returns its text.
    mutating func parseNumber() throws(JSONParseError) -> String {
        let start = position
        if current == UInt8(ascii: "-") { position += 1 }
        guard let first = current, isDigit(first) else { throw error("invalid number") }
        position += 1
        if first != UInt8(ascii: "0") {
            skipDigits()
        }
        if current == UInt8(ascii: ".") {
            position += 1
            guard let byte = current, isDigit(byte) else { throw error("invalid number: digits expected after '.'") }
            skipDigits()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            position += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { position += 1 }
            guard let byte = current, isDigit(byte) else { throw error("invalid number: digits expected in exponent") }
            skipDigits()
        }
        return String(decoding: input[start..<position], as: UTF8.self)
    }

    func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    mutating func skipDigits() {
        while let byte = current, isDigit(byte) { position += 1 }
    }

    mutating func parseString() throws(JSONParseError) -> String {
        position += 1  // opening quote
        // A string without escapes is decoded straight from the input; otherwise the unescaped runs and the
        // decoded escapes are collected, each byte copied once.
        var unescaped: [UInt8] = []
        var hasEscapes = false
        var runStart = position
        while true {
            guard let byte = current else { throw error("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""):
                let run = input[runStart..<position]
                position += 1
                guard hasEscapes else { return try decodeUTF8(run) }
                unescaped.append(contentsOf: run)
                return try decodeUTF8(unescaped)
            case UInt8(ascii: "\\"):
                hasEscapes = true
                unescaped.append(contentsOf: input[runStart..<position])
                position += 1
                try parseEscape(into: &unescaped)
                runStart = position
            case 0x00..<0x20:
                throw error("unescaped control character in a string")
            default:
                position += 1
            }
        }
    }

    func decodeUTF8(_ bytes: Slice<UnsafeBufferPointer<UInt8>>) throws(JSONParseError) -> String {
        // ASCII needs no validation: decoded directly. (`String(validating:)` is generic over the collection and
        // is not specialized for this one: it looked up type metadata at run time for every string, about 1% of
        // the service's CPU, `perf`.)
        let buffer = UnsafeBufferPointer(rebasing: bytes)
        if buffer.allSatisfy({ $0 < 0x80 }) { return String(decoding: buffer, as: UTF8.self) }
        guard let string = String(validating: buffer, as: UTF8.self) else { throw error("invalid UTF-8 in a string") }
        return string
    }

    func decodeUTF8(_ bytes: [UInt8]) throws(JSONParseError) -> String {
        try bytes.withUnsafeBufferPointer { (buffer) throws(JSONParseError) in try decodeUTF8(buffer[...]) }
    }

    /// The longest member name quoted in an error message, in Unicode scalars: a hostile name of a megabyte must
    /// not come back whole in the error.
    static let maximumQuotedNameLength = 64

    /// `name`, cut to `maximumQuotedNameLength` scalars with "…" when it is longer.
    static func excerpt(of name: String) -> String {
        guard name.unicodeScalars.dropFirst(maximumQuotedNameLength).first != nil else { return name }
        return String(name.unicodeScalars.prefix(maximumQuotedNameLength)) + "…"
    }

    mutating func parseEscape(into bytes: inout [UInt8]) throws(JSONParseError) {
        guard let byte = current else { throw error("unterminated escape") }
        position += 1
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): bytes.append(byte)
        case UInt8(ascii: "b"): bytes.append(0x08)
        case UInt8(ascii: "f"): bytes.append(0x0C)
        case UInt8(ascii: "n"): bytes.append(0x0A)
        case UInt8(ascii: "r"): bytes.append(0x0D)
        case UInt8(ascii: "t"): bytes.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = UInt32(try parseHex4())
            if (0xD800..<0xDC00).contains(scalar) {
                // A high surrogate must be followed by an escaped low surrogate.
                guard current == UInt8(ascii: "\\") else { throw error("unpaired surrogate in a string") }
                position += 1
                guard current == UInt8(ascii: "u") else { throw error("unpaired surrogate in a string") }
                position += 1
                let low = UInt32(try parseHex4())
                guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in a string") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00..<0xE000).contains(scalar) {
                throw error("unpaired surrogate in a string")
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
            UTF8.encode(unicode) { bytes.append($0) }
        default:
            throw error("invalid escape sequence")
        }
    }

    mutating func parseHex4() throws(JSONParseError) -> UInt16 {
        guard input.count - position >= 4 else { throw error("invalid \\u escape") }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = input[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw error("invalid \\u escape")
            }
            value = value << 4 | UInt16(digit)
            position += 1
        }
        return value
    }
}
