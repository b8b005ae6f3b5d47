"""The ``reverse`` kind: reverse each word. A third-party plugin in miniature.

It lives in its own distribution and reaches Qortex only through the
``qortex.kinds`` entry point group, which is the whole point: if this loads,
serves and completes tasks, so will anyone's kind. It has no browser module,
so only CLI miners (which install it too) take its work.
"""

from __future__ import annotations

from typing import Any

from qortex.errors import InvalidInput

MAX_WORDS = 20


class ReverseKind:
    name = "reverse"
    browser_module = None

    def validate(self, task_input: Any) -> list[str]:
        """Accept ``{"words": [...]}``: 1 to 20 non-empty strings."""
        if not isinstance(task_input, dict) or "words" not in task_input:
            raise InvalidInput("task input must be an object with a 'words' list", field="words")
        words = task_input["words"]
        if not isinstance(words, list) or not 1 <= len(words) <= MAX_WORDS:
            raise InvalidInput(f"words must be a list of 1 to {MAX_WORDS} strings", field="words")
        for i, word in enumerate(words):
            if not isinstance(word, str) or not word:
                raise InvalidInput(f"words[{i}] must be a non-empty string", field=f"words[{i}]")
        return list(words)

    def split(self, task_input: list[str]) -> list[str]:
        """One microtask per word."""
        return list(task_input)

    def compute(self, microtask_input: str) -> str:
        return microtask_input[::-1]

    def agree(self, a: Any, b: Any) -> bool:
        """Reversal is exact, so only identical answers agree."""
        return a == b

    def assemble(self, task_input: list[str], outputs: list[Any]) -> list[str]:
        return list(outputs)


def create(settings: Any) -> ReverseKind:
    """The factory the entry point names; this kind reads no settings."""
    return ReverseKind()
