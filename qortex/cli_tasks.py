"""The client half of the CLI: turning a file into tasks, following them, showing one.

A file of tweets may be longer than one task may hold (``max_tweets_per_task``),
so it is cut into as many tasks as the coordinator's advertised limit needs and
followed under one progress bar; the output comes back in the file's order.
Task ids are long, so anywhere the CLI takes one, an unambiguous prefix does.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import Any

import httpx
import msgspec
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from qortex.client import ApiError, Client, Event
from qortex.errors import ConfigError

FULL_ID_LENGTH = 36
HEALTH_EVERY = 1.0


class CliError(ConfigError):
    """A problem the CLI reports as one line and a non-zero exit."""


def refused(exc: ApiError) -> CliError:
    """An answer other than 2xx, as the CLI's one line."""
    return CliError(f"HTTP {exc.status}: {exc.message}")


def task_body(text: str, kind: str | None, replicas: int | None) -> dict[str, Any]:
    """The task body for a file: JSON (a task body, or the input of ``--kind``) or lines."""
    stripped = text.strip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(stripped)
        except ValueError as exc:
            raise CliError(f"input looks like JSON but is not: {exc}") from None
        body = _json_body(data, kind)
    elif kind in (None, "sentiment"):
        tweets = [line.strip() for line in text.splitlines() if line.strip()]
        if not tweets:
            raise CliError("no tweets in the input: give one per line")
        body = {"tweets": tweets}
    else:
        raise CliError(f"input for kind {kind!r} must be JSON: a task body or the task's input")
    if replicas is not None:
        body["replicas"] = replicas
    return body


def _json_body(data: Any, kind: str | None) -> dict[str, Any]:
    if not isinstance(data, dict) or not {"kind", "tweets", "input"} & set(data):
        if kind is None:
            raise CliError("JSON that is not a task body needs --kind: it is taken as the input")
        return {"kind": kind, "input": data}
    given = "sentiment" if "tweets" in data else data.get("kind")
    if kind is not None and given is not None and given != kind:
        raise CliError(f"--kind {kind} but the file's task is of kind {given!r}")
    if given is None:
        if kind is None:
            raise CliError('the task body names no kind: add "kind" to it or pass --kind')
        return {**data, "kind": kind}
    return dict(data)


def start_time(at: str | None, delay: float | None) -> dict[str, Any]:
    """``--at`` (an ISO time; local time if it names no zone) or ``--in`` seconds."""
    if at is not None and delay is not None:
        raise CliError("give --at or --in, not both")
    if delay is not None:
        return {"delaySeconds": delay}
    if at is None:
        return {}
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        raise CliError(
            f"--at must be a time such as 2030-01-01T09:00 or 2030-01-01T09:00Z, got {at!r}"
        ) from None
    return {"notBefore": (when if when.tzinfo else when.astimezone()).isoformat()}


