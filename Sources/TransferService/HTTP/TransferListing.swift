import HTTPServer
import Transfers

/// `GET /transfers?account=<party>[&role=][&status=][&limit=][&cursor=]`: one page of an account's transfers, newest
/// first, each in its current state, with the cursor of the next page.
struct TransferListingEndpoint: Sendable {
    let repository: TransferRepository

    func respond(query: String?, answer: Answer) throws(APIError) {
        let listing: TransferListingQuery
        do {
            listing = try TransferListingQuery(parameters: try Self.parameters(query))
        } catch {
            switch error {
            case .invalidParameters(let problems, let omitted): throw .invalidListingQuery(problems, omitted: omitted)
            }
        }
        repository.listTransfers(listing) { result in
            answer.complete { () throws(APIError) in
                let page = try result.mapError(APIError.init).get()
                // The stored JSON of each transfer, as `GET /transfers/{id}` renders it; the cursor is hex.
                var body = #"{"transfers":["#
                body += page.transfers.map(\.json).joined(separator: ",")
                body += #"],"next_cursor":"#
                body += page.nextPosition.map { #"""# + listing.cursor(after: $0) + #"""# } ?? "null"
                body += "}"
                return HTTPResponse(status: 200, headers: ["Content-Type": "application/json"], body: Array(body.utf8))
            }
        }
    }

    /// The query's parameters in order, decoded as `application/x-www-form-urlencoded` (what browsers, curl's
    /// `--data-urlencode` and HTTP libraries send): `+` is a space, `%XX` a byte, and the bytes must be UTF-8.
    static func parameters(_ query: String?) throws(TransferListingError) -> [(name: String, value: String)] {
        guard let query, !query.isEmpty else { return [] }
        var parameters: [(name: String, value: String)] = []
        for pair in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let name = pair.prefix { $0 != UInt8(ascii: "=") }
            let value = pair.count > name.count ? pair[pair.index(after: name.endIndex)...] : pair[pair.endIndex...]
            guard let decodedName = formDecoded(name), let decodedValue = formDecoded(value) else {
                throw .invalidParameters([FieldProblem(
                    field: String(decoding: name, as: UTF8.self).prefix(40).description,
                    reason: "is not valid percent-encoded UTF-8"
                )], omitted: 0)
            }
            parameters.append((decodedName, decodedValue))
        }
        return parameters
    }

    private static func formDecoded(_ bytes: Substring.UTF8View.SubSequence) -> String? {
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if byte == UInt8(ascii: "%") {
                let first = bytes.index(after: index)
                guard first < bytes.endIndex, bytes.index(after: first) < bytes.endIndex,
                      let high = hexValue(bytes[first]), let low = hexValue(bytes[bytes.index(after: first)])
                else { return nil }
                decoded.append(high << 4 | low)
                index = bytes.index(index, offsetBy: 3)
                continue
            }
            decoded.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            index = bytes.index(after: index)
        }
        return String(validating: decoded, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
