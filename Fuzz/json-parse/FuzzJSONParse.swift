import ExactJSON
import FuzzSupport

/// Any bytes: parsing never crashes, an error points inside the input, and whatever parses serializes to text
/// that is no longer than the input (compact, escapes never grow) and parses back to an equal value.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let input = fuzzInput(start, count)
    let value: JSONValue
    do {
        value = try JSONValue.parse(input)
    } catch {
        require((0...count).contains(error.offset), "error offset \(error.offset) outside 0...\(count)")
        require(error.reason.utf8.count <= 400, "an error reason of \(error.reason.utf8.count) bytes")
        return 0
    }
    let text = value.serialized
    require(text.utf8.count <= count, "serialized to \(text.utf8.count) bytes from \(count)")
    do {
        let reparsed = try JSONValue.parse(text)
        require(reparsed == value, "the round trip changed the value: \(text)")
        require(reparsed.serialized == text, "serializing twice differs: \(text)")
    } catch {
        require(false, "the serialized text does not parse (\(error)): \(text)")
    }
    return 0
}
