import Testing
@testable import TransferService

/// A transfer that stays pending is published again at growing intervals, between one and eight reconcile waits.
@Suite struct ReconcileScheduleTests {
    @Test func theNextClaimComesAfterTheTransfersAgeWithinBounds() {
        let wait: Int64 = 500
        let claimed: Int64 = 1_000_000
        // Claimed one wait after its creation: the next claim one wait later.
        #expect(Sweeper.nextClaim(claimedAt: claimed, createdAt: claimed - 500, reconcileAfter: wait) == claimed + 500)
        // Three seconds old: three seconds later.
        #expect(Sweeper.nextClaim(claimedAt: claimed, createdAt: claimed - 3_000, reconcileAfter: wait) == claimed + 3_000)
        // Old: at most eight waits.
        #expect(Sweeper.nextClaim(claimedAt: claimed, createdAt: claimed - 900_000, reconcileAfter: wait) == claimed + 4_000)
        // Created "later" than claimed (clocks disagree) or without a readable time: one wait.
        #expect(Sweeper.nextClaim(claimedAt: claimed, createdAt: claimed + 60_000, reconcileAfter: wait) == claimed + 500)
        #expect(Sweeper.nextClaim(claimedAt: claimed, createdAt: nil, reconcileAfter: wait) == claimed + 500)
    }
}
