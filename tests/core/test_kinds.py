"""The per-app kind registry."""

from __future__ import annotations

from typing import Any

import pytest

from qortex.core.kinds import Kind, KindRegistry
from qortex.errors import ConfigError, InvalidInput
from qortex.kinds.sentiment import SentimentKind


class Echo:
    browser_module = None

    def __init__(self, name: str = "echo") -> None:
        self.name = name

    def validate(self, task_input: Any) -> Any:
        return task_input

    def split(self, task_input: Any) -> list[Any]:
        return list(task_input)

    def compute(self, microtask_input: Any) -> Any:
        return microtask_input

    def agree(self, a: Any, b: Any) -> bool:
        return a == b

    def assemble(self, task_input: Any, outputs: list[Any]) -> Any:
        return outputs


class NoAgree:
    name = "broken"
    browser_module = None

    def validate(self, task_input: Any) -> Any:
        return task_input

    def split(self, task_input: Any) -> list[Any]:
        return [task_input]

    def compute(self, microtask_input: Any) -> Any:
        return microtask_input

    def assemble(self, task_input: Any, outputs: list[Any]) -> Any:
        return outputs


class NoName:
    def validate(self, task_input: Any) -> Any:
        return task_input

    def split(self, task_input: Any) -> list[Any]:
        return [task_input]

    def compute(self, microtask_input: Any) -> Any:
        return microtask_input

    def agree(self, a: Any, b: Any) -> bool:
        return a == b

    def assemble(self, task_input: Any, outputs: list[Any]) -> Any:
        return outputs


def test_register_and_get() -> None:
    echo = Echo()
    registry = KindRegistry()
    registry.register(echo)
    assert registry.get("echo") is echo
    assert "echo" in registry
    assert "other" not in registry


def test_constructor_registers_all_and_iterates_sorted() -> None:
    sentiment = SentimentKind()
    registry = KindRegistry([Echo("zeta"), sentiment, Echo("alpha")])
    assert list(registry) == ["alpha", "sentiment", "zeta"]
    assert registry.get("sentiment") is sentiment


def test_empty_registry() -> None:
    assert list(KindRegistry()) == []
    assert list(KindRegistry(None)) == []


def test_real_kinds_implement_the_protocol() -> None:
    assert isinstance(SentimentKind(), Kind)
    assert isinstance(Echo(), Kind)


def test_duplicate_name_raises_config_error() -> None:
    registry = KindRegistry([Echo("same")])
    with pytest.raises(ConfigError, match="two task kinds are named 'same'"):
        registry.register(Echo("same"))
    # the first one stays
    assert list(registry) == ["same"]


def test_duplicate_in_constructor_raises_config_error() -> None:
    with pytest.raises(ConfigError, match="sentiment"):
        KindRegistry([SentimentKind(), SentimentKind()])


def test_unknown_kind_lists_known_kinds() -> None:
    registry = KindRegistry([Echo("b"), Echo("a")])
    with pytest.raises(InvalidInput) as info:
        registry.get("nope")
    assert info.value.message == "unknown task kind 'nope'; known kinds: a, b"
    assert info.value.detail == {"field": "kind"}
    assert info.value.status == 400
    assert info.value.__cause__ is None


def test_unknown_kind_in_empty_registry() -> None:
    with pytest.raises(InvalidInput, match="unknown task kind 'x'"):
        KindRegistry().get("x")


@pytest.mark.parametrize("obj", [NoAgree(), NoName(), object(), "sentiment", 42, None])
def test_objects_lacking_the_interface_are_refused(obj: object) -> None:
    registry = KindRegistry()
    with pytest.raises(ConfigError, match="does not implement the Kind interface"):
        registry.register(obj)  # type: ignore[arg-type]
    assert list(registry) == []
