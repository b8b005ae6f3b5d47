"""How far a miner's word can be trusted, and how sure a group of agreeing results makes us.

This is Sarmenta's credibility-based fault tolerance, in plain code with no
clock, socket or file inside:

* A miner's *error rate* is an upper bound on the probability that its next
  result is wrong. A new identity gets the assumed fraction of liars ``f``:
  opening identities buys nothing better than that. Each check it passes (a
  recomputation, a randomised check, a known-answer item: work it cannot tell
  from any other) lowers the bound as ``f / (1 + (1 - f) * e * k)`` after ``k``
  passes. The ``e`` comes from the saboteur's best strategy against random
  checks: lying at rate ``s`` survives ``k`` checks with probability
  ``(1 - s)^k``, and ``s (1 - s)^k`` is largest at ``1 / e(k + 1)``. A single
  failed check bans the miner, so there is no rate for liars.
* A microtask's results fall into groups that agree. The probability that a
  group holds the right answer is, up to normalisation, the probability that
  every member of it is right and every other result wrong; the remaining
  possibility is that every result is wrong. Results from one network (a /24
  or /48, as :func:`network_of` says) count once per group, with the best
  rate among them, so many identities on one address weigh as one.
* A result that passed a check is worth the checker's own error rate.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: The probability that a check passes a wrong result (recomputation: none;
#: Freivalds with 40 rounds of 0/1 vectors: 2^-40); counted as this, not 0,
#: so that the logarithms below stay finite.
CHECKED_ERROR = 1e-12
#: The error rate of a machine the operator vouches for (miner status ``verified``).
VERIFIED_ERROR = 1e-6
#: What a vote from a suspect network counts as: a coin toss, which moves no
#: decision either way. A network is suspect once a liar on it was banned: a
#: liar's next identity from the same address inherits that, not a clean slate.
SUSPECT_ERROR = 0.5
#: How long a network stays suspect after a ban on it.
SUSPECT_SECONDS = 86_400.0


@dataclass(frozen=True, slots=True)
class Vote:
    """One counted result, as the decision rule sees it."""

    miner_id: str
    network: str
    error: float  # the voter's error rate when counted (CHECKED_ERROR if it passed a check)


def error_rate(passes: int, fault_fraction: float) -> float:
    """The error bound of a miner that has passed ``passes`` checks and failed none."""
    return fault_fraction / (1.0 + (1.0 - fault_fraction) * math.e * max(0, passes))


def passes_needed(target: float, fault_fraction: float) -> int:
    """How many checks a miner must pass before its unchecked word alone meets ``target``."""
    if target >= fault_fraction:
        return 0
    return math.ceil((fault_fraction / target - 1.0) / ((1.0 - fault_fraction) * math.e))


def reputation(error: float, fault_fraction: float) -> int:
    """The error rate as VeriFrame's 0-1000 score: the share of the initial doubt removed."""
    if fault_fraction <= 0:
        return 1000
    return max(0, min(1000, round(1000 * (1.0 - error / fault_fraction))))


def check_probability(error: float, target: float, rate: float) -> float:
    """How likely one result of a miner is to be checked.

    Every result is checked until the miner's own word meets the target, then a
    random ``rate`` of them, so liars who built a record are still caught.
    """
    return 1.0 if error > target else rate


def network_of(address: str, miner_id: str) -> str:
    """The network a miner's address belongs to: IPv4 /24, IPv6 /48.

    Loopback connections are the operator's own machine: each counts as its
    own network, so several local miners can vote as independent machines.
    So does a connection whose address is not an IP address (a Unix socket).
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return f"local:{miner_id}"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return f"local:{miner_id}"
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _merged(votes: Iterable[Vote]) -> dict[str, float]:
    """Per network, the lowest error rate among its votes."""
    best: dict[str, float] = {}
    for vote in votes:
        error = min(max(vote.error, CHECKED_ERROR), 1.0 - CHECKED_ERROR)
        if error < best.get(vote.network, 1.0):
            best[vote.network] = error
    return best


def _logsumexp(values: Sequence[float]) -> float:
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def _alone(votes: Sequence[Vote]) -> float:
    """The error of the only group: ``1 / (1 + Π (1 - e) / e)``, without logarithms.

    With a single group, P(right) / P(all wrong) is a product of odds; this is
    the common case (results that agree), so it skips the general form's
    logarithms. A product that overflows to infinity means an error of 0.
    """
    if len(votes) == 1:
        return min(max(votes[0].error, CHECKED_ERROR), 1.0 - CHECKED_ERROR)
    odds = 1.0
    for error in _merged(votes).values():
        odds *= (1.0 - error) / error
    return 1.0 / (1.0 + odds)


def group_errors(groups: Sequence[Sequence[Vote]]) -> list[float]:
    """For each group of agreeing votes, the probability that its answer is wrong."""
    if len(groups) <= 1:
        return [_alone(group) for group in groups]
    merged = [_merged(group) for group in groups]
    wrong = [sum(math.log(e) for e in m.values()) for m in merged]
    right = [sum(math.log1p(-e) for e in m.values()) for m in merged]
    all_wrong = sum(wrong)
    # log P(group i right, every other group wrong)
    scores = [right[i] + all_wrong - wrong[i] for i in range(len(groups))]
    total = _logsumexp([*scores, all_wrong])
    return [-math.expm1(score - total) for score in scores]


def projected_error(votes: Sequence[Vote], others: Sequence[Sequence[Vote]]) -> float:
    """The error the first group would have if ``votes`` joined it; ``others`` disagree."""
    return group_errors([votes, *others])[0]
