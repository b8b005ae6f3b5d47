"""The work a cell submits, and the truth it is judged against.

The harness is the judge, not a miner: it builds each task's microtasks with
the kind's own ``validate`` and ``split`` and computes every true answer with
the kind's ``compute``, in its own process, before anything is submitted.

Inputs are unique (a random tag per tweet, fresh random matrices), so an
adversary that remembers inputs only recognises what the coordinator itself
re-issues: gold items and any spot check built from old work.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qortex.kinds.matmul import MatmulKind, encode_matrix
from qortex.kinds.sentiment import NEGATORS, SentimentKind, load_lexicon

#: Microtasks per task; a task with gold carries ``round(gold * PER_TASK)`` more.
PER_TASK = 20
#: Matmul tasks: A is ROWS x INNER, B is INNER x COLS, in TILE x TILE tiles: 5 x 4 = 20 tiles.
TILE, ROWS, INNER, COLS = 8, 40, 24, 32

_FILLER = (
    "the", "a", "today", "my", "this", "that", "was", "is", "with", "phone", "coffee",
    "train", "weather", "movie", "update", "team", "and", "it", "again", "so",
)  # fmt: skip


@dataclass
class Task:
    """One task as submitted, with the true answer of each of its real microtasks."""

    body: dict[str, Any]
    truth: list[Any]
    gold: int = 0
    task_id: str = ""
    submitted_at: float = 0.0
    refused: str = ""  # why the server refused it, if it did


@dataclass
class Workload:
    kind_name: str
    rng: random.Random
    sentiment: SentimentKind = field(default_factory=lambda: SentimentKind(max_tweets=1000))
    matmul: MatmulKind = field(default_factory=lambda: MatmulKind(tile=TILE))

    def __post_init__(self) -> None:
        self._words = sorted(load_lexicon())
        self._negators = sorted(NEGATORS)
        self._np = np.random.default_rng(self.rng.getrandbits(64))
        self._serial = 0

    @property
    def kind(self) -> SentimentKind | MatmulKind:
        return self.sentiment if self.kind_name == "sentiment" else self.matmul

    def task(self, gold_fraction: float = 0.0, target_error: float | None = None) -> Task:
        """A fresh task of ``PER_TASK`` microtasks, with gold items when asked."""
        gold_count = round(gold_fraction * PER_TASK)
        if self.kind_name == "sentiment":
            tweets = [self.tweet() for _ in range(PER_TASK)]
            task_input: Any = {"tweets": tweets}
            truth = [self.sentiment.compute(t) for t in tweets]
            gold = [self._sentiment_gold() for _ in range(gold_count)]
        else:
            a = self._np.normal(size=(ROWS, INNER))
            b = self._np.normal(size=(INNER, COLS))
            task_input = {"a": encode_matrix(a), "b": encode_matrix(b), "tile": TILE}
            tiles = self.matmul.split(self.matmul.validate(task_input))
            truth = [self.matmul.compute(t) for t in tiles]
            gold = [self._matmul_gold() for _ in range(gold_count)]
        body: dict[str, Any] = {"kind": self.kind_name, "input": task_input}
        if gold:
            body["gold"] = gold
        if target_error is not None:
            body["targetError"] = target_error
        return Task(body, truth, len(gold))

    def tweet(self) -> str:
        """A short post mixing lexicon words, fillers and now and then a negator.

        The trailing ``#<number>`` makes every tweet unique without changing
        its label: digits and ``#`` are not tokens.
        """
        self._serial += 1
        words = self.rng.choices(_FILLER, k=self.rng.randint(3, 7))
        for _ in range(self.rng.randint(0, 3)):
            at = self.rng.randint(0, len(words))
            words.insert(at, self.rng.choice(self._words))
            if self.rng.random() < 0.25:
                words.insert(at, self.rng.choice(self._negators))
        return " ".join(words) + f" #{self.rng.getrandbits(40)}{self._serial}"

    def _sentiment_gold(self) -> dict[str, Any]:
        tweet = self.tweet()
        return {"input": tweet, "output": self.sentiment.compute(tweet)}

    def _matmul_gold(self) -> dict[str, Any]:
        """A tile-shaped known-answer item, placed somewhere in the task's grid of tiles."""
        a = self._np.normal(size=(TILE, INNER))
        b = self._np.normal(size=(INNER, TILE))
        item = {
            "i": self.rng.randrange(ROWS // TILE),
            "j": self.rng.randrange(COLS // TILE),
            "a": encode_matrix(a),
            "b": encode_matrix(b),
        }
        return {"input": item, "output": self.matmul.compute(item)}
