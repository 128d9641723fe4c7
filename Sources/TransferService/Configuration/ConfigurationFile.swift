#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The whole text of a file named by setting `name` (a secret or a properties file). Refuses files over 1 MiB:
/// a setting is never that large, and a wrong path (a device, a log) should fail rather than be read.
func readConfigurationFile(_ path: String, _ name: String) throws(ConfigurationError) -> String {
    let limit = 1 << 20
    guard let file = fopen(path, "r") else {
        throw ConfigurationError(setting: name, reason: "cannot read \(path): \(String(cString: strerror(errno)))")
    }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        bytes += chunk[..<count]
        guard bytes.count <= limit else { throw ConfigurationError(setting: name, reason: "\(path) is larger than 1 MiB") }
        if count < chunk.count {
            guard ferror(file) == 0 else {
                throw ConfigurationError(setting: name, reason: "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            break
        }
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        throw ConfigurationError(setting: name, reason: "\(path) is not UTF-8 text")
    }
    return text
}
