// transfer-bench: load generation and measurement helpers for scripts/bench (see README, "Performance").
// Each subcommand prints its result on stdout (JSON or shell assignments) and progress on stderr.

import Foundation

let usage = """
    usage: transfer-bench <command> [--option value ...]
      print-scripts    --scripts-source FILE
      prepare-ceilings --redis-port P --scripts-source FILE --records N
      fill-catchup     --redis-port P --redis-db N --bootstrap HOSTS --topic T --count N --state FILE
      watch-catchup    --redis-port P --redis-db N --bootstrap HOSTS --group G --state FILE [--timeout-seconds S]
      wait-lag         --bootstrap HOSTS --topic T --group G [--timeout-seconds S]
      e2e              --http-port P --redis-port P --rate R --duration S [--connections C]
      report           --dir DIR --out FILE [--mode M --date D --machine M --commit C]
    """

let commands: [String: (Options) throws -> Void] = [
    "print-scripts": PrintScripts.run,
    "prepare-ceilings": CeilingPreparation.run,
    "fill-catchup": CatchUpFill.run,
    "watch-catchup": CatchUpWatch.run,
    "wait-lag": WaitForLag.run,
    "e2e": EndToEnd.run,
    "report": Report.run,
]

let arguments = CommandLine.arguments.dropFirst()
guard let name = arguments.first, let command = commands[name] else {
    FileHandle.standardError.write(Data((usage + "\n").utf8))
    exit(2)
}
do {
    try command(try Options(arguments.dropFirst()))
} catch let error as BenchError {
    log("\(name): \(error)")
    exit(error.isUsage ? 2 : 1)
} catch {
    log("\(name): \(error)")
    exit(1)
}
