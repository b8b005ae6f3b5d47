"""The work every leg of ``benchmarks/peers.py`` does, and how its driver decides.

A worker labels one tweet with Qortex's own sentiment kind and signs the
label with its own ed25519 key over exactly the bytes a Qortex miner signs
(:func:`qortex.signing.result_message`). A worker is one signing identity, and
a worker process holds several, as a load process of Qortex's leg holds
several miner connections each with its own key. The driver places the copies
of a microtask on distinct identities, spread over the processes (Celery: a
queue per process; Dask: worker restrictions), verifies each signature against
the input digest it computed itself, and decides a microtask when a majority
of its copies (2 of 3) agree; Qortex's coordinator does the same (and more) on
its side.

Workers import this module by name, so it imports nothing from the
benchmark's own scripts.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import msgspec
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from qortex.kinds.sentiment import SentimentKind
from qortex.signing import input_digest, result_message

_kind = SentimentKind()
_keys: dict[int, SigningKey] = {}
_keys_lock = threading.Lock()

Args = tuple[str, str, str, str, int]


def _key(identity: int) -> SigningKey:
    """This process's identity number ``identity``, made on first use."""
    key = _keys.get(identity)
    if key is None:
        with _keys_lock:
            key = _keys.setdefault(identity, SigningKey.generate())
    return key


def work(
    microtask_id: str, assignment_id: str, raw: str, digest: str, identity: int
) -> tuple[str, str, str]:
    """Label the tweet whose JSON is ``raw``, sign as ``identity``: (output, key, signature).

    Strings only (hex for bytes), so that Celery's JSON carries it as Dask's pickle does.
    """
    output = msgspec.json.encode(_kind.compute(msgspec.json.decode(raw)))
    key = _key(identity)
    signature = key.sign(result_message(assignment_id, microtask_id, digest, output)).signature
    return output.decode(), key.verify_key.encode().hex(), signature.hex()


@dataclass(frozen=True)
class Job:
    """One microtask: its id, the JSON of its input and that input's digest."""

    microtask_id: str
    raw: str
    digest: str


def jobs(tweets: list[str]) -> list[Job]:
    """One microtask per tweet, its input encoded once as Qortex's sentiment kind encodes it."""
    out = []
    for i, tweet in enumerate(tweets):
        raw = msgspec.json.encode(tweet)
        out.append(Job(f"m{i}", raw.decode(), input_digest(raw)))
    return out


@dataclass
class _Ballot:
    issued: int = 0
    signers: set[bytes] = field(default_factory=set)
    votes: dict[str, int] = field(default_factory=dict)
    decided: str | None = None


class Tally:
    """The driver's side: place copies, verify, count each identity once, decide by majority.

    :meth:`assign` names each copy it hands out (``<microtask>/<n>``) and
    places it; :meth:`offer` judges a returned one and says what the driver
    must do: ``"decided"``, ``"counted"``, ``"late"`` (already decided:
    nothing), or ``"again"`` (a bad signature, or a signer that had answered
    this microtask already: hand out another copy).
    """

    def __init__(self, work: list[Job], replicas: int, workers: int, identities: int) -> None:
        self.replicas = replicas
        self.quorum = replicas // 2 + 1
        self.workers = workers
        self.identities = workers * identities
        self.index = {job.microtask_id: i for i, job in enumerate(work)}
        self.jobs = {job.microtask_id: job for job in work}
        self.ballots = {job.microtask_id: _Ballot() for job in work}
        self.decisions = 0
        self.results = 0
        self.reissued = 0
        self.first_submit: float | None = None
        self.last_decision: float | None = None

    def assign(self, microtask_id: str) -> tuple[int, Args]:
        """Which worker process gets one more copy of ``microtask_id``, and :func:`work`'s args.

        Copy ``n`` goes to identity ``(index x replicas + n) mod identities``
        of them all, so the first ``replicas`` copies meet distinct identities
        and the processes take turns.
        """
        if self.first_submit is None:
            self.first_submit = time.perf_counter()
        ballot = self.ballots[microtask_id]
        number = self.index[microtask_id] * self.replicas + ballot.issued
        ballot.issued += 1
        job = self.jobs[microtask_id]
        slot = number % self.identities
        process, identity = slot % self.workers, slot // self.workers
        assignment_id = f"{microtask_id}/{ballot.issued}"
        return process, (microtask_id, assignment_id, job.raw, job.digest, identity)

    def offer(self, args: Args, result: tuple[str, str, str]) -> str:
        microtask_id, assignment_id = args[0], args[1]
        output, public_key, signature = result
        ballot = self.ballots[microtask_id]
        self.results += 1
        if ballot.decided is not None:
            return "late"
        signer = bytes.fromhex(public_key)
        message = result_message(
            assignment_id, microtask_id, self.jobs[microtask_id].digest, output.encode()
        )
        try:
            VerifyKey(signer).verify(message, bytes.fromhex(signature))
        except BadSignatureError:
            self.reissued += 1
            return "again"
        if signer in ballot.signers:
            self.reissued += 1
            return "again"
        ballot.signers.add(signer)
        votes = ballot.votes[output] = ballot.votes.get(output, 0) + 1
        if votes < self.quorum:
            if len(ballot.signers) >= self.replicas:
                raise RuntimeError(f"{microtask_id}: the copies disagree {ballot.votes}")
            return "counted"
        ballot.decided = output
        self.decisions += 1
        self.last_decision = time.perf_counter()
        return "decided"

    @property
    def done(self) -> bool:
        return self.decisions == len(self.jobs)

    def figures(self, cpu_seconds: float) -> dict[str, float | int]:
        """The leg's figures, once every decision is in and matches the kind's own label."""
        if not self.done or self.first_submit is None or self.last_decision is None:
            raise RuntimeError(f"only {self.decisions}/{len(self.jobs)} microtasks decided")
        wrong = [m for m, b in self.ballots.items() if b.decided != expected(self.jobs[m])]
        if wrong:
            raise RuntimeError(f"{len(wrong)} decisions differ from the kind's own labels")
        seconds = self.last_decision - self.first_submit
        out = figures(self.decisions, seconds, cpu_seconds, self.results)
        out["reissued"] = self.reissued
        return out


def figures(decided: int, seconds: float, cpu_seconds: float, results: int) -> dict:
    """Decided microtasks per second of wall time (first submit to last decision) and of CPU."""
    return {
        "decided": decided,
        "seconds": round(seconds, 3),
        "decidedPerSecond": round(decided / seconds, 1),
        "cpuSeconds": round(cpu_seconds, 2),
        "decidedPerCpuSecond": round(decided / cpu_seconds, 1),
        "resultsPerDecided": round(results / decided, 2),
    }


def expected(job: Job) -> str:
    """The label the kind gives ``job``'s input, as the JSON text a worker returns."""
    return msgspec.json.encode(_kind.compute(msgspec.json.decode(job.raw))).decode()
