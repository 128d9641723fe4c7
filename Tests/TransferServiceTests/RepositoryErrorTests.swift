import RedisClient
import Testing
@testable import TransferService

/// Error replies become the right answer: found by the random fault schedule, where a restarted Redis answering
/// `LOADING` made creates fail with 500.
@Suite struct RepositoryErrorTests {
    @Test(arguments: [
        "LOADING Redis is loading the dataset in memory", "BUSY Redis is busy running a script", "READONLY You can't write against a read only replica.",
        "MASTERDOWN Link with MASTER is down", "CLUSTERDOWN The cluster is down", "TRYAGAIN Multiple keys request during rehashing of slot",
    ])
    func aServerThatRefusesForNowIsUnavailableAndNothingWasChanged(reply: String) {
        let error = RepositoryError(reply: .error(reply), of: "create")
        guard case .unavailable(let redisError) = error else {
            Issue.record("\(reply) became \(error)")
            return
        }
        #expect(!redisError.mayHaveExecuted)
        let response = APIError(error).response
        #expect(response.status == 503)
        #expect(String(decoding: response.body, as: UTF8.self).contains("nothing was changed"))
    }

    @Test func refusedCredentialsAreAConfigurationProblem() {
        let response = APIError(RepositoryError(reply: .error("NOAUTH Authentication required."), of: "GET")).response
        #expect(response.status == 503)
        #expect(String(decoding: response.body, as: UTF8.self).contains("dependency-authentication"))
    }

    @Test func otherErrorRepliesAreOurFault() {
        #expect(APIError(RepositoryError(reply: .error("WRONGTYPE Operation against a key"), of: "GET")).response.status == 500)
    }
}
