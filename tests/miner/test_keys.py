"""Miner key files: claimed one process at a time, created when all are taken, checked on read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qortex.miner.keys import KeyFileError, claim_files, claim_free, read_key, write_key
from qortex.signing import Signer
from tests.helpers import timeout


def test_claims_skip_keys_held_elsewhere_and_create_new_ones(tmp_path: Path) -> None:
    first = claim_free(tmp_path, 3)
    assert [k.path.name for k in first] == ["miner-0.key", "miner-1.key", "miner-2.key"]
    # flock belongs to an open file: a second claim, even in this process, is another holder.
    second = claim_free(tmp_path, 2)
    assert [k.path.name for k in second] == ["miner-3.key", "miner-4.key"]
    ids = {k.signer.miner_id for k in first + second}
    assert len(ids) == 5
    first[1].release()
    third = claim_free(tmp_path, 2)  # the freed key first, then a new one
    assert [k.path.name for k in third] == ["miner-1.key", "miner-5.key"]
    assert third[0].signer.miner_id == first[1].signer.miner_id
    for key in first + second + third:
        key.release()
    again = claim_free(tmp_path, 3)  # a run after all stopped comes back as the first
    assert [k.signer.miner_id for k in again] == [k.signer.miner_id for k in first]


def test_a_key_held_by_another_process_is_skipped(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from qortex.miner.keys import claim_free;"
            " claim_free(Path(sys.argv[1]), 2); print('held', flush=True); sys.stdin.read()",
            str(tmp_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        mine = claim_free(tmp_path, 1)
        assert [k.path.name for k in mine] == ["miner-2.key"]
        with pytest.raises(KeyFileError, match="in use by another qortex miner"):
            claim_files([tmp_path / "miner-0.key"])
    finally:
        holder.communicate("", timeout=timeout(10))
    assert [k.path.name for k in claim_files([tmp_path / "miner-0.key"])] == ["miner-0.key"]


def test_key_files_are_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "k.key"
    signer = Signer()
    write_key(path, signer)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert read_key(path).miner_id == signer.miner_id
    with pytest.raises(FileExistsError):
        write_key(path, Signer())
    assert read_key(path).miner_id == signer.miner_id
    assert sorted(p.name for p in path.parent.iterdir()) == ["k.key"]  # no temporary left


@pytest.mark.parametrize(
    ("content", "mode", "words"),
    [
        ("ab" * 32, 0o644, "readable by others"),
        ("not hex", 0o600, "32-byte ed25519 seed"),
        ("ab" * 31, 0o600, "32-byte ed25519 seed"),
    ],
)
def test_unusable_key_files_are_refused_with_a_reason(
    tmp_path: Path, content: str, mode: int, words: str
) -> None:
    path = tmp_path / "miner-0.key"
    path.write_text(content)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=words):
        read_key(path)
    with pytest.raises(KeyFileError, match=words):
        claim_free(tmp_path, 1)
    with pytest.raises(KeyFileError, match="no key file"):
        claim_files([tmp_path / "missing.key"])
