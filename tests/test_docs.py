"""The docs keep up with the code: every setting, route, event and frame is documented."""

from __future__ import annotations

import re
import tomllib
from dataclasses import fields
from pathlib import Path

import msgspec
import pytest
from starlette.routing import Mount, Route, WebSocketRoute

from qortex.events import EVENT_TYPES
from qortex.protocol import messages as m
from qortex.settings import SEED_ALIASES, SEED_UNNEEDED, Settings
from qortex.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PROTOCOL = ROOT / "docs" / "protocol.md"


def test_readme_starts_with_the_two_setup_commands() -> None:
    first_block = README.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert first_block[0].startswith("pip install . && qortex serve")
    assert first_block[1].startswith("scripts/test")
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_every_setting_is_in_the_toml_and_the_readme() -> None:
    toml = tomllib.loads((ROOT / "qortex.toml").read_text())
    names = [f.name for f in fields(Settings)]
    assert sorted(toml) == sorted(names)
    defaults = Settings()
    for name in names:
        assert f"| `{name}` |" in README, name
        if name not in ("quorum", "max_replicas"):  # 0 in the file means "derive"
            assert toml[name] == getattr(defaults, name), name
    for alias in [*SEED_ALIASES, *SEED_UNNEEDED]:
        assert f"`{alias}`" in README, alias


def test_every_route_is_in_the_readme_api_table() -> None:
    app = create_app(Settings())
    for route in app.routes:
        assert isinstance(route, Route | WebSocketRoute | Mount)
        path = re.sub(r"\{(\w+)\}", lambda g: "{" + _camel(g[1]) + "}", route.path)
        assert f"`{path}`" in README, path


def test_every_route_states_its_scope_in_the_readme() -> None:
    """The API table's scope column says what the OpenAPI document's ``x-scope`` says."""
    from qortex.web.openapi import build

    for path, item in build()["paths"].items():
        for method, operation in item.items():
            row = f"| `{method.upper()}` | `{path}` | {operation.get('x-scope', '')} |"
            assert row.replace("|  |", "| |") in README, row


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def test_every_event_type_is_in_the_readme() -> None:
    for event in EVENT_TYPES:
        assert f"`{event}`" in README, event


@pytest.mark.skipif(not PROTOCOL.exists(), reason="docs/protocol.md not written yet")
def test_every_frame_and_close_code_is_in_the_protocol_doc() -> None:
    text = PROTOCOL.read_text()
    frames = [
        m.Hello,
        m.Answer,
        m.Result,
        m.Heartbeat,
        m.Challenge,
        m.Welcome,
        m.Assign,
        m.Ack,
        m.Refused,
        m.Cancel,
    ]
    for frame in frames:
        tag = frame.__struct_config__.tag
        assert f'"type": "{tag}"' in text or f"`{tag}`" in text, tag
        for field in msgspec.structs.fields(frame):
            assert f"`{field.encode_name}`" in text, (tag, field.encode_name)
    for code in m.CLOSE_CODES:
        assert str(code) in text, code


def test_every_cli_command_and_option_is_in_the_readme() -> None:
    import typer.main

    from qortex.cli import app

    table = README.split("## Command line", 1)[1].split("\n\n", 2)[1]
    group = typer.main.get_command(app)
    assert hasattr(group, "commands")
    for name, command in group.commands.items():
        row = next((line for line in table.splitlines() if f"`qortex {name}" in line), None)
        assert row is not None, name
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert opt in row, (name, opt)
    assert "QORTEX_URL" in README
