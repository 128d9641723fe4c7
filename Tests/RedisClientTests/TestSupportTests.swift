import Foundation
import RedisClient
import Testing
import TestSupport

/// TestSupport is shared by every integration test in the project, so its own behaviour is pinned down here.
@Suite("TestSupport child processes and ports")
struct TestSupportTests {
    @Test func firstStdoutLineAndSIGTERMStopTheChild() throws {
        let child = try ChildProcess(
            executable: "/bin/sh", arguments: ["-c", "echo hello; echo second; exec sleep 60"], name: "sh-lines")
        #expect(try child.firstStdoutLine(timeout: .seconds(30)) == "hello")
        #expect(child.isRunning)
        child.stop()
        // Ended by SIGTERM, which proves the child did not inherit a mask blocking it.
        #expect(child.waitForExit(timeout: .seconds(30)) == 128 + SIGTERM)
        #expect(!child.isRunning)
    }

    @Test func exitCodeAndStderrAreReported() throws {
        let child = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "echo oops >&2; exit 7"], name: "sh-exit")
        #expect(child.waitForExit(timeout: .seconds(30)) == 7)
        #expect(child.recentOutput().contains("oops"))
        #expect(throws: ChildProcessError.self) { try child.firstStdoutLine(timeout: .seconds(30)) }
    }

    @Test func environmentIsMergedOverTheInheritedOne() throws {
        let child = try ChildProcess(
            executable: "sh", arguments: ["-c", "echo \"$TESTSUPPORT_VALUE|$PATH\""],
            environment: ["TESTSUPPORT_VALUE": "merged"], name: "sh-env")
        let line = try child.firstStdoutLine(timeout: .seconds(30))
        let parts = line.split(separator: "|", omittingEmptySubsequences: false)
        #expect(parts.first == "merged")
        #expect(parts.last?.isEmpty == false)
    }

    @Test func stopEscalatesToSIGKILLWhenSIGTERMIsIgnored() throws {
        let child = try ChildProcess(
            executable: "/bin/sh", arguments: ["-c", "trap '' TERM; echo ready; while :; do sleep 1; done"],
            name: "sh-stubborn")
        _ = try child.firstStdoutLine(timeout: .seconds(30))
        #expect(child.waitForExit(timeout: .milliseconds(50)) == nil)
        child.stop(timeout: .milliseconds(300))
        #expect(child.waitForExit(timeout: .seconds(30)) == 128 + SIGKILL)
    }

    @Test func freePortsAreDistinctWithinTheProcess() {
        let ports = (0..<50).map { _ in FreePort.find() }
        #expect(Set(ports).count == ports.count)
        #expect(ports.allSatisfy { (1..<65536).contains($0) })
    }

    @Test func redisServerKeepsAppendOnlyDataAcrossARestart() throws {
        let server = try RedisServer.start(appendOnly: true)
        let key = uniqueKey()
        do {
            let connection = try RedisConnection(configuration: configuration(for: server))
            _ = try connection.command(["SET", key, "kept"])
        }
        server.stop()
        #expect(!server.process.isRunning)
        let restarted = try RedisServer.start(appendOnly: true, port: server.port, directory: server.directory)
        defer { restarted.stop() }
        #expect(restarted.port == server.port)
        let connection = try RedisConnection(configuration: configuration(for: restarted))
        #expect(try connection.command(["GET", key]).string == "kept")
    }
}
