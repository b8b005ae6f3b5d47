"""A set of free miners with O(1) add, remove and uniform random choice."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class _Named(Protocol):
    id: str


T = TypeVar("T", bound=_Named)


class RandomSet(Generic[T]):
    """A set with O(1) add, remove and uniform choice."""

    __slots__ = ("_index", "_items")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._items)

    def add(self, miner: T) -> None:
        if miner.id not in self._index:
            self._index[miner.id] = len(self._items)
            self._items.append(miner)

    def discard(self, miner: T) -> None:
        i = self._index.pop(miner.id, None)
        if i is None:
            return
        last = self._items.pop()
        if last is not miner:
            self._items[i] = last
            self._index[last.id] = i

    def pick(self, rng: random.Random, ok: Callable[[T], bool], tries: int) -> T | None:
        """A random member passing ``ok``, looking at no more than ``tries`` + 1 members.

        Callers pass ``tries`` >= the number of members that fail ``ok``, so a
        scan from a random start finds one whenever one exists.
        """
        n = len(self._items)
        if not n:
            return None
        start = rng.randrange(n)
        for step in range(min(n, tries + 1)):
            miner = self._items[(start + step) % n]
            if ok(miner):
                return miner
        return None