def fit(client: Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A tweets body cut to the coordinator's ``tweets`` limit; any other body as it is."""
    tweets = body.get("tweets")
    if not isinstance(tweets, list):
        return [body]
    sentiment = next((k for k in client.kinds() if k["name"] == "sentiment"), {})
    limit = sentiment.get("limits", {}).get("tweets")
    if not isinstance(limit, int) or limit < 1 or len(tweets) <= limit:
        return [body]
    return [
        {**body, "tweets": tweets[start : start + limit]} for start in range(0, len(tweets), limit)
    ]


def submit_all(client: Client, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST every body in order; if one is refused, say which tasks were created before it.

    Each submit has its own Idempotency-Key, kept across the client's retries,
    so a dropped connection or a 5xx never makes a second task.
    """
    created: list[dict[str, Any]] = []
    for body in bodies:
        try:
            made = client.submit_body(body)
        except ApiError as exc:
            if created:
                ids = ", ".join(task["taskId"] for task in created)
                where = f"task {len(created) + 1} of {len(bodies)}; created: {ids}"
                raise CliError(f"HTTP {exc.status}: {exc.message} ({where})") from None
            raise refused(exc) from None
        # The API's answer, as it came: the client's own ``replayed`` flag left out.
        answer = msgspec.to_builtins(made)
        created.append({k: v for k, v in answer.items() if v is not None and k != "replayed"})
    return created


def resolve(client: Client, given: str) -> str:
    """The full task id for ``given``, which may be an unambiguous prefix of one."""
    prefix = given.strip().lower()
    if len(prefix) >= FULL_ID_LENGTH:
        return prefix
    if not prefix:
        raise CliError("the task id is empty")
    listed = client.tasks(2, prefix=prefix)["tasks"]
    if not listed:
        raise CliError(f"no task id starts with {given!r}")
    if len(listed) > 1:
        ids = ", ".join(task["taskId"] for task in listed)
        raise CliError(f"{given!r} is ambiguous: it starts {ids} (and maybe more); give more of it")
    return listed[0]["taskId"]


class _MinerWatch(threading.Thread):
    """Polls ``/health`` beside the progress bar, to say so when no miner is connected."""

    def __init__(self, client: Client, note: Text, live: Live) -> None:
        super().__init__(daemon=True)
        self.client, self.note, self.live = client, note, live
        self.url = client.url
        self.done = threading.Event()

    def run(self) -> None:
        with self.client as client:
            while not self.done.is_set():
                try:
                    connected = client.health().get("minersConnected", 0)
                except (httpx.HTTPError, ApiError, ValueError):
                    connected = None
                text = ""
                if connected == 0:
                    text = (
                        "no miner is connected: start one with `qortex miner`,"
                        f" or open {self.url}/ in a browser"
                    )
                if text != self.note.plain:
                    self.note.plain = text
                    if text and not self.live.console.is_terminal:
                        self.live.console.print(text)  # a log has no live area: say it once
                self.live.refresh()
                self.done.wait(HEALTH_EVERY)


def follow(client: Client, tasks: list[dict[str, Any]], console: Console) -> None:
    """One progress bar over every microtask of ``tasks``, until all of them finish."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    total = sum(task.get("microtasks") or 0 for task in tasks)
    name = f"task {tasks[0]['taskId']}" if len(tasks) == 1 else f"{len(tasks)} tasks"
    bar = progress.add_task(name, total=total)
    note = Text("", style="yellow")
    with Live(Group(progress, note), console=console, refresh_per_second=8) as live:
        # Its own client: the watch polls from another thread.
        watch = _MinerWatch(Client(client.url, client.api_key, timeout=5), note, live)
        watch.start()

        def advance(event: Event) -> None:
            if event.type == "microtask.quorum":
                progress.advance(bar)

        try:
            for task in tasks:
                client.wait(task["taskId"], on_event=advance)
        finally:
            watch.done.set()


def summary(task: dict[str, Any]) -> str:
    """A task as a few readable lines: status, progress, each microtask's decision and voters."""
    details = task.get("microtaskDetails") or []
    lines = [
        f"task      {task['taskId']}",
        f"kind      {task['kind']}",
        f"status    {task['status']}",
        f"progress  {task.get('decided', 0)}/{task['microtasks']} microtasks decided",
        f"policy    {task['replicas']} replicas, quorum {task['quorum']},"
        f" at most {task['maxReplicas']} results, target error {task.get('targetError', '-')}",
    ]
    for mt in details:
        votes = mt["votes"]
        agreeing = [v["minerId"][:8] for v in votes if v.get("agrees")]
        others = [v["minerId"][:8] for v in votes if v.get("agrees") is False]
        decision = json.dumps(mt["decision"], ensure_ascii=False)
        if len(decision) > 40:
            decision = decision[:37] + "..."
        shown = decision if mt["status"] == "decided" else ""
        line = f"  #{mt['index']:<3} {mt['status']:<12} {shown}".rstrip()
        if mt.get("error") is not None:
            line += f"  error {mt['error']:.1g}"
        line += f"  votes {len(votes)}"
        if agreeing:
            line += f": for {', '.join(agreeing)}"
        if others:
            line += f"; against {', '.join(others)}"
        lines.append(line)
    if task.get("output") is not None:
        output = json.dumps(task["output"], ensure_ascii=False)
        lines.append(f"output    {output if len(output) <= 200 else output[:197] + '...'}")
    lines.append("(--json for everything)")
    return "\n".join(lines)
