"""What ``qortex miner`` tells its user: quiet when all is well, plain when it is not.

All miners of one process share one report. On a terminal it keeps a single
live line (miners connected, results computed, accepted, withdrawn, refused);
elsewhere (a log file, a pipe) it writes only what changes. A problem that
many miners meet at once (the coordinator restarting) is told once, with the
time until the next try, and not again until something else happens.
Withdrawn results (their microtask was decided before they arrived) are the
volunteer's honest work arriving late, so they are counted apart from refusals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from rich.live import Live
from rich.text import Text


@dataclass
class MinerStats:
    """One miner's counts, kept by the miner and read by the report it shares."""

    connects: int = 0
    computed: int = 0
    accepted: int = 0
    withdrawn: int = 0  # results that arrived after their microtask was decided: no fault
    refused: int = 0
    cancelled: int = 0
    mismatched: int = 0  # assigns skipped because their input did not match its digest
    connected: bool = False


class Report:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console if console is not None else Console(stderr=True)
        self.stats: Sequence[MinerStats] = ()  # one per miner of this process
        self._live: Live | None = None
        self._trouble = ""  # the problem last told, until a miner gets in again
        self._told_connected = False
        self._refusals_told: set[str] = set()

    def start(self, stats: Sequence[MinerStats]) -> None:
        """Show these counts (each miner's ``stats``) from now on."""
        self.stats = stats
        if self.console.is_terminal:
            self._live = Live(
                get_renderable=self.line,
                console=self.console,
                refresh_per_second=4,
                transient=True,
            )
            self._live.start()

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def say(self, message: str) -> None:
        self.console.print(message, highlight=False, markup=False, soft_wrap=True)

    def connected(self, url: str) -> None:
        if self._trouble:
            self.say(f"connected again to {url}")
            self._trouble = ""
        elif not self._told_connected:
            self.say(f"connected to {url}")
        self._told_connected = True
        self.changed()

    def problem(self, text: str, delay: float) -> None:
        if text != self._trouble:
            self.say(f"{text}; next try in {delay:.1f} s, then with backoff")
            self._trouble = text
        self.changed()

    def refused(self, assignment_id: str, reason: str) -> None:
        """The first refusal for each reason is told; the rest are counted."""
        if reason not in self._refusals_told:
            self._refusals_told.add(reason)
            self.say(f"result {assignment_id} refused: {reason} (more of these are only counted)")

    def changed(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def counts(self) -> dict[str, int]:
        stats = self.stats
        return {
            "connected": sum(s.connected for s in stats),
            "connections": sum(s.connects for s in stats),
            "computed": sum(s.computed for s in stats),
            "accepted": sum(s.accepted for s in stats),
            "withdrawn": sum(s.withdrawn for s in stats),
            "refused": sum(s.refused for s in stats),
            "cancelled": sum(s.cancelled for s in stats),
            "mismatched": sum(s.mismatched for s in stats),
        }

    def line(self) -> Text:
        """The live status line."""
        c = self.counts()
        text = (
            f"{c['connected']}/{len(self.stats)} connected · {c['computed']} computed ·"
            f" {c['accepted']} accepted · {c['withdrawn']} withdrawn · {c['refused']} refused"
        )
        if self._trouble and c["connected"] < len(self.stats):
            text += f" · {self._trouble}"
        return Text(text, no_wrap=True, overflow="ellipsis")

    def summary(self) -> str:
        """The last line a miner process writes; scripts read it."""
        c = self.counts()
        return (
            f"{len(self.stats)} miner(s): {c['connections']} connection(s),"
            f" {c['computed']} computed, {c['accepted']} accepted, {c['withdrawn']} withdrawn"
            f" (decided before they arrived), {c['refused']} refused, {c['cancelled']} cancelled,"
            f" {c['mismatched']} skipped for an input digest mismatch"
        )
