"""Finding task kinds: every entry point in the ``qortex.kinds`` group, built-ins included.

An entry point names a factory that takes the settings and returns a kind, so
a kind can read its own limits. Built-in kinds are declared in our own
``pyproject.toml`` and load through exactly this path.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from qortex.core.kinds import KindRegistry
from qortex.errors import ConfigError
from qortex.settings import Settings

GROUP = "qortex.kinds"


def load_kinds(settings: Settings) -> KindRegistry:
    registry = KindRegistry()
    for ep in sorted(entry_points(group=GROUP), key=lambda ep: ep.name):
        try:
            factory = ep.load()
            kind = factory(settings)
        except Exception as exc:
            raise ConfigError(f"task kind plugin {ep.name!r} ({ep.value}) failed: {exc}") from exc
        if kind.name != ep.name:
            raise ConfigError(f"entry point {ep.name!r} builds a kind named {kind.name!r}")
        registry.register(kind)
    if not list(registry):
        raise ConfigError("no task kinds installed; is the qortex package installed?")
    return registry
