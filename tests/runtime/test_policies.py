"""Table-driven tests of the pure scheduling policies."""

from __future__ import annotations

import pytest

from neptune_runtime.policies import (
    ExecutorView,
    Kill,
    NeptuneConfig,
    Place,
    Resume,
    Snapshot,
    Suspend,
    TaskView,
    fair,
    fifo,
    get_policy,
    kill,
    neptune,
)


def batch(tid: str, ready: float = 0.0, partition: int = 0, suspensions: int = 0,
          resumed_at: float = 0.0) -> TaskView:
    return TaskView(tid, "train", "batch", 0, ready, partition, suspensions, resumed_at)


def stream(tid: str, ready: float = 1.0, priority: int = 10) -> TaskView:
    return TaskView(tid, "score", "stream", priority, ready)


def ex(eid: str, running: TaskView | None = None, suspended: tuple[TaskView, ...] = (),
       memory: tuple[int, int] = (0, 0),
       partitions: frozenset[tuple[str, int]] = frozenset()) -> ExecutorView:
    return ExecutorView(eid, running, suspended, memory[0], memory[1], partitions)


def snap(executors: list[ExecutorView], queue: list[TaskView], now: float = 10.0) -> Snapshot:
    return Snapshot(now, tuple(executors), tuple(queue))


CASES = [
    # (name, policy, snapshot, expected decisions)
    ("fifo: arrival order onto idle executors", fifo,
     snap([ex("e0"), ex("e1")], [stream("s1", ready=2.0), batch("b1", ready=1.0)]),
     [Place("b1", "e0"), Place("s1", "e1")]),
    ("fifo: never preempts", fifo,
     snap([ex("e0", running=batch("b0"))], [stream("s1")]), []),
    ("fair: priority first", fair,
     snap([ex("e0")], [batch("b1", ready=0.0), stream("s1", ready=5.0)]),
     [Place("s1", "e0")]),
    ("fair: waits for the running batch task", fair,
     snap([ex("e0", running=batch("b0"))], [stream("s1")]), []),
    ("fair: equal priority keeps arrival order", fair,
     snap([ex("e0")], [batch("b2", ready=2.0), batch("b1", ready=1.0)]),
     [Place("b1", "e0")]),
    ("kill: kills the lower-priority task", kill,
     snap([ex("e0", running=batch("b0"))], [stream("s1")]),
     [Kill("b0", "e0"), Place("s1", "e0")]),
    ("kill: uses an idle executor before killing", kill,
     snap([ex("e0", running=batch("b0")), ex("e1")], [stream("s1")]),
     [Place("s1", "e1")]),
    ("kill: never kills equal priority", kill,
     snap([ex("e0", running=batch("b0"))], [batch("b1")]), []),
    ("kill: kills the most recently started of two", kill,
     snap([ex("e0", running=batch("b0", resumed_at=1.0)),
           ex("e1", running=batch("b1", resumed_at=5.0))], [stream("s1")]),
     [Kill("b1", "e1"), Place("s1", "e1")]),
    ("neptune: suspends instead of killing", neptune,
     snap([ex("e0", running=batch("b0"))], [stream("s1")]),
     [Suspend("b0", "e0"), Place("s1", "e0")]),
    ("neptune: idle executor first", neptune,
     snap([ex("e0", running=batch("b0")), ex("e1")], [stream("s1")]),
     [Place("s1", "e1")]),
    ("neptune: locality among idle executors", neptune,
     snap([ex("e0"), ex("e1", partitions=frozenset({("train", 3)}))], [batch("b3", partition=3)]),
     [Place("b3", "e1")]),
    ("neptune: resumes a suspended task when its slot frees", neptune,
     snap([ex("e0", suspended=(batch("b0"),))], []),
     [Resume("b0", "e0")]),
    ("neptune: a stream task runs before resuming batch", neptune,
     snap([ex("e0", suspended=(batch("b0"),))], [stream("s1")]),
     [Place("s1", "e0")]),
    ("neptune: a queued batch task does not jump a suspended one", neptune,
     snap([ex("e0", suspended=(batch("b0"),))], [batch("b1")]),
     [Resume("b0", "e0")]),
    ("neptune: prefers the executor with fewer suspended tasks", neptune,
     snap([ex("e0", running=batch("b0"), suspended=(batch("bx"),)),
           ex("e1", running=batch("b1"))], [stream("s1")]),
     [Suspend("b1", "e1"), Place("s1", "e1")]),
    ("neptune: avoids an executor under memory pressure", neptune,
     snap([ex("e0", running=batch("b0"), memory=(95, 100)),
           ex("e1", running=batch("b1"), memory=(10, 100))], [stream("s1")]),
     [Suspend("b1", "e1"), Place("s1", "e1")]),
    ("neptune: no suspension when every executor is over memory", neptune,
     snap([ex("e0", running=batch("b0"), memory=(95, 100))], [stream("s1")]), []),
    ("neptune: starvation guard protects a task suspended too often", neptune,
     snap([ex("e0", running=batch("b0", suspensions=8, resumed_at=9.9))], [stream("s1")]), []),
    ("neptune: guard expires after its window", neptune,
     snap([ex("e0", running=batch("b0", suspensions=8, resumed_at=1.0))], [stream("s1")]),
     [Suspend("b0", "e0"), Place("s1", "e0")]),
    ("neptune: never preempts a stream task for a stream task", neptune,
     snap([ex("e0", running=stream("s0"))], [stream("s1")]), []),
    ("neptune: two stream tasks, two victims", neptune,
     snap([ex("e0", running=batch("b0")), ex("e1", running=batch("b1"))],
          [stream("s1", ready=1.0), stream("s2", ready=2.0)]),
     [Suspend("b0", "e0"), Place("s1", "e0"), Suspend("b1", "e1"), Place("s2", "e1")]),
]


@pytest.mark.parametrize(("name", "policy", "snapshot", "expected"), CASES,
                         ids=[c[0] for c in CASES])
def test_policy_decisions(name: str, policy: object, snapshot: Snapshot,
                          expected: list[object]) -> None:
    assert policy(snapshot) == expected  # type: ignore[operator]


def test_max_suspended_per_executor_bounds_memory() -> None:
    held = tuple(batch(f"h{i}") for i in range(2))
    snapshot = snap([ex("e0", running=batch("b0"), suspended=held)], [stream("s1")])
    assert neptune(snapshot, NeptuneConfig(max_suspended=2)) == []
    assert neptune(snapshot, NeptuneConfig(max_suspended=3))[0] == Suspend("b0", "e0")


def test_get_policy_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown policy 'lifo'"):
        get_policy("lifo")


def test_policies_are_pure() -> None:
    snapshot = snap([ex("e0", running=batch("b0"))], [stream("s1")])
    assert neptune(snapshot) == neptune(snapshot)
    assert snapshot.executors[0].running == batch("b0")
