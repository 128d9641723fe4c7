import Foundation

/// `report`: gathers the phase outputs that scripts/bench left in `--dir`, prints the table (figures, ceilings,
/// ratios, targets) and writes the same figures as JSON to `--out`. Exits 1 when a phase did not work (errors,
/// missing output); a missed target is reported, not a failure.
enum Report {
    /// One row of the table and one entry of the JSON.
    struct Row {
        var name: String
        var value: Double?
        var unit: String
        var detail: String = ""
        var ceilingName: String?
        var ceiling: Double?
        var target: Target?
    }

    /// A target: either a minimum ratio to the ceiling, or a bound on the value itself.
    enum Target {
        case ratioAtLeast(Double)
        case valueBelow(Double)
        case valueEquals(Double)

        var text: String {
            switch self {
            case .ratioAtLeast(let bound): "ratio ≥ \(bound)"
            case .valueBelow(let bound): "< \(format(bound))"
            case .valueEquals(let bound): "= \(format(bound))"
            }
        }
    }

    static func run(_ options: ReportCommand) throws {
        let directory = URL(fileURLWithPath: options.dir)
        var problems: [String] = []

        func json(_ name: String) -> [String: Any]? {
            guard let data = try? Data(contentsOf: directory.appendingPathComponent(name)) else {
                problems.append("\(name) is missing")
                return nil
            }
            // wrk's output has its own text around the one line our Lua `done` prints.
            let text = String(decoding: data, as: UTF8.self)
            let line = text.split(separator: "\n").last { $0.hasPrefix("{") } ?? ""
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                problems.append("\(name) has no JSON result")
                return nil
            }
            return object
        }
        /// requests/s from `redis-benchmark --csv` (header line, then "test","rps",...).
        func redisBenchmarkRate(_ name: String) -> Double? {
            guard let text = try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8) else {
                problems.append("\(name) is missing")
                return nil
            }
            // The test name (first field) repeats the command, record JSON and its commas included; the seven
            // numeric fields after it (rps, then latencies) are counted from the end.
            for line in text.split(separator: "\n") where !line.hasPrefix("\"test\"") {
                let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
                if fields.count >= 8, let rate = Double(fields[fields.count - 7]) { return rate }
            }
            problems.append("\(name) has no rate")
            return nil
        }
        func number(_ object: [String: Any]?, _ key: String) -> Double? { (object?[key] as? NSNumber)?.doubleValue }
        func kilobytes(_ name: String) -> Double? {
            guard let text = try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8),
                let value = Double(text.trimmingCharacters(in: .whitespacesAndNewlines))
            else {
                problems.append("\(name) is missing")
                return nil
            }
            return value
        }

        let createCeiling = redisBenchmarkRate("ceiling-create.csv")
        let createCeilingPipelined = redisBenchmarkRate("ceiling-create-p16.csv")
        let completeCeiling = redisBenchmarkRate("ceiling-complete.csv")
        let completeCeilingPipelined = redisBenchmarkRate("ceiling-complete-p16.csv")
        let http = json("http-ceiling.json")
        let httpCeiling = number(http, "requests_per_second")
        let post64 = json("post-c64.json")
        let post16 = json("post-c16.json")
        let get = json("get.json")
        let endToEnd = json("e2e.json")
        let catchUp = json("catchup.json")
        let drain = json("drain.json")
        let batch = json("batch.json")
        // Cluster runs only: the POST and end-to-end phases again with REDIS_WAIT_REPLICAS=0.
        let hasWaitZero = FileManager.default.fileExists(atPath: directory.appendingPathComponent("post-c64-wait0.json").path)
        let post64WaitZero = hasWaitZero ? json("post-c64-wait0.json") : nil
        let post16WaitZero = hasWaitZero ? json("post-c16-wait0.json") : nil
        let endToEndWaitZero = hasWaitZero ? json("e2e-wait0.json") : nil
        let serviceRSS = kilobytes("rss-service.kb")
        let catchUpServiceRSS = kilobytes("rss-catchup-service.kb")
        let rssKilobytes = [serviceRSS, catchUpServiceRSS].compactMap { $0 }.max()

        // Items of batches answered 200 that were not created (each item stands alone, so a 200 can hold failures).
        if let text = try? String(contentsOf: directory.appendingPathComponent("batch-created.txt"), encoding: .utf8) {
            let counts = text.split(separator: " ").compactMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if counts.count == 2, counts[1] < counts[0] { problems.append("batch: \(counts[0] - counts[1]) of \(counts[0]) items were not created") }
        } else {
            problems.append("batch-created.txt is missing")
        }
        var checked = [("POST c64", post64), ("POST c16", post16), ("GET", get), ("HTTP ceiling", http), ("batch", batch)]
        if hasWaitZero { checked += [("POST c64, wait 0", post64WaitZero), ("POST c16, wait 0", post16WaitZero)] }
        for (name, result) in checked {
            guard let result else { continue }
            let errors = ["connect", "read", "write", "timeout"].compactMap { number(result, "errors_\($0)") }.reduce(0, +)
            if errors > 0 { problems.append("\(name): \(Int(errors)) socket errors or timeouts") }
            if number(result, "non_2xx") ?? 0 > 0 { problems.append("\(name): \(Int(number(result, "non_2xx")!)) non-2xx responses") }
            if number(result, "requests") ?? 0 == 0 { problems.append("\(name): no requests completed") }
        }
        for endToEnd in [endToEnd, endToEndWaitZero].compactMap({ $0 }) {
            if number(endToEnd, "failed") ?? 0 > 0 { problems.append("end to end: \(Int(number(endToEnd, "failed")!)) POSTs failed: \(endToEnd["first_failure"] ?? "")") }
            if number(endToEnd, "not_completed") ?? 0 > 0 { problems.append("end to end: \(Int(number(endToEnd, "not_completed")!)) transfers never completed") }
            if let failure = endToEnd["subscriber_failure"] { problems.append("end to end: the notification reader failed: \(failure)") }
        }

        let ms = 1.0 / 1000  // wrk reports microseconds
        let postRate = number(post64, "requests_per_second")
        let endToEndRate = number(endToEnd, "target_rate")
        var rows: [Row] = [
            Row(name: "POST /transfers, c64", value: postRate, unit: "req/s",
                detail: "p50 \(format(number(post64, "p50_us").map { $0 * ms })) ms, p99 \(format(number(post64, "p99_us").map { $0 * ms })) ms",
                ceilingName: "create script", ceiling: createCeiling, target: .ratioAtLeast(0.8)),
            Row(name: "POST /transfers, c64, non-2xx", value: number(post64, "non_2xx"), unit: "", target: .valueEquals(0)),
            Row(name: "POST /transfers, c64 vs HTTP", value: postRate, unit: "req/s", ceilingName: "HTTP /healthz", ceiling: httpCeiling),
            Row(name: "POST /transfers, c16", value: number(post16, "requests_per_second"), unit: "req/s",
                detail: "p50 \(format(number(post16, "p50_us").map { $0 * ms })) ms", ceilingName: "create script", ceiling: createCeiling),
            Row(name: "POST /transfers, c16, p99", value: number(post16, "p99_us").map { $0 * ms }, unit: "ms", target: .valueBelow(5)),
            Row(name: "GET /transfers/<id>, c64", value: number(get, "requests_per_second"), unit: "req/s",
                detail: "p99 \(format(number(get, "p99_us").map { $0 * ms })) ms", ceilingName: "HTTP /healthz", ceiling: httpCeiling),
            Row(name: "end to end p50", value: number(endToEnd, "p50_ms"), unit: "ms",
                detail: "at \(format(endToEndRate))/s (achieved \(format(number(endToEnd, "achieved_rate"))))"),
            Row(name: "end to end p99", value: number(endToEnd, "p99_ms"), unit: "ms", target: .valueBelow(50)),
            Row(name: "POST /transfers/batch, 100 each, c8", value: number(batch, "transfers_per_second"), unit: "transfers/s",
                detail: "\(format(number(batch, "requests_per_second"))) batches/s, p99 \(format(number(batch, "p99_us").map { $0 * ms })) ms",
                ceilingName: "create script -P16", ceiling: createCeilingPipelined),
            Row(name: "consumer catch-up", value: number(catchUp, "events_per_second"), unit: "events/s",
                detail: "\(format(number(catchUp, "events"))) events; lag 0 after \(format(number(catchUp, "seconds_start_to_lag_zero"))) s",
                ceilingName: "CAS script -P16", ceiling: completeCeilingPipelined, target: .ratioAtLeast(0.6)),
            Row(name: "consumer catch-up vs unpipelined", value: number(catchUp, "events_per_second"), unit: "events/s",
                ceilingName: "CAS script", ceiling: completeCeiling),
            Row(name: "peak RSS", value: rssKilobytes.map { $0 / 1024 }, unit: "MB",
                detail: "phases 1-3 \(format(serviceRSS.map { $0 / 1024 })) MB, catch-up \(format(catchUpServiceRSS.map { $0 / 1024 })) MB",
                target: .valueBelow(64)),
        ]
        if hasWaitZero {
            rows += [
                Row(name: "REDIS_WAIT_REPLICAS=0: POST c64", value: number(post64WaitZero, "requests_per_second"), unit: "req/s",
                    detail: "p50 \(format(number(post64WaitZero, "p50_us").map { $0 * ms })) ms, p99 \(format(number(post64WaitZero, "p99_us").map { $0 * ms })) ms",
                    ceilingName: "create script", ceiling: createCeiling),
                Row(name: "REDIS_WAIT_REPLICAS=0: POST c16, p99", value: number(post16WaitZero, "p99_us").map { $0 * ms }, unit: "ms",
                    detail: "\(format(number(post16WaitZero, "requests_per_second"))) req/s"),
                Row(name: "REDIS_WAIT_REPLICAS=0: end to end p99", value: number(endToEndWaitZero, "p99_ms"), unit: "ms",
                    detail: "p50 \(format(number(endToEndWaitZero, "p50_ms"))) ms at \(format(number(endToEndWaitZero, "target_rate")))/s"),
            ]
        }

        var output = "\(options.deployment)\n"
        func line(_ columns: [String]) {
            let widths = [34, 22, 34, 18, 8, 16]
            output += zip(columns, widths).map { $0.padding(toLength: max($1, $0.count), withPad: " ", startingAt: 0) }
                .joined(separator: " ").trimmingCharacters(in: .whitespaces) + "\n"
        }
        line(["measure", "value", "detail", "ceiling", "ratio", "target"])
        var rowObjects: [[String: Any]] = []
        for row in rows {
            let ratio = row.value.flatMap { value in row.ceiling.map { value / $0 } }
            var met: Bool?
            switch row.target {
            case .ratioAtLeast(let bound): met = ratio.map { $0 >= bound }
            case .valueBelow(let bound): met = row.value.map { $0 < bound }
            case .valueEquals(let bound): met = row.value.map { $0 == bound }
            case nil: met = nil
            }
            let targetText = row.target.map { "\($0.text) \(met.map { $0 ? "met" : "MISSED" } ?? "n/a")" } ?? ""
            line([
                row.name, "\(format(row.value)) \(row.unit)", row.detail,
                row.ceilingName.map { "\($0) \(format(row.ceiling))" } ?? "", ratio.map { String(format: "%.2f", $0) } ?? "", targetText,
            ])
            var object: [String: Any] = ["name": row.name, "unit": row.unit]
            object["value"] = row.value
            object["ceiling_name"] = row.ceilingName
            object["ceiling"] = row.ceiling
            object["ratio"] = ratio
            object["target"] = row.target?.text
            object["target_met"] = met
            rowObjects.append(object)
        }
        output += "\nceilings (same run): create script \(format(createCeiling))/s, -P16 \(format(createCeilingPipelined))/s; "
        output += "compare-and-set script \(format(completeCeiling))/s, -P16 \(format(completeCeilingPipelined))/s; "
        output += "HTTP /healthz \(format(httpCeiling)) req/s\n"
        if let seconds = number(drain, "seconds") {
            output += "after the POST runs the consumer needed \(format(seconds)) s more to reach lag 0 on the main topic\n"
        }
        // Offset resets mean the mock cluster dropped events before the consumer read them (never completed).
        let resets = ["offset-resets.count", "catchup-offset-resets.count"].map { name in
            (try? String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)).flatMap {
                Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
            } ?? 0
        }
        if resets[0] > 0 {
            output += "WARNING: the consumer fell so far behind during the POST runs that dev-kafka dropped events it had not read "
            output += "(\(resets[0]) offset resets); those transfers stay initiated\n"
        }
        if resets[1] > 0 { problems.append("catch-up: \(resets[1]) offset resets, events were dropped before they were consumed") }
        for problem in problems { output += "PROBLEM: \(problem)\n" }
        print(output, terminator: "")

        var document: [String: Any] = [
            "date": options.date,
            "machine": options.machine,
            "commit": options.commit,
            "mode": options.mode,
            "deployment": options.deployment,
            "rows": rowObjects,
            "ceilings": [
                "create_script_per_second": createCeiling as Any, "create_script_p16_per_second": createCeilingPipelined as Any,
                "compare_and_set_script_per_second": completeCeiling as Any,
                "compare_and_set_script_p16_per_second": completeCeilingPipelined as Any,
                "http_healthz_per_second": httpCeiling as Any,
            ].compactMapValues { $0 as? Double },
            "problems": problems,
        ]
        var phases: [String: Any] = [:]
        for (name, object) in [("post_c64", post64), ("post_c16", post16), ("get", get), ("http_ceiling", http),
                               ("end_to_end", endToEnd), ("catch_up", catchUp), ("drain_after_posts", drain), ("batch", batch),
                               ("post_c64_wait_replicas_0", post64WaitZero), ("post_c16_wait_replicas_0", post16WaitZero),
                               ("end_to_end_wait_replicas_0", endToEndWaitZero)] {
            phases[name] = object
        }
        phases["offset_resets_during_posts"] = resets[0]
        phases["offset_resets_during_catch_up"] = resets[1]
        phases["peak_rss_kilobytes"] = rssKilobytes
        phases["peak_rss_kilobytes_phases_1_to_3"] = serviceRSS
        phases["peak_rss_kilobytes_catch_up"] = catchUpServiceRSS
        document["phases"] = phases
        let data = try JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: options.out))
        if !problems.isEmpty { throw BenchError("\(problems.count) problem(s); see above") }
    }
}

/// A figure for the table: thousands separated, one decimal below 100, "n/a" when missing.
func format(_ value: Double?) -> String {
    guard let value else { return "n/a" }
    if abs(value) >= 100 {
        let formatter = NumberFormatter()
        formatter.numberStyle = .decimal
        formatter.maximumFractionDigits = 0
        return formatter.string(from: NSNumber(value: value)) ?? String(Int(value))
    }
    return String(format: abs(value) >= 10 ? "%.1f" : "%.2f", value)
}
