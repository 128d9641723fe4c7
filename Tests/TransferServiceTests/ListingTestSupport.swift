import ExactJSON
import Foundation
import ServiceTestSupport
import TestSupport
import Transfers

/// One page of `GET /transfers?account=...` as a test reads it.
struct ListedPage {
    var transfers: [Transfer]
    var nextCursor: String?
}

/// Listing and batch helpers over a running service.
struct ListingClient {
    let http: HTTPTestClient

    /// A fresh account name, so that each test counts only what it created.
    static func account(_ prefix: String) -> String {
        "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// `/transfers?` with the parameters percent-encoded (`+` and the rest of the reserved characters too).
    static func path(_ parameters: [(String, String)]) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let query = parameters.map { name, value in
            "\(name)=\(value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value)"
        }
        return "/transfers?" + query.joined(separator: "&")
    }

    /// One page; throws unless the answer is 200 with a listing body.
    func page(_ parameters: [(String, String)]) throws -> ListedPage {
        let response = try http.get(Self.path(parameters))
        guard response.status == 200, response.headers["content-type"] == "application/json" else {
            throw HarnessError("listing \(parameters) answered \(response.status): \(response.bodyText)")
        }
        guard case .object(let body) = try JSONValue.parse(response.body), case .array(let items)? = body["transfers"] else {
            throw HarnessError("not a listing: \(response.bodyText)")
        }
        let transfers = try items.map { try Transfer(json: Array($0.serialized.utf8)) }
        switch body["next_cursor"] {
        case .string(let cursor)?: return ListedPage(transfers: transfers, nextCursor: cursor)
        case .null?: return ListedPage(transfers: transfers, nextCursor: nil)
        default: throw HarnessError("no next_cursor in \(response.bodyText)")
        }
    }

    /// Every page of a listing, following `next_cursor` to the end; `afterEachPage` runs between pages.
    func walk(_ parameters: [(String, String)], afterEachPage: () -> Void = {}) throws -> (transfers: [Transfer], pages: [ListedPage]) {
        var pages: [ListedPage] = []
        var cursor: String?
        repeat {
            let page = try self.page(parameters + (cursor.map { [("cursor", $0)] } ?? []))
            pages.append(page)
            cursor = page.nextCursor
            afterEachPage()
            if pages.count > 10_000 { throw HarnessError("the walk does not end") }
        } while cursor != nil
        return (pages.flatMap(\.transfers), pages)
    }

    /// Creates a transfer; returns it as answered (202).
    func create(sender: String, receiver: String, amount: String = "1", headers: [(String, String)] = []) throws -> Transfer {
        let response = try http.postJSON("/transfers", #"{"sender_id":"\#(sender)","receiver_id":"\#(receiver)","amount":\#(amount)}"#, headers: headers)
        guard response.status == 202 else { throw HarnessError("create answered \(response.status): \(response.bodyText)") }
        return try Transfer(json: response.body)
    }

    /// Posts a batch body; returns the response.
    func postBatch(_ items: [String], headers: [(String, String)] = []) throws -> HTTPTestResponse {
        try http.postJSON("/transfers/batch", #"{"transfers":["# + items.joined(separator: ",") + "]}", headers: headers)
    }

    /// The results of a 200 batch answer.
    static func results(_ response: HTTPTestResponse) throws -> [JSONObject] {
        guard response.status == 200, case .object(let body) = try JSONValue.parse(response.body), case .array(let results)? = body["results"] else {
            throw HarnessError("batch answered \(response.status): \(response.bodyText.prefix(500))")
        }
        return try results.map { result in
            guard case .object(let object) = result else { throw HarnessError("a result is not an object: \(result)") }
            return object
        }
    }

    /// The transfer of an accepted (202) result.
    static func transfer(of result: JSONObject) throws -> Transfer {
        guard result["status"] == .number("202"), let transfer = result["transfer"] else { throw HarnessError("not accepted: \(result)") }
        return try Transfer(json: Array(transfer.serialized.utf8))
    }
}

/// The account-index member of a position, as the service writes it: `<16-digit milliseconds>:<id>`.
func indexMember(_ position: ListingPosition) -> String {
    let digits = String(position.createdAtMilliseconds)
    return String(repeating: "0", count: 16 - digits.count) + digits + ":" + position.id.rawValue
}

extension Transfer {
    /// Its place in listings.
    var position: ListingPosition { ListingPosition(of: self) }
}

