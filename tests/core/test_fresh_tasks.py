"""A fresh task waits as one queue entry; placement builds its microtasks as it takes them.

Until its first copy goes out a microtask is nothing but its input, so the
table keeps a cursor per task instead of a queued object per microtask. These
tests hold the lazy way to what building every microtask up front gave: the
same microtasks, placed in the same order, known answers where they were,
and every count (open microtasks, withdrawals) the same.
"""

from __future__ import annotations

import dataclasses

from qortex.core import lifecycle
from qortex.core.work import NO_GOLD, Microtask
from tests.core.tables import connect, policy, queued, queued_ids, result, table


def test_a_fresh_task_is_one_entry_and_nothing_is_built_before_placement() -> None:
    t = table()
    task = t.add_task("t1", "x", policy(replicas=2), [b'"a"', b'"b"', b'"c"'], gold={1: "B"})
    assert len(t._queues["x"]) == 1 and list(task.built()) == []
    assert (task.open, t.open, queued(t)) == (3, 3, 3)
    assert queued_ids(t) == ["t1:0", "t1:1", "t1:2"]


def test_a_microtask_built_lazily_is_the_one_built_eagerly() -> None:
    rule = policy(replicas=2)
    t = table()
    task = t.add_task("t1", "x", rule, [b'"a"', b'"b"'], gold={1: "B"})
    eager = [
        Microtask("t1:0", "t1", 0, "x", b'"a"', rule),
        Microtask("t1:1", "t1", 1, "x", b'"b"', rule, gold="B"),
    ]
    names = [f.name for f in dataclasses.fields(Microtask)]
    for lazy, built in zip(task.microtasks, eager, strict=True):
        assert [getattr(lazy, n) for n in names] == [getattr(built, n) for n in names]
    assert task.microtasks[0].gold is NO_GOLD
    assert task.microtask(1) is task.microtasks[1], "built once, then the same object"


def test_placement_order_holds_across_tasks_with_known_answers_where_they_were() -> None:
    t = table()
    t.add_task("t1", "x", policy(), [b"1", b"2", b"3"], gold={1: "known"})
    t.add_task("t2", "x", policy(), [b"4", b"5"])
    connect(t, 1, slots=4)
    issued = t.fill(0.0)
    assert [lease.microtask.id for lease in issued] == ["t1:0", "t1:1", "t1:2", "t2:0"]
    assert issued[1].microtask.gold == "known" and issued[0].microtask.gold is NO_GOLD
    assert [mt.id for mt in t.tasks["t2"].built()] == ["t2:0"], "only what was placed is built"
    assert queued_ids(t) == ["t2:1"]
    result(t, issued[0], "x")
    assert [lease.microtask.id for lease in t.fill(0.0)] == ["t2:1"]
    assert queued(t) == 0 and len(t._queues["x"]) == 0, "the spent task left the queue"


def test_a_microtask_read_before_placement_is_still_placed_in_its_turn() -> None:
    t = table()
    task = t.add_task("t1", "x", policy(), [b"1", b"2"])
    read = task.microtask(1)  # a page or a test looked at it
    connect(t, 1, slots=2)
    issued = t.fill(0.0)
    assert [lease.microtask for lease in issued] == [task.microtask(0), read]


def test_a_copy_cut_short_keeps_its_place_ahead_of_the_tasks_rest() -> None:
    # Replicas 2 and one free slot: the first microtask gets one copy, and is the
    # first to get the next, before its task's microtasks never offered.
    t = table()
    t.add_task("t1", "x", policy(replicas=2), [b"1", b"2"])
    connect(t, 1, slots=1)
    (first,) = t.fill(0.0)
    assert queued_ids(t) == ["t1:0", "t1:1"]
    connect(t, 1, prefix="n")
    (second,) = t.fill(0.0)
    assert second.microtask is first.microtask and second.miner_id == "n0"


def test_withdrawing_a_partly_placed_task_counts_its_unbuilt_microtasks() -> None:
    t = table()
    task = t.add_task("t1", "x", policy(), [b"1", b"2", b"3", b"4"])
    t.add_task("t2", "x", policy(), [b"5"])
    connect(t, 1, slots=1)
    (lease,) = t.fill(0.0)
    withdrawn = t.withdraw_task(task, "cancel")
    assert withdrawn == [lease] and lease.microtask.state == lifecycle.CANCELLED
    assert (task.open, t.open, task.state) == (0, 1, lifecycle.CANCELLED)
    assert queued_ids(t) == ["t2:0"] and "t1" not in t.tasks


def test_placement_waits_at_a_task_whose_inputs_are_not_read_yet() -> None:
    # After a start the inputs of microtasks never begun are read in the background;
    # work queued behind such a task does not jump ahead of it meanwhile.
    t = table()
    waiting = t.add_task("t1", "x", policy(), None, count=2)
    t.add_task("t2", "x", policy(), [b"3"])
    connect(t, 1, slots=3)
    assert t.fill(0.0) == [] and (waiting.open, t.open) == (2, 3)
    waiting.inputs = [b"1", b"2"]
    issued = t.fill(0.0)
    assert [lease.microtask.id for lease in issued] == ["t1:0", "t1:1", "t2:0"]
    assert bytes(issued[1].microtask.input) == b"2"
