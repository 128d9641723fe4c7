import FuzzSupport
import Transfers

/// Any bytes as a stored record or a Kafka event: decoding never crashes, its error stays short, and a decoded
/// transfer is within the domain's rules and survives writing and reading back unchanged.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let transfer: Transfer
    do {
        transfer = try Transfer(json: fuzzInput(start, count))
    } catch {
        require(error.reason.utf8.count <= 400, "an error reason of \(error.reason.utf8.count) bytes")
        return 0
    }
    require(transfer.version >= 1, "version \(transfer.version)")
    require(transfer.amount.minorUnits > 0 && transfer.amount <= Amount.maximum, "amount \(transfer.amount.minorUnits)")
    do {
        let reread = try Transfer(json: Array(transfer.json.utf8))
        require(reread == transfer, "the round trip changed the transfer: \(transfer.json)")
    } catch {
        require(false, "the written transfer does not decode (\(error)): \(transfer.json)")
    }
    let completed = transfer.completed(at: "2026-01-01T00:00:00Z")
    require(completed.version == transfer.version + 1 && completed.status == .completed, "completion broke the version rule")
    return 0
}
