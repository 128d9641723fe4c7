import RedisClient
import Testing
@testable import TransferService
import Transfers

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

    /// In a cluster the account-index entries of a create go to other nodes than its script: a node whose replica
    /// is away must not fail the creates whose own node confirmed them (and must fail those it holds).
    @Test func aCreateIsJudgedByTheReplicasOfItsOwnNode() {
        let id = TransferID.random()
        let replies: [Result<RedisReply, RedisError>] = [.success(.array([.integer(1)])), .success(.integer(1)), .success(.integer(1))]
        func outcome(_ byCommand: [Int]) -> String {
            let response = RedisResponse(replies: replies, acknowledgedReplicas: byCommand.min(), acknowledgedReplicasByCommand: byCommand)
            return "\(TransferRepository.createOutcome(response, id: id, required: 1))"
        }
        #expect(outcome([1, 0, 0]) == "\(TransferRepository.CreateReply.decided(.success(.created)))")
        #expect(outcome([0, 1, 1]) == "\(TransferRepository.CreateReply.decided(.failure(.notReplicated(id: id, acknowledged: 0, required: 1))))")
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
