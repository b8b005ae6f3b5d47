"""What each adversary answers, per the threat model of docs/trust.md.

A strategy sees the microtask input, the true answer (adversaries can compute
it as cheaply as anyone) and what the swarm shares, and returns the output to
send, or ``None`` to keep the copy and never answer. Lies are deterministic
where colluders must agree: every colluder derives the same wrong answer
from the same truth.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from qortex.kinds.matmul import decode_matrix, encode_matrix
from qortex.kinds.sentiment import LABELS

#: Results an on-off adversary answers honestly before it starts lying.
ONOFF_HONEST = 8

STRATEGIES = (
    "collude",
    "lazy",
    "random",
    "onoff",
    "memory",
    "sybil-net",
    "sybil-spread",
    "hoard",
)


@dataclass
class Shared:
    """What all adversaries of one cell know together: every input any of them was sent."""

    rng: random.Random
    seen: dict[bytes, str] = field(default_factory=dict)  # input bytes -> first microtask id


def collude(kind: str, truth: Any) -> Any:
    """The one wrong answer every colluder gives: the next label, or the tile plus one."""
    if kind == "sentiment":
        return LABELS[(LABELS.index(truth) + 1) % len(LABELS)]
    return encode_matrix(decode_matrix(truth, "truth") + 1.0)


def _shape(value: Any) -> tuple[int, int]:
    return value["a"]["rows"], value["b"]["cols"]


def lazy(kind: str, value: Any) -> Any:
    """A constant that costs nothing: always neutral, or a tile of zeros."""
    if kind == "sentiment":
        return "neutral"
    return encode_matrix(np.zeros(_shape(value)))


def noise(kind: str, value: Any, rng: random.Random) -> Any:
    if kind == "sentiment":
        return rng.choice(LABELS)
    rows, cols = _shape(value)
    return encode_matrix(np.array([[rng.gauss(0, 1) for _ in range(cols)] for _ in range(rows)]))


def answer(
    strategy: str,
    kind: str,
    raw_input: bytes,
    microtask_id: str,
    truth: Any,
    answered: int,
    shared: Shared,
) -> Any:
    """The output an adversary sends for one copy; ``None``: hold it, never answer.

    ``answered`` is how many results this identity has sent before.
    """
    if strategy == "hoard":
        return None
    if strategy == "lazy":
        return lazy(kind, msgspec.json.decode(raw_input))
    if strategy == "random":
        return noise(kind, msgspec.json.decode(raw_input), shared.rng)
    if strategy == "onoff":
        return truth if answered < ONOFF_HONEST else collude(kind, truth)
    if strategy == "memory":
        # A replica of a microtask already seen is not a repeat; the same input
        # under another microtask is re-issued work, most likely a check.
        first = shared.seen.setdefault(raw_input, microtask_id)
        return truth if first != microtask_id else collude(kind, truth)
    return collude(kind, truth)  # collude and both Sybil strategies
