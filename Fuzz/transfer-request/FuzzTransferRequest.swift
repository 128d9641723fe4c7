import ExactJSON
import FuzzSupport
import Transfers

/// Any bytes as the body of a create: validation never crashes and its answer stays short (at most 20 problems,
/// names cut); a valid request reads back from its canonical form with the same fingerprint, whatever the member
/// order; and the amount agrees, accepted or refused, with an independent exact reading of the number's text.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let input = fuzzInput(start, count)
    let amountText: String? = {
        guard case .object(let object)? = try? JSONValue.parse(input), case .number(let text)? = object["amount"] else { return nil }
        return text
    }()
    let expectedCents = amountText.map(exactCents(of:))

    let request: TransferRequest
    do {
        request = try TransferRequest(json: input)
    } catch {
        checkRefusal(error, amountText: amountText, expectedCents: expectedCents)
        return 0
    }

    require(expectedCents == .some(.valid(request.amount.minorUnits)),
            "amount \(amountText ?? "-") read as \(request.amount.minorUnits) cents")
    require(Amount.maximum >= request.amount && request.amount.minorUnits > 0, "amount out of range")
    require((try? Amount(jsonNumber: request.amount.jsonNumber)) == request.amount, "amount text does not round-trip")

    // The same request, canonical and reordered: equal, with an equal fingerprint.
    let canonical = JSONValue.object(JSONObject([
        "amount": .number(request.amount.jsonNumber),
        "receiver_id": .string(request.receiverID),
        "sender_id": .string(request.senderID),
    ])).serialized
    do {
        let reread = try TransferRequest(json: Array(canonical.utf8))
        require(reread == request, "the canonical form reads as another request: \(canonical)")
        require(reread.fingerprint == request.fingerprint, "the fingerprint changed with formatting: \(canonical)")
    } catch {
        require(false, "the canonical form is refused (\(error)): \(canonical)")
    }
    return 0
}

private func checkRefusal(_ error: TransferValidationError, amountText: String?, expectedCents: ExactCents?) {
    switch error {
    case .malformedJSON(let reason):
        require(reason.utf8.count <= 400, "a reason of \(reason.utf8.count) bytes")
    case .notAnObject:
        break
    case .invalidFields(let problems, let omitted):
        require(!problems.isEmpty, "invalid fields without a problem")
        require(problems.count <= TransferValidationError.maximumListedProblems, "\(problems.count) problems listed")
        require(omitted >= 0 && (omitted == 0 || problems.count == TransferValidationError.maximumListedProblems),
                "\(omitted) omitted with \(problems.count) listed")
        for problem in problems {
            require(problem.field.unicodeScalars.count <= FieldProblem.maximumFieldLength + 1,
                    "a field name of \(problem.field.unicodeScalars.count) scalars")
        }
        // The needed fields' problems come first, so an amount problem is never among the omitted.
        let amountRefused = problems.contains { $0.field == "amount" }
        if let expectedCents {
            require(amountRefused == !expectedCents.isValid,
                    "amount \(amountText ?? "-") refused: \(amountRefused), exactly \(expectedCents)")
        }
    }
}

/// What an amount's text is worth, read independently of `Amount`: digits and a power of ten, as strings.
enum ExactCents: Equatable {
    case valid(Int64)
    case invalid

    var isValid: Bool { self != .invalid }
}

/// `-?I(.F)?(e[+-]?E)?` is I F × 10^(E - |F|) units, so I F × 10^(E - |F| + 2) cents: an amount when that is a
/// whole number of cents, positive and at most 10^14.
func exactCents(of text: String) -> ExactCents {
    var rest = Substring(text)
    guard !rest.hasPrefix("-") else { return .invalid }  // negative, or zero written as -0: never an amount
    let mantissa = rest.prefix { $0 != "e" && $0 != "E" }
    rest = rest.dropFirst(mantissa.count)
    var exponent = 0
    if !rest.isEmpty {
        rest = rest.dropFirst()
        let negative = rest.first == "-"
        if rest.first == "-" || rest.first == "+" { rest = rest.dropFirst() }
        let significant = rest.drop { $0 == "0" }
        // An exponent of more than 9 digits makes any mantissa that fits in an input either 0 or no amount.
        guard significant.count <= 9, let magnitude = Int(significant.isEmpty ? "0" : significant) else { return .invalid }
        exponent = negative ? -magnitude : magnitude
    }
    let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
    let fraction = parts.count > 1 ? parts[1] : ""
    var digits = Substring(String(parts[0]) + fraction).drop { $0 == "0" }
    var shift = exponent - fraction.count + 2
    while digits.last == "0" {
        digits = digits.dropLast()
        shift += 1
    }
    guard !digits.isEmpty, shift >= 0, digits.count + shift <= 15 else { return .invalid }
    let cents = Int64(String(digits) + String(repeating: "0", count: shift))!
    return cents <= 100_000_000_000_000 ? .valid(cents) : .invalid
}
