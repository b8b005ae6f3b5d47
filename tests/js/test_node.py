"""The browser pages' modules under Node's built-in test runner (``node --test tests/js``).

The console's pure modules, and the miner's compute pool and connection with
real worker threads and Node's WebCrypto: everything of the pages that needs
no browser. The whole pages run in Chromium (tests/browser).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import timeout

ROOT = Path(__file__).resolve().parent.parent.parent


def test_browser_modules_pass_their_node_tests() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed on this machine (scripts/test installs Debian's nodejs)")
    assert sorted((ROOT / "tests" / "js").glob("*.test.mjs")), "no JavaScript tests found"
    run = subprocess.run(
        [node, "--test", "tests/js"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout(100),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "# fail 0" in run.stdout, run.stdout
