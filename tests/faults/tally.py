"""Bookkeeping of a fault class: every bad input tried, how it was answered, what the doc says."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Check:
    doc: str
    expected: tuple[str, ...]
    answers: Counter[str] = field(default_factory=Counter)


class Tally:
    """One fault class: every bad input tried, how it was answered, what the doc says."""

    def __init__(self, key: str, title: str) -> None:
        self.key = key
        self.title = title
        self.checks: dict[str, Check] = {}
        self.unexpected: list[str] = []
        self.http_5xx = 0
        self.notes: Counter[str] = Counter()

    def expect(self, check: str, doc: str, got: str, *ok: str) -> bool:
        return self.expect_many(check, doc, Counter({got: 1}), *ok)

    def expect_many(self, check: str, doc: str, answers: Counter[str], *ok: str) -> bool:
        answers = +answers  # answers counted zero times were not given
        entry = self.checks.setdefault(check, Check(doc, ok))
        entry.answers.update(answers)
        bad = {a: n for a, n in answers.items() if a not in ok}
        for answer, n in bad.items():
            if len(self.unexpected) < 40:
                times = f" (x{n})" if n > 1 else ""
                self.unexpected.append(
                    f"{check}: got {answer!r}{times}; {doc} says {' or '.join(ok)}"
                )
        return not bad

    @property
    def tried(self) -> int:
        return sum(sum(c.answers.values()) for c in self.checks.values())

    @property
    def documented(self) -> int:
        return sum(n for c in self.checks.values() for a, n in c.answers.items() if a in c.expected)

    def as_json(self) -> dict[str, Any]:
        return {
            "class": self.key,
            "title": self.title,
            "tried": self.tried,
            "documented": self.documented,
            "unexpected": self.tried - self.documented,
            "http5xx": self.http_5xx,
            "checks": {
                name: {
                    "doc": c.doc,
                    "expected": list(c.expected),
                    "answers": dict(c.answers),
                }
                for name, c in self.checks.items()
            },
            "unexpectedDetails": self.unexpected,
            "notes": dict(self.notes),
        }


@dataclass
class Identity:
    """What one attacker key saw, to compare with what the server recorded about it."""

    tally: Tally
    refused: Counter[str] = field(default_factory=Counter)  # over the socket
    acks: int = 0
    # Results it got accepted over HTTP. Its 401s, and 409s for assignments that are
    # not live (no input digest to check the signature by), are not counted.
    http_accepted: int = 0
    # Closed for not reading (4008): answers still queued were dropped, by design,
    # so it saw fewer answers than the server counted.
    dropped_unread: bool = False


def agree(ident: Identity, seen: tuple[int, int], counted: tuple[int, int] | None) -> bool:
    """The server's counts match what the miner saw (or exceed it, for a dropped reader)."""
    if counted is None or seen == counted:
        return counted is not None
    return ident.dropped_unread and all(c >= s for s, c in zip(seen, counted, strict=True))
