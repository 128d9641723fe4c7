import Foundation
import ServiceTestSupport
import Synchronization
import TestSupport
import Testing

extension FaultInjectionTests {
    @Test func idleSocketsAndSlowClientsDoNotStarveOthers() throws {
        let deployment = try ServiceDeployment(name: "slow", environment: Self.environment)
        defer { deployment.tearDown() }
        let instance = try deployment.addInstance(clientTimeout: Self.clientTimeout)

        // 200 connections that never send a byte.
        let idle = (0..<200).compactMap { _ in RawConnection(port: instance.httpPort) }
        #expect(idle.count == 200, "only \(idle.count) of 200 idle connections could be opened")

        // Slowloris: three requests whose headers arrive one byte per second, never finishing; and one honest but
        // slow client whose body arrives 5 bytes per second.
        let stopTrickling = Atomic<Bool>(false)
        let trickleResults = Mutex<[String]>([])
        let trickling = DispatchGroup()
        trickling.enter()
        Thread {
            defer { trickling.leave() }
            let slowloris = (0..<3).compactMap { _ in RawConnection(port: instance.httpPort) }
            var headerBytesSent = [Int](repeating: 0, count: slowloris.count)
            for (index, connection) in slowloris.enumerated() where connection.send("POST /transfers HTTP/1.1\r\nHost: 127.0.0.1\r\n") {
                headerBytesSent[index] = 1
            }
            let body = #"{"sender_id": "slow", "receiver_id": "bob", "amount": 7}"#
            let slowBody = RawConnection(port: instance.httpPort)
            _ = slowBody?.send("POST /transfers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n")
            var bodySent = 0
            var tick = 0
            while !stopTrickling.load(ordering: .relaxed) && tick < 600 {
                Thread.sleep(forTimeInterval: 0.2)
                tick += 1
                if bodySent < body.utf8.count, let slowBody {
                    let byte = String(body[body.index(body.startIndex, offsetBy: bodySent)])
                    if slowBody.send(byte) { bodySent += 1 }
                }
                if tick % 5 == 0 {
                    for (index, connection) in slowloris.enumerated() where connection.state() == .open && connection.send("X") {
                        headerBytesSent[index] += 1
                    }
                }
            }
            // Wait (bounded) for the slow body's answer.
            var slowBodyState = slowBody?.state() ?? .closed
            for _ in 0..<100 where slowBodyState == .open {
                Thread.sleep(forTimeInterval: 0.05)
                slowBodyState = slowBody?.state() ?? .closed
            }
            trickleResults.withLock { results in
                for (index, connection) in slowloris.enumerated() {
                    results.append("slowloris \(index + 1): \(headerBytesSent[index]) header bytes sent, \(connection.state())")
                }
                results.append("slow body: \(bodySent)/\(body.utf8.count) bytes at 5 bytes/s, \(slowBodyState)")
            }
        }.start()

        // Meanwhile ordinary clients, at 50 POSTs per second for about 12 s.
        let load = LoadGenerator(targets: [instance.http], threads: 4, requestsPerSecond: 50)
        let report = try withLoad(load) {
            try load.waitUntilAccepted(600, timeout: .seconds(90))
        }
        stopTrickling.store(true, ordering: .relaxed)
        trickling.wait()

        let idleStates = idle.map { $0.state() }
        let stillOpen = idleStates.filter { $0 == .open }.count
        log("slow", "load next to 200 idle sockets, 3 slowloris and a slow body: \(report.summary)")
        log("slow", "idle sockets after the load: \(stillOpen) still open, \(idleStates.count - stillOpen) closed by the server")
        for line in trickleResults.withLock({ $0 }) { log("slow", line) }

        #expect(report.statusCounts.keys.sorted() == [202], "ordinary clients must be served: \(report.samples)")
        #expect(report.timedOut == 0 && report.refused == 0 && report.broken == 0, "\(report.samples)")
        #expect(try instance.http.get("/healthz").status == 200)

        let check = try PromiseCheck.run(deployment: deployment, acceptedIDs: report.acceptedIDs)
        log("slow", "promise: \(check.summary)")
        check.expectKept()
    }
}
