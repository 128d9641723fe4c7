@testable import TransferService
import Dispatch
import ExactJSON
import Foundation
import ServiceTestSupport
import TestSupport
import Testing
import Transfers

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ObservabilityTests {
    /// Samples of a Prometheus text exposition, keyed by the series as written (`name{labels}`).
    static func samples(_ text: String) -> [String: Double] {
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            samples[String(line[..<space])] = value
        }
        return samples
    }

    /// Its own service, so every request and transfer it counts is one this test made.
    @Test func metricsCountExactlyWhatTheTestDid() throws {
        let harness = try ServiceHarness(topic: "metrics_transfers", groupID: "metrics-tests")
        defer {
            harness.instance.terminate()
            harness.redisServer.stop()
        }
        func scrape() throws -> [String: Double] {
            let response = try harness.http.get("/metrics")
            #expect(response.status == 200)
            #expect(response.headers["content-type"]?.hasPrefix("text/plain") == true)
            return Self.samples(response.bodyText)
        }
        let before = try scrape()
        let creates = 5
        var ids: [String] = []
        for index in 0..<creates {
            let created = try harness.http.postJSON("/transfers", #"{"sender_id":"metrics-\#(index)","receiver_id":"metrics-b","amount":3}"#)
            #expect(created.status == 202)
            guard case .object(let body) = try JSONValue.parse(created.body), case .string(let id)? = body["transfer_id"] else {
                throw HarnessError("no id")
            }
            ids.append(id)
        }
        for id in ids {
            _ = try harness.waitForStoredTransfer(id) { $0.status == .completed }
        }
        for _ in 0..<3 {
            #expect(try harness.http.get("/transfers/\(TransferID.random())").status == 404)
        }
        for _ in 0..<2 {
            #expect(try harness.http.send(method: "PUT", path: "/transfers").status == 405)
        }
        let after = try scrape()

        func delta(_ series: String) -> Double { (after[series] ?? 0) - (before[series] ?? 0) }
        #expect(delta("transfers_created_total") == Double(creates))
        #expect(delta("transfers_completed_total") == Double(creates))
        #expect(delta(#"consumer_events_processed_total{outcome="completed"}"#) == Double(creates))
        #expect(delta("consumer_event_processing_duration_seconds_count") >= Double(creates))
        #expect(delta(#"http_requests_total{route="/transfers",method="POST",status="202"}"#) == Double(creates))
        #expect(delta(#"http_request_duration_seconds_count{route="/transfers",method="POST"}"#) == Double(creates))
        #expect(delta(#"http_request_duration_seconds_bucket{route="/transfers",method="POST",le="+Inf"}"#) == Double(creates))
        #expect(delta(#"http_requests_total{route="/transfers/{id}",method="GET",status="404"}"#) == 3)
        #expect(delta(#"http_requests_total{route="method_not_allowed",method="PUT",status="405"}"#) == 2)
        // The first scrape is counted once it was answered, so the second one sees it.
        #expect(delta(#"http_requests_total{route="/metrics",method="GET",status="200"}"#) == 1)
        #expect(delta("transfers_cancelled_total") == 0)

        // Every event was delivered at once: nothing had to be resent or reconciled.
        #expect(delta("transfer_outbox_resent_total") == 0)
        #expect(delta("transfers_reconciled_total") == 0)

        // The sweeper samples Redis's memory use every few seconds, per primary.
        let memorySeries = #"redis_used_memory_bytes{node="127.0.0.1:\#(harness.redisServer.port)"}"#
        let deadline = ContinuousClock.now + .seconds(20)
        var usedMemory: Double?
        while usedMemory == nil, ContinuousClock.now < deadline {
            usedMemory = try scrape()[memorySeries]
            if usedMemory == nil { Thread.sleep(forTimeInterval: 0.5) }
        }
        #expect((usedMemory ?? 0) > 100_000, "\(memorySeries): \(usedMemory.map { "\($0)" } ?? "absent")")
    }

    /// Counters and histograms recorded from many threads at once lose nothing.
    @Test func concurrentRecordingIsExact() {
        let metrics = ServiceMetrics()
        let threads = 8
        let perThread = 5_000
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for index in 0..<perThread {
                let status = index % 2 == 0 ? 200 : 404
                metrics.recordRequest(route: "/r\(thread % 2)", method: "GET", status: status, duration: .microseconds(index % 3 == 0 ? 100 : 3_000))
            }
        }
        let samples = Self.samples(String(decoding: metrics.exposition(), as: UTF8.self))
        for route in ["/r0", "/r1"] {
            #expect(samples[#"http_requests_total{route="\#(route)",method="GET",status="200"}"#] == Double(threads / 2 * perThread / 2))
            #expect(samples[#"http_requests_total{route="\#(route)",method="GET",status="404"}"#] == Double(threads / 2 * perThread / 2))
            let fast = Double(threads / 2 * ((perThread + 2) / 3))
            #expect(samples[#"http_request_duration_seconds_bucket{route="\#(route)",method="GET",le="0.00025"}"#] == fast)
            #expect(samples[#"http_request_duration_seconds_bucket{route="\#(route)",method="GET",le="0.002"}"#] == fast)
            #expect(samples[#"http_request_duration_seconds_bucket{route="\#(route)",method="GET",le="0.005"}"#] == Double(threads / 2 * perThread))
            #expect(samples[#"http_request_duration_seconds_count{route="\#(route)",method="GET"}"#] == Double(threads / 2 * perThread))
        }
    }

    /// Lines appended from many threads at once come out whole, each thread's in its order, none lost.
    @Test func bufferedLogLinesStayWholeAndInOrder() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("log-\(UUID().uuidString)").path
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        #expect(descriptor >= 0)
        defer {
            close(descriptor)
            unlink(path)
        }
        let output = BufferedLogOutput(descriptor: descriptor)
        let threads = 8
        let perThread = 3_000
        // Long enough lines that the size limit makes logging threads flush too, not only flush() below.
        let padding = String(repeating: "x", count: 100)
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            for index in 0..<perThread {
                output.append("thread \(thread) line \(index) \(padding)\n")
            }
        }
        output.flush()
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(text.hasSuffix("\n"))
        #expect(lines.count == threads * perThread)
        var next = [Int](repeating: 0, count: threads)
        for line in lines {
            let parts = line.split(separator: " ")
            guard parts.count == 5, let thread = Int(parts[1]), let index = Int(parts[3]), parts[4] == padding else {
                Issue.record("not a whole line: \(line.prefix(80))")
                return
            }
            #expect(index == next[thread], "thread \(thread): line \(index) after \(next[thread] - 1)")
            next[thread] = index + 1
        }
        #expect(next == [Int](repeating: perThread, count: threads))
    }

    /// Once flushing was started, a line is written without anyone calling flush().
    @Test func bufferedLogLinesAreWrittenWithoutAnExplicitFlush() throws {
        var pipeEnds: [Int32] = [0, 0]
        #expect(pipe(&pipeEnds) == 0)
        defer {
            close(pipeEnds[0])
            close(pipeEnds[1])
        }
        let output = BufferedLogOutput(descriptor: pipeEnds[1])
        output.startFlushing()
        output.append("a line\n")
        // Waits for the periodic flush (the limit only prevents a hang).
        var readable = pollfd(fd: pipeEnds[0], events: Int16(POLLIN), revents: 0)
        #expect(poll(&readable, 1, 20_000) == 1)
        var buffer = [UInt8](repeating: 0, count: 64)
        let count = read(pipeEnds[0], &buffer, buffer.count)
        #expect(count > 0 && String(decoding: buffer[..<count], as: UTF8.self) == "a line\n")
    }

    @Test func jsonLogsAreOneObjectPerLineWithTheTransferIDAndNoSecrets() throws {
        let redis = try RedisServer.start()
        defer { redis.stop() }
        let service = ServiceInstance(name: "transfer-service-json-logs", environment: [
            "LOG_FORMAT": "json", "API_TOKENS": "very-secret-token", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
            "KAFKA_BOOTSTRAP_SERVERS": DevKafka.shared.bootstrapServers, "KAFKA_GROUP_ID": "json-log-\(UUID().uuidString)",
        ])
        try service.start()
        let http = service.http
        let secretBody = #"{"sender_id":"log-sender-secret","receiver_id":"log-receiver","amount":9}"#
        let created = try http.postJSON("/transfers", secretBody, headers: [("Authorization", "Bearer very-secret-token")])
        #expect(created.status == 202)
        guard case .object(let body) = try JSONValue.parse(created.body), case .string(let id)? = body["transfer_id"] else {
            throw HarnessError("no id")
        }
        service.terminate()

        let lines = service.logLines()
        #expect(!lines.isEmpty)
        var sawInitiated = false
        for line in lines {
            guard case .object(let entry) = try JSONValue.parse(String(line)) else {
                Issue.record("not a JSON object: \(line)")
                continue
            }
            for member in ["timestamp", "level", "message", "label"] {
                #expect(entry[member] != nil, "\(member) missing in \(line)")
            }
            if entry["message"] == .string("transfer initiated") {
                sawInitiated = true
                #expect(entry["transfer_id"] == .string(id))
            }
            #expect(!line.contains("very-secret-token"))
            #expect(!line.contains("log-sender-secret"))
        }
        #expect(sawInitiated)
    }
}
