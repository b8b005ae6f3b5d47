"""Each miner's standing: checks passed, earned slots, status; and what follows from it.

Standing is earned only through checks a miner cannot tell from real work,
and lost by failing one (a ban) or by letting copies go (fewer slots). The
ledger is pure bookkeeping; the coordinator persists what it reports.
"""

from __future__ import annotations

from dataclasses import dataclass

from qortex.core.credibility import SUSPECT_ERROR, VERIFIED_ERROR, error_rate, reputation

ACTIVE = "active"
BANNED = "banned"
VERIFIED = "verified"
STATUSES = (ACTIVE, BANNED, VERIFIED)

#: A reputation move at least this large is written to the history and announced.
REPORT_STEP = 25


@dataclass(slots=True)
class Standing:
    passes: int = 0
    status: str = ACTIVE
    allowance: int = 1  # slots earned; declared slots are only a ceiling
    reported: int = -1  # the reputation last written to the history
    rated: int = -1  # the passes ``error`` was worked out for
    error: float = 1.0


@dataclass(frozen=True, slots=True)
class ReputationChange:
    """A reputation change worth a history row and a ``miner.reputation`` event."""

    miner_id: str
    reputation: int
    passes: int
    reason: str


class Ledger:
    def __init__(self, fault_fraction: float) -> None:
        self.fault_fraction = fault_fraction
        self._standing: dict[str, Standing] = {}
        self._suspect: dict[str, float] = {}  # network -> until when it is suspect

    def load(self, miner_id: str, passes: int, status: str, allowance: int) -> None:
        standing = Standing(passes, status, max(1, allowance))
        standing.reported = self.reputation(miner_id, standing)
        self._standing[miner_id] = standing

    def get(self, miner_id: str) -> Standing:
        standing = self._standing.get(miner_id)
        if standing is None:
            standing = self._standing[miner_id] = Standing()
        return standing

    def forget(self, miner_id: str) -> None:
        """Drop a new miner's record from memory once it leaves (the store keeps it)."""
        standing = self._standing.get(miner_id)
        if standing is not None and standing.status == ACTIVE and standing.passes == 0:
            del self._standing[miner_id]

    def error(self, miner_id: str) -> float:
        standing = self._standing.get(miner_id)
        if standing is None:
            return self.fault_fraction
        if standing.status == BANNED:
            return 1.0
        if standing.status == VERIFIED:
            return VERIFIED_ERROR
        if standing.passes != standing.rated:  # worked out once per pass, not per result
            standing.rated = standing.passes
            standing.error = error_rate(standing.passes, self.fault_fraction)
        return standing.error

    def vote_error(self, miner_id: str, network: str, now: float) -> float:
        """What a result of this miner counts as now: its error rate, or a coin toss
        while its network is suspect (the operator's verified machines excepted)."""
        error = self.error(miner_id)
        if error <= VERIFIED_ERROR or self._suspect.get(network, 0.0) <= now:
            return error
        return max(error, SUSPECT_ERROR)

    def suspect(self, network: str, until: float) -> None:
        """A liar on ``network`` was banned: its other identities are worth nothing until then."""
        if network:
            self._suspect[network] = max(until, self._suspect.get(network, 0.0))

    def reputation(self, miner_id: str, standing: Standing | None = None) -> int:
        standing = standing or self._standing.get(miner_id) or Standing()
        if standing.status == BANNED:
            return 0
        if standing.status == VERIFIED:
            return 1000
        return reputation(error_rate(standing.passes, self.fault_fraction), self.fault_fraction)

    def banned(self, miner_id: str) -> bool:
        standing = self._standing.get(miner_id)
        return standing is not None and standing.status == BANNED

    def passed(self, miner_id: str, slots: int) -> ReputationChange | None:
        """A check passed: more credibility and one more slot, up to the declared ``slots``."""
        standing = self.get(miner_id)
        standing.passes += 1
        standing.allowance = min(max(1, slots), standing.allowance + 1)
        return self._report(miner_id, standing, "check passed")

    def let_go(self, miner_id: str) -> None:
        """The miner let a copy expire or dropped it: its earned slots halve."""
        standing = self.get(miner_id)
        standing.allowance = max(1, standing.allowance // 2)

    def ban(self, miner_id: str, reason: str) -> ReputationChange:
        standing = self.get(miner_id)
        standing.status = BANNED
        standing.allowance = 1
        standing.reported = 0
        return ReputationChange(miner_id, 0, standing.passes, reason)

    def set_status(self, miner_id: str, status: str, reason: str) -> ReputationChange:
        standing = self.get(miner_id)
        standing.status = status
        standing.reported = self.reputation(miner_id, standing)
        return ReputationChange(miner_id, standing.reported, standing.passes, reason)

    def _report(self, miner_id: str, standing: Standing, reason: str) -> ReputationChange | None:
        now = self.reputation(miner_id, standing)
        if abs(now - standing.reported) < REPORT_STEP:
            return None
        standing.reported = now
        return ReputationChange(miner_id, now, standing.passes, reason)
