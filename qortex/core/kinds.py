"""The contract every task kind fulfils, and the per-app registry of kinds.

A kind turns a client's task input into microtasks, computes one microtask,
says when two results agree, and assembles the task's output. Built-in kinds
and third-party ones (entry point group ``qortex.kinds``) register the same
way. The registry belongs to one app instance: tests build as many as they like.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from importlib.resources.abc import Traversable
from typing import Any, Protocol, runtime_checkable

from qortex.errors import ConfigError, InvalidInput


@runtime_checkable
class Kind(Protocol):
    #: The name clients put in ``{"kind": ...}`` and miners list in ``hello``.
    name: str

    #: The JavaScript module browsers compute with, served at ``/kinds/<name>.js``;
    #: ``None`` if browsers cannot run it. Files beside it are served at
    #: ``/kinds/<name>/<file>`` only if named in an optional ``browser_files`` tuple.
    browser_module: Traversable | None

    def validate(self, task_input: Any) -> Any:
        """Check a client's input and return it normalised; raise ``InvalidInput`` if wrong."""
        ...

    def split(self, task_input: Any) -> list[Any]:
        """The microtask inputs (JSON values) of a validated task input, in order."""
        ...

    def compute(self, microtask_input: Any) -> Any:
        """A microtask's output (a JSON value): what an honest miner returns."""
        ...

    def agree(self, a: Any, b: Any) -> bool:
        """Whether two outputs of the same microtask count as the same answer."""
        ...

    def assemble(self, task_input: Any, outputs: list[Any]) -> Any:
        """The task's output from its decided microtask outputs, in order."""
        ...


def checker_of(kind: Kind) -> Callable[[Any, Any], bool] | None:
    """A kind's optional cheap checker, ``check(microtask_input, output) -> bool``.

    A checker says whether an output is right without trusting any miner:
    recomputation when computing is cheap, a randomised check (Freivalds) when
    verifying is cheaper than computing. Kinds without one rely on votes and
    known-answer items.
    """
    check = getattr(kind, "check", None)
    return check if callable(check) else None


def preparer_of(kind: Kind) -> Callable[[Any], Any]:
    """A kind's optional ``prepare(microtask_input)``, or the identity.

    What it returns is what ``check`` gets as its input: worked out once per
    microtask and kept with it (a matrix decoded from its text, say), rather
    than once for every result checked.
    """
    prepare = getattr(kind, "prepare", None)
    return prepare if callable(prepare) else _same


def _same(value: Any) -> Any:
    return value


#: Credit per accepted result of a kind that declares no ``cost``.
DEFAULT_COST = 1.0


def cost_of(kind: Kind) -> float:
    """A kind's optional ``cost`` per microtask: the volunteer credit one accepted result earns."""
    cost = getattr(kind, "cost", DEFAULT_COST)
    return float(cost) if isinstance(cost, int | float) and cost > 0 else DEFAULT_COST


class KindRegistry:
    def __init__(self, kinds: list[Kind] | None = None) -> None:
        self._kinds: dict[str, Kind] = {}
        for kind in kinds or []:
            self.register(kind)

    def register(self, kind: Kind) -> None:
        if not isinstance(kind, Kind):
            raise ConfigError(f"{kind!r} does not implement the Kind interface")
        if kind.name in self._kinds:
            raise ConfigError(f"two task kinds are named {kind.name!r}")
        self._kinds[kind.name] = kind

    def get(self, name: str) -> Kind:
        try:
            return self._kinds[name]
        except KeyError:
            known = ", ".join(sorted(self._kinds))
            raise InvalidInput(
                f"unknown task kind {name!r}; known kinds: {known}", field="kind"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._kinds))
