"""Sets of free miners with O(1) add, remove and random choice, alone or by network."""

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

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def get(self, key: str) -> T | None:
        i = self._index.get(key)
        return None if i is None else self._items[i]

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


class _Members(Protocol):
    id: str
    network: str


M = TypeVar("M", bound=_Members)


class _Network(Generic[M]):
    __slots__ = ("id", "members")

    def __init__(self, network: str) -> None:
        self.id = network
        self.members: RandomSet[M] = RandomSet()


class ByNetwork(Generic[M]):
    """Free miners grouped by network: a random network first, then a random miner in it.

    A crowd of identities on one network cannot hide the other networks from a
    pick (a scan over miners would have to step over the whole crowd), and it
    is picked as often as any one network, not once per identity.
    """

    __slots__ = ("_count", "_networks")

    def __init__(self) -> None:
        self._networks: RandomSet[_Network[M]] = RandomSet()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, miner: M) -> None:
        group = self._networks.get(miner.network)
        if group is None:
            group = _Network[M](miner.network)
            self._networks.add(group)
        if miner.id not in group.members:
            group.members.add(miner)
            self._count += 1

    def discard(self, miner: M) -> None:
        group = self._networks.get(miner.network)
        if group is None or miner.id not in group.members:
            return
        group.members.discard(miner)
        self._count -= 1
        if not len(group.members):
            self._networks.discard(group)

    def pick(
        self, rng: random.Random, ok: Callable[[M], bool], taken: set[str], tries: int
    ) -> M | None:
        """A random member passing ``ok`` on a network not in ``taken``.

        ``tries`` >= the number of members that fail ``ok``: then at most
        ``len(taken) + tries`` networks hold none that passes, and a scan from
        a random start finds one whenever one exists.
        """
        found: list[M] = []

        def usable(group: _Network[M]) -> bool:
            if group.id in taken:
                return False
            miner = group.members.pick(rng, ok, tries)
            if miner is not None:
                found.append(miner)
            return miner is not None

        return found[0] if self._networks.pick(rng, usable, len(taken) + tries) else None
